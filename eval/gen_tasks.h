// Generation benchmarks the way the DeepSeek LLM paper scores them: greedy decoding until a stop
// string, then a programmatic check.
//   gsm8k      the number after "the answer is" (strict) or the last number (flexible), exact match
//              with lm-evaluation-harness's gsm8k-cot rules (eval/answer_extraction.h);
//   math       the Minerva "Final Answer: The final answer is X." line, normalised, exact match;
//              flexible also takes the last \boxed{} when that line is missing;
//   humaneval  pass@1: prompt + completion + the problem's tests run in the sandbox
//              (eval/sandbox.h). This executes model-written code.
//   chat       a chat model's answer: the prompt as one user turn in the model's chat format
//              (from its tokenizer_config.json), greedy until the end of the turn, exact match
//              with the answer after whitespace normalisation (flexible: the response starts
//              with the answer), and the repetition ratio of those answers (eval/repetition.h:
//              the share that reached max_new_tokens looping). What the quickstart's held-out
//              prompts are scored with.
// Prompts are used as given (the converted data holds the shots); generation follows
// lm-evaluation-harness's generate_until: the prompt's last (max_length - max_new_tokens)
// tokens, greedy until EOS or a stop string, the text decoded without special tokens and cut at
// the first stop string.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/chat_template.h"
#include "data/tokenizer.h"
#include "eval/eval_data.h"
#include "eval/eval_metrics.h"
#include "eval/sandbox.h"
#include "model/decoder.h"

namespace dsalign {

enum class GenTaskKind { gsm8k, math, humaneval, chat };
GenTaskKind parse_gen_task(const std::string& name);  // error naming the choices
const char* gen_task_name(GenTaskKind task);

struct GenTaskDefaults {
  int64_t max_new_tokens;
  std::vector<std::string> stop;
};
// gsm8k: 512 tokens, stop at "Question:", "</s>", "<|im_end|>", "\n\n" (OLMES's settings for its
// 8-shot prompts); math: 1024, "Problem:", "\n\n" (OLMES's Minerva 4-shot); humaneval: 512,
// "\nclass", "\ndef", "\n#", "\nif", "\nprint" (the Codex paper's); chat: 64, none (the
// end-of-turn token ends an answer).
GenTaskDefaults gen_task_defaults(GenTaskKind task);

struct GenTaskOptions {
  int64_t max_new_tokens = 0;     // 0: the task's default
  std::vector<std::string> stop;  // empty: the task's default
  int64_t batch_size = 8;
  int64_t max_length = 0;  // tokens the model reads, prompt and answer (0: max_position_embeddings)
  bool progress = true;
  std::string python = "python3";  // humaneval
  SandboxLimits sandbox;
  int64_t workers = 0;  // programs run at once (0: the machine's hardware threads)
};

struct GeneratedText {
  std::string text;      // decoded without special tokens, cut at the first stop string
  bool stopped = false;  // EOS or a stop string ended it, not max_new_tokens
  int64_t tokens = 0;    // generated, up to and including the one that completed the stop string
  bool repetitive = false;  // did not stop and loops (find_repetition with the default rule)
};
// lm-evaluation-harness's generate_until for every prompt (see above).
std::vector<GeneratedText> generate_until(CausalLM& model, const Tokenizer& tokenizer, const std::vector<std::string>& prompts,
                                          int64_t max_new_tokens, const std::vector<std::string>& stop, int64_t batch_size,
                                          int64_t max_length, bool progress);

// Chat answers (the `chat` task): each prompt as one user turn in `format`, greedy until the
// end-of-turn token or a stop string, decoded without special tokens.
std::vector<GeneratedText> generate_chat_answers(CausalLM& model, const Tokenizer& tokenizer, ChatFormat format,
                                                 const std::vector<std::string>& prompts, int64_t max_new_tokens,
                                                 const std::vector<std::string>& stop, int64_t batch_size, bool progress);

// Leading and trailing whitespace removed, every inner run of whitespace made one space.
std::string normalise_whitespace(const std::string& text);

// The program HumanEval runs: prompt + completion + "\n" + test + "\n" + "check(entry_point)".
std::string humaneval_program(const GenProblem& problem, const std::string& completion);

struct GenSample {
  GeneratedText generated;
  std::string answer, answer_flexible;  // gsm8k, math: the extracted answers, normalised
  bool correct = false;                 // humaneval: the tests passed
  bool correct_flexible = false;
  SandboxResult run;                    // humaneval
};
struct GenReport {
  std::vector<GenSample> samples;
  MeanStderr exact_match, exact_match_flexible;  // gsm8k, math and chat
  MeanStderr repetition_ratio;                   // chat: the share of repetitive answers
  MeanStderr pass_at_1;                          // humaneval
  double generation_seconds = 0, execution_seconds = 0;
};
// Scores one completion (gsm8k, math).
void score_answer(GenTaskKind task, const GenProblem& problem, GenSample& sample);

GenReport run_generation_task(CausalLM& model, const Tokenizer& tokenizer, GenTaskKind task,
                              const std::vector<GenProblem>& problems, const GenTaskOptions& options);

}  // namespace dsalign
