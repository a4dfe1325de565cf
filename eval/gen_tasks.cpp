#include "eval/gen_tasks.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <thread>

#include "eval/answer_extraction.h"
#include "eval/repetition.h"
#include "model/generate.h"
#include "util/error.h"
#include "util/progress.h"

namespace dsalign {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The earliest position of any stop string in `text`, or npos.
size_t first_stop(const std::string& text, const std::vector<std::string>& stop) {
  size_t first = std::string::npos;
  for (const std::string& s : stop)
    if (!s.empty()) first = std::min(first, text.find(s));
  return first;
}


// Ends a row at the first of `stop` in its decoded text. A stop string ends within the last token
// and starts at most its length in bytes before; every token but a skipped special one adds at
// least a byte, so that many tokens (and a few more) hold it.
void add_stop_strings(GenerationOptions& g, const Tokenizer& tokenizer, const std::vector<std::string>& stop) {
  size_t window = 4;
  for (const std::string& s : stop) window = std::max(window, s.size() + 4);
  if (std::any_of(stop.begin(), stop.end(), [](const std::string& s) { return !s.empty(); }))
    g.stop_when = [&tokenizer, &stop, window](const std::vector<int32_t>& tokens) {
      const size_t from = tokens.size() > window ? tokens.size() - window : 0;
      const std::vector<int32_t> tail(tokens.begin() + static_cast<std::ptrdiff_t>(from), tokens.end());
      return first_stop(tokenizer.decode(tail, true), stop) != std::string::npos;
    };
}

// Greedy generation of every row of `ids`, decoded without special tokens and cut at the first stop string.
std::vector<GeneratedText> generate_texts(CausalLM& model, const Tokenizer& tokenizer, const std::vector<std::vector<int32_t>>& ids,
                                          const GenerationOptions& g, const std::vector<std::string>& stop, bool progress) {
  std::optional<Progress> bar;
  if (progress) bar.emplace("generation", static_cast<int64_t>(ids.size()), "prompts");
  std::vector<Generation> generated = generate_greedy(model, ids, g, [&](size_t done, size_t) {
    if (bar) bar->update(static_cast<int64_t>(done));
  });
  if (bar) bar->finish();
  std::vector<GeneratedText> out;
  for (const Generation& gen : generated) {
    GeneratedText t;
    t.text = tokenizer.decode(gen.tokens, true);
    t.stopped = gen.terminated;
    t.tokens = static_cast<int64_t>(gen.tokens.size());
    t.repetitive = find_repetition(gen.tokens, gen.terminated).has_value();
    if (const size_t cut = first_stop(t.text, stop); cut != std::string::npos) t.text.resize(cut);
    out.push_back(std::move(t));
  }
  return out;
}
}  // namespace

GenTaskKind parse_gen_task(const std::string& name) {
  if (name == "gsm8k") return GenTaskKind::gsm8k;
  if (name == "math") return GenTaskKind::math;
  if (name == "humaneval") return GenTaskKind::humaneval;
  if (name == "chat") return GenTaskKind::chat;
  fail("unknown generation task '", name, "' (expected gsm8k, math, humaneval or chat)");
}

const char* gen_task_name(GenTaskKind task) {
  switch (task) {
    case GenTaskKind::gsm8k: return "gsm8k";
    case GenTaskKind::math: return "math";
    case GenTaskKind::humaneval: return "humaneval";
    case GenTaskKind::chat: return "chat";
  }
  return "?";
}

GenTaskDefaults gen_task_defaults(GenTaskKind task) {
  switch (task) {
    case GenTaskKind::gsm8k: return {512, {"Question:", "</s>", "<|im_end|>", "\n\n"}};
    case GenTaskKind::math: return {1024, {"Problem:", "\n\n"}};
    case GenTaskKind::humaneval: return {512, {"\nclass", "\ndef", "\n#", "\nif", "\nprint"}};
    case GenTaskKind::chat: return {64, {}};
  }
  return {};
}

std::vector<GeneratedText> generate_until(CausalLM& model, const Tokenizer& tokenizer, const std::vector<std::string>& prompts,
                                          int64_t max_new_tokens, const std::vector<std::string>& stop, int64_t batch_size,
                                          int64_t max_length, bool progress) {
  if (max_length <= max_new_tokens)
    fail("generation: the model reads ", max_length, " tokens, no more than max_new_tokens (", max_new_tokens,
         "), which leaves no room for the prompt");
  std::vector<std::vector<int32_t>> ids;
  for (const std::string& p : prompts) {
    std::vector<int32_t> t = tokenizer.encode(p);
    const auto keep = static_cast<size_t>(max_length - max_new_tokens);
    if (t.size() > keep) t.erase(t.begin(), t.end() - static_cast<std::ptrdiff_t>(keep));
    if (t.empty()) fail("generation: prompt ", ids.size(), " encodes to no tokens");
    ids.push_back(std::move(t));
  }
  GenerationOptions g;
  g.max_new_tokens = max_new_tokens;
  g.batch_size = batch_size;
  const std::optional<int32_t> eos = tokenizer.eos_id();
  if (eos) g.stop_ids.push_back(*eos);
  g.pad_id = tokenizer.pad_id().value_or(eos.value_or(0));
  g.vocab_size = tokenizer.vocab_size();
  add_stop_strings(g, tokenizer, stop);
  if (g.stop_ids.empty() && !g.stop_when) fail("generation: the tokenizer has no EOS token and no stop strings are given");
  return generate_texts(model, tokenizer, ids, g, stop, progress);
}

std::vector<GeneratedText> generate_chat_answers(CausalLM& model, const Tokenizer& tokenizer, ChatFormat format,
                                                 const std::vector<std::string>& prompts, int64_t max_new_tokens,
                                                 const std::vector<std::string>& stop, int64_t batch_size, bool progress) {
  const std::vector<std::vector<int32_t>> ids = chat_prompt_ids(tokenizer, format, prompts);
  for (size_t i = 0; i < ids.size(); ++i)
    if (static_cast<int64_t>(ids[i].size()) + max_new_tokens > model->config.max_position_embeddings)
      fail("generation: prompt ", i, " is ", ids[i].size(), " tokens in the chat format; with ", max_new_tokens,
           " new tokens that is past the model's context of ", model->config.max_position_embeddings);
  GenerationOptions g = chat_generation_options(tokenizer, format, max_new_tokens, batch_size);
  add_stop_strings(g, tokenizer, stop);
  return generate_texts(model, tokenizer, ids, g, stop, progress);
}

std::string normalise_whitespace(const std::string& text) {
  std::string out;
  bool space = false;
  for (char c : text) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

std::string humaneval_program(const GenProblem& problem, const std::string& completion) {
  return problem.prompt + completion + "\n" + problem.test + "\n" + "check(" + problem.entry_point + ")\n";
}

void score_answer(GenTaskKind task, const GenProblem& problem, GenSample& sample) {
  const std::string& text = sample.generated.text;
  if (task == GenTaskKind::gsm8k) {
    const std::string gold = gsm8k_normalise(problem.answer);
    sample.answer = gsm8k_normalise(gsm8k_strict_answer(text));
    sample.answer_flexible = gsm8k_normalise(gsm8k_flexible_answer(text));
    sample.correct = sample.answer == gold;
    sample.correct_flexible = sample.answer_flexible == gold;
  } else if (task == GenTaskKind::math) {
    const std::string gold = normalise_math_answer(problem.answer);
    const std::string line = minerva_final_answer(text);
    sample.answer = normalise_math_answer(line);
    sample.correct = line != kInvalidMathAnswer && sample.answer == gold;
    std::optional<std::string> boxed = last_boxed_content(text);
    sample.answer_flexible = line != kInvalidMathAnswer ? sample.answer : boxed ? normalise_math_answer(*boxed) : kInvalidMathAnswer;
    sample.correct_flexible = sample.answer_flexible != kInvalidMathAnswer && sample.answer_flexible == gold;
  } else if (task == GenTaskKind::chat) {
    const std::string gold = normalise_whitespace(problem.answer);
    sample.answer = sample.answer_flexible = normalise_whitespace(text);
    sample.correct = sample.answer == gold;
    sample.correct_flexible = !gold.empty() && sample.answer.rfind(gold, 0) == 0;
  } else {
    fail("score_answer: humaneval is scored by running its tests");
  }
}

GenReport run_generation_task(CausalLM& model, const Tokenizer& tokenizer, GenTaskKind task,
                              const std::vector<GenProblem>& problems, const GenTaskOptions& options) {
  const GenTaskDefaults defaults = gen_task_defaults(task);
  const int64_t max_new_tokens = options.max_new_tokens > 0 ? options.max_new_tokens : defaults.max_new_tokens;
  const std::vector<std::string>& stop = options.stop.empty() ? defaults.stop : options.stop;
  const int64_t max_length = options.max_length > 0 ? options.max_length : model->config.max_position_embeddings;
  std::vector<std::string> prompts;
  for (const GenProblem& p : problems) prompts.push_back(p.prompt);

  GenReport report;
  auto start = std::chrono::steady_clock::now();
  std::vector<GeneratedText> texts =
      task == GenTaskKind::chat
          ? generate_chat_answers(model, tokenizer, resolve_chat_format("auto", tokenizer), prompts, max_new_tokens, stop,
                                  options.batch_size, options.progress)
          : generate_until(model, tokenizer, prompts, max_new_tokens, stop, options.batch_size, max_length, options.progress);
  report.generation_seconds = seconds_since(start);
  report.samples.resize(problems.size());
  for (size_t i = 0; i < problems.size(); ++i) report.samples[i].generated = std::move(texts[i]);

  std::vector<double> correct, flexible;
  if (task == GenTaskKind::humaneval) {
    std::vector<std::string> programs;
    for (size_t i = 0; i < problems.size(); ++i) programs.push_back(humaneval_program(problems[i], report.samples[i].generated.text));
    const int64_t workers = options.workers > 0 ? options.workers : std::max<int64_t>(1, std::thread::hardware_concurrency());
    std::optional<Progress> bar;
    if (options.progress) bar.emplace("running tests", static_cast<int64_t>(programs.size()), "programs");
    start = std::chrono::steady_clock::now();
    std::vector<SandboxResult> runs = run_python_sandboxed(options.python, programs, options.sandbox, workers, [&](int64_t done) {
      if (bar) bar->update(done);
    });
    if (bar) bar->finish();
    report.execution_seconds = seconds_since(start);
    for (size_t i = 0; i < problems.size(); ++i) {
      GenSample& s = report.samples[i];
      s.run = std::move(runs[i]);
      s.correct = s.correct_flexible = s.run.outcome == SandboxOutcome::passed;
      correct.push_back(s.correct ? 1.0 : 0.0);
    }
    report.pass_at_1 = mean_stderr(correct);
    return report;
  }
  for (size_t i = 0; i < problems.size(); ++i) {
    score_answer(task, problems[i], report.samples[i]);
    correct.push_back(report.samples[i].correct ? 1.0 : 0.0);
    flexible.push_back(report.samples[i].correct_flexible ? 1.0 : 0.0);
  }
  report.exact_match = mean_stderr(correct);
  report.exact_match_flexible = mean_stderr(flexible);
  if (task == GenTaskKind::chat) {
    std::vector<double> repetitive;
    for (const GenSample& s : report.samples) repetitive.push_back(s.generated.repetitive ? 1.0 : 0.0);
    report.repetition_ratio = mean_stderr(repetitive);
  }
  return report;
}

}  // namespace dsalign
