#include "eval/scored_tasks.h"

#include <cstdint>
#include <optional>

#include "util/progress.h"

namespace dsalign {

std::vector<LoglikResult> score_with_progress(CausalLM& model, const std::vector<TokenizedRequest>& requests,
                                              const ScoringOptions& options, const std::string& label) {
  std::optional<Progress> progress;
  if (options.progress) progress.emplace(label, static_cast<int64_t>(requests.size()), "requests");
  std::vector<LoglikResult> out = score_requests(model, requests, scoring_length(model, options), options.batch_size,
                                                 [&](int64_t done) {
                                                   if (progress) progress->update(done);
                                                 },
                                                 options.min_shared_context > 0 ? options.min_shared_context : INT64_MAX);
  if (progress) progress->finish();
  return out;
}

int64_t scoring_length(const CausalLM& model, const ScoringOptions& options) {
  return options.max_length > 0 ? options.max_length : model->config.max_position_embeddings;
}

McReport run_multiple_choice(CausalLM& model, const Tokenizer& tokenizer, const std::vector<McQuestion>& questions,
                             bool unconditional, const ScoringOptions& options) {
  std::vector<TokenizedRequest> requests;
  // (context, continuation) of choice c, conditional or not.
  auto request = [](const McQuestion& q, size_t c, bool conditional) -> LoglikRequest {
    const std::string continuation = q.contexts.empty() ? q.target_delimiter + q.choices[c] : q.continuation;
    if (!conditional) return {q.unconditional_context.value_or(""), continuation};
    return {q.contexts.empty() ? q.query : q.contexts[c], continuation};
  };
  for (const McQuestion& q : questions)
    for (size_t c = 0; c < q.choices.size(); ++c) requests.push_back(tokenize_request(tokenizer, request(q, c, true)));
  if (unconditional)
    for (const McQuestion& q : questions)
      for (size_t c = 0; c < q.choices.size(); ++c) requests.push_back(tokenize_request(tokenizer, request(q, c, false)));
  const std::vector<LoglikResult> scored = score_with_progress(model, requests, options, "multiple choice");
  McReport report;
  report.unconditional = unconditional;
  std::vector<double> acc, acc_norm, acc_bytes, mutual;
  size_t next = 0, next_unconditional = requests.size() / (unconditional ? 2 : 1);
  for (const McQuestion& q : questions) {
    McResult r;
    for (size_t c = 0; c < q.choices.size(); ++c) {
      r.lls.push_back(scored[next++].loglik);
      if (unconditional) r.unconditional_lls.push_back(scored[next_unconditional++].loglik);
    }
    r.scores = score_question(q, r.lls, unconditional ? &r.unconditional_lls : nullptr);
    acc.push_back(r.scores.acc);
    acc_norm.push_back(r.scores.acc_norm);
    acc_bytes.push_back(r.scores.acc_bytes);
    if (r.scores.acc_mutual_info) mutual.push_back(*r.scores.acc_mutual_info);
    report.questions.push_back(std::move(r));
  }
  report.acc = mean_stderr(acc);
  report.acc_norm = mean_stderr(acc_norm);
  report.acc_bytes = mean_stderr(acc_bytes);
  report.acc_mutual_info = mean_stderr(mutual);
  return report;
}

BpbReport run_bits_per_byte(CausalLM& model, const Tokenizer& tokenizer, const std::vector<std::string>& documents,
                            const ScoringOptions& options) {
  const int64_t max_length = scoring_length(model, options);
  const int32_t prefix = prefix_token(tokenizer);
  std::vector<TokenizedRequest> windows;
  BpbReport report;
  std::vector<size_t> owner;  // the document of each window
  for (size_t d = 0; d < documents.size(); ++d) {
    BpbDocument doc;
    const std::vector<int32_t> tokens = tokenizer.encode(documents[d]);
    doc.tokens = static_cast<int64_t>(tokens.size());
    doc.bytes = static_cast<int64_t>(documents[d].size());
    doc.words = python_word_count(documents[d]);
    for (RollingWindow& w : rolling_windows(tokens, prefix, max_length)) {
      windows.push_back({std::move(w.context), std::move(w.continuation)});
      owner.push_back(d);
      ++doc.windows;
    }
    report.documents.push_back(doc);
  }
  const std::vector<LoglikResult> scored = score_with_progress(model, windows, options, "bits per byte");
  for (size_t i = 0; i < scored.size(); ++i) report.documents[owner[i]].loglik += scored[i].loglik;
  for (const BpbDocument& d : report.documents) {
    report.totals.loglik += d.loglik;
    report.totals.bytes += d.bytes;
    report.totals.words += d.words;
  }
  return report;
}

}  // namespace dsalign
