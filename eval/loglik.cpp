#include "eval/loglik.h"

#include <algorithm>
#include <map>
#include <set>

#include "util/error.h"

namespace dsalign {

int32_t prefix_token(const Tokenizer& tokenizer) {
  if (tokenizer.bos_id()) return *tokenizer.bos_id();
  if (tokenizer.eos_id()) return *tokenizer.eos_id();
  fail("the tokenizer has neither a BOS nor an EOS token to condition an empty context on");
}

TokenizedRequest tokenize_request(const Tokenizer& tokenizer, const LoglikRequest& request) {
  TokenizedRequest out;
  if (request.context.empty()) {
    out.continuation = tokenizer.encode(request.continuation);
    const int32_t prefix = prefix_token(tokenizer);
    if (!out.continuation.empty() && out.continuation.front() == prefix) {
      out.context = {prefix};
      out.continuation.erase(out.continuation.begin());
    } else {
      out.context = {prefix};
    }
    return out;
  }
  std::string context = request.context, continuation = request.continuation;
  const size_t kept = context.find_last_not_of(" \t\n\r\f\v");
  // Python's rstrip() also strips Unicode whitespace; contexts end in ASCII whitespace in practice,
  // and a context of only whitespace keeps none.
  const size_t end = kept == std::string::npos ? 0 : kept + 1;
  continuation = context.substr(end) + continuation;
  context.resize(end);
  if (context.empty()) return tokenize_request(tokenizer, {"", continuation});
  std::vector<int32_t> whole = tokenizer.encode(context + continuation);
  const size_t split = std::min(tokenizer.encode(context).size(), whole.size());
  out.context.assign(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(split));
  out.continuation.assign(whole.begin() + static_cast<std::ptrdiff_t>(split), whole.end());
  return out;
}

namespace {

// One row of a scoring batch: tokens with their positions, and per token a segment: -1 for a
// shared context (causal), s >= 0 for continuation s, which sees the context and its own earlier
// tokens only. Every scored token is (row position whose logits predict it, the token, request).
struct ScoringRow {
  std::vector<int64_t> tokens, positions, segments;
  int64_t next_segment = 0;
  struct Target {
    int64_t at, token;
    size_t request;
  };
  std::vector<Target> targets;
};

// Requests whose whole context + continuation fits the model (no left truncation) and share
// their context tokens go into one row: the context once, then each continuation but its last
// token, positions restarting after the context. The others get a row each: what the model reads,
// (context + continuation)[-(max_length + 1):][:-1].
std::vector<ScoringRow> scoring_rows(const std::vector<TokenizedRequest>& requests, int64_t max_length,
                                     int64_t min_shared_context) {
  std::vector<ScoringRow> rows;
  std::map<std::vector<int32_t>, size_t> shared;  // context tokens -> row
  for (size_t i = 0; i < requests.size(); ++i) {
    const TokenizedRequest& r = requests[i];
    if (r.context.empty() || r.continuation.empty())
      fail("request ", i, ": an empty context or continuation after tokenisation");
    const auto c = static_cast<int64_t>(r.context.size()), n = static_cast<int64_t>(r.continuation.size());
    if (n > max_length) fail("request ", i, ": its continuation has ", n, " tokens, more than the model's length ", max_length);
    if (c >= min_shared_context && c + n <= max_length + 1) {
      // A row holds its context and continuations up to about twice the context (at least 64
      // tokens more): sharing pays while the context dominates, and attention grows with the
      // square of the row (1600 choices after a lone BOS are many short rows, not one long one).
      const int64_t cap = std::max(2 * c, c + 64);
      auto [it, fresh] = shared.try_emplace(r.context, rows.size());
      if (!fresh && static_cast<int64_t>(rows[it->second].tokens.size()) + n - 1 > cap) {
        it->second = rows.size();
        fresh = true;
      }
      if (fresh) {
        ScoringRow row;
        row.tokens.assign(r.context.begin(), r.context.end());
        row.segments.assign(static_cast<size_t>(c), -1);
        for (int64_t t = 0; t < c; ++t) row.positions.push_back(t);
        rows.push_back(std::move(row));
      }
      ScoringRow& row = rows[it->second];
      const int64_t segment = row.next_segment++;
      row.targets.push_back({c - 1, r.continuation[0], i});  // the context's last token predicts the first
      for (int64_t k = 0; k + 1 < n; ++k) {
        row.targets.push_back({static_cast<int64_t>(row.tokens.size()), r.continuation[static_cast<size_t>(k + 1)], i});
        row.tokens.push_back(r.continuation[static_cast<size_t>(k)]);
        row.positions.push_back(c + k);
        row.segments.push_back(segment);
      }
      continue;
    }
    std::vector<int64_t> all(r.context.begin(), r.context.end());
    all.insert(all.end(), r.continuation.begin(), r.continuation.end());
    if (static_cast<int64_t>(all.size()) > max_length + 1) all.erase(all.begin(), all.end() - (max_length + 1));
    all.pop_back();
    ScoringRow row;
    row.tokens = all;
    row.segments.assign(all.size(), -1);
    for (size_t t = 0; t < all.size(); ++t) row.positions.push_back(static_cast<int64_t>(t));
    const auto len = static_cast<int64_t>(all.size());
    for (int64_t k = 0; k < n; ++k) row.targets.push_back({len - n + k, r.continuation[static_cast<size_t>(k)], i});
    rows.push_back(std::move(row));
  }
  return rows;
}

// The [B, T, T] attention mask of rows[start, end), right-padded to T: a token attends to the
// shared context and to the earlier tokens of its own continuation; padding to itself only.
torch::Tensor segment_mask(const std::vector<ScoringRow>& rows, size_t start, size_t end, int64_t T) {
  const auto B = static_cast<int64_t>(end - start);
  torch::Tensor mask = torch::eye(T, torch::kBool).unsqueeze(0).repeat({B, 1, 1});
  auto m = mask.accessor<bool, 3>();
  for (int64_t b = 0; b < B; ++b) {
    const std::vector<int64_t>& segments = rows[start + static_cast<size_t>(b)].segments;
    for (size_t q = 0; q < segments.size(); ++q)
      for (size_t k = 0; k <= q; ++k) m[b][static_cast<int64_t>(q)][static_cast<int64_t>(k)] = segments[k] == -1 || segments[k] == segments[q];
  }
  return mask;
}

}  // namespace

std::vector<LoglikResult> score_requests(CausalLM& model, const std::vector<TokenizedRequest>& requests,
                                         int64_t max_length, int64_t batch_size,
                                         const std::function<void(int64_t)>& on_progress, int64_t min_shared_context) {
  torch::NoGradGuard no_grad;
  const torch::Device device = model->options.device;
  std::vector<LoglikResult> results(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    results[i].tokens = static_cast<int64_t>(requests[i].continuation.size());
    results[i].is_greedy = true;
  }
  std::vector<ScoringRow> rows = scoring_rows(requests, max_length, min_shared_context);
  std::stable_sort(rows.begin(), rows.end(), [](const ScoringRow& a, const ScoringRow& b) { return a.tokens.size() > b.tokens.size(); });
  // With sharded units every rank gathers each unit for every forward, so all ranks run the same
  // number of batches: a rank out of rows scores a one-token filler row and drops its result.
  const auto per_batch = static_cast<size_t>(batch_size);
  const int64_t batches = static_cast<int64_t>((rows.size() + per_batch - 1) / per_batch);
  const std::vector<ScoringRow> filler = {ScoringRow{{0}, {0}, {-1}, 0, {{0, 0, requests.size()}}}};
  int64_t done = 0;
  for (int64_t turn = 0, turns = model->turns_in_lockstep(batches); turn < turns; ++turn) {
    const bool real = turn < batches;
    const std::vector<ScoringRow>& batch_rows = real ? rows : filler;
    const size_t start = real ? static_cast<size_t>(turn) * per_batch : 0;
    const size_t end = real ? std::min(rows.size(), start + per_batch) : 1;
    const auto B = static_cast<int64_t>(end - start);
    const auto T = static_cast<int64_t>(batch_rows[start].tokens.size());  // longest first
    bool shared_rows = false;
    for (size_t r = start; r < end; ++r) shared_rows = shared_rows || batch_rows[r].next_segment > 0;
    torch::Tensor ids = torch::zeros({B, T}, torch::kInt64), positions = torch::zeros({B, T}, torch::kInt64);
    std::vector<int64_t> where, want;
    std::vector<size_t> owner;
    for (int64_t b = 0; b < B; ++b) {
      const ScoringRow& row = batch_rows[start + static_cast<size_t>(b)];
      std::copy(row.tokens.begin(), row.tokens.end(), ids[b].data_ptr<int64_t>());
      std::copy(row.positions.begin(), row.positions.end(), positions[b].data_ptr<int64_t>());
      for (const ScoringRow::Target& t : row.targets) {
        where.push_back(b * T + t.at);
        want.push_back(t.token);
        owner.push_back(t.request);
      }
    }
    torch::Tensor where_t = torch::tensor(where, torch::kInt64).to(device);
    torch::Tensor want_t = torch::tensor(want, torch::kInt64).to(device);
    DecoderInput input{ids.to(device), positions.to(device)};
    // Batches without a shared row stay plain causal rows (attention's fast path).
    if (shared_rows) input.attention_mask = segment_mask(batch_rows, start, end, T).to(device);
    torch::Tensor scored = model->head(model->trunk(input), [&](const torch::Tensor& normed, const torch::Tensor& w) {
      torch::Tensor h = normed.reshape({-1, normed.size(-1)}).index_select(0, where_t);
      torch::Tensor logp = torch::log_softmax(torch::nn::functional::linear(h, w).to(torch::kFloat32), -1);
      torch::Tensor picked = logp.gather(1, want_t.unsqueeze(1)).squeeze(1);
      torch::Tensor greedy = (logp.argmax(-1) == want_t).to(torch::kFloat32);
      return torch::stack({picked, greedy}, 1);
    });
    torch::Tensor host = scored.to(torch::kCPU, torch::kFloat64).contiguous();
    const double* v = host.data_ptr<double>();
    if (!real) continue;
    std::set<size_t> finished;
    for (size_t k = 0; k < owner.size(); ++k) {
      LoglikResult& r = results[owner[k]];
      r.loglik += v[2 * k];
      r.is_greedy = r.is_greedy && v[2 * k + 1] > 0.5;
      finished.insert(owner[k]);
    }
    done += static_cast<int64_t>(finished.size());
    if (on_progress) on_progress(done);
  }
  return results;
}

}  // namespace dsalign
