#include "eval/loglik.h"

#include <algorithm>
#include <numeric>

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

std::vector<LoglikResult> score_requests(CausalLM& model, const std::vector<TokenizedRequest>& requests,
                                         int64_t max_length, int64_t batch_size,
                                         const std::function<void(int64_t)>& on_progress) {
  torch::NoGradGuard no_grad;
  const torch::Device device = model->options.device;
  std::vector<LoglikResult> results(requests.size());
  // What the model reads for each request: the last max_length + 1 tokens, less the last.
  std::vector<std::vector<int64_t>> inputs(requests.size());
  std::vector<size_t> order(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    const TokenizedRequest& r = requests[i];
    if (r.context.empty() || r.continuation.empty())
      fail("request ", i, ": an empty context or continuation after tokenisation");
    if (static_cast<int64_t>(r.continuation.size()) > max_length)
      fail("request ", i, ": its continuation has ", r.continuation.size(), " tokens, more than the model's length ",
           max_length);
    std::vector<int64_t> all(r.context.begin(), r.context.end());
    all.insert(all.end(), r.continuation.begin(), r.continuation.end());
    if (static_cast<int64_t>(all.size()) > max_length + 1) all.erase(all.begin(), all.end() - (max_length + 1));
    all.pop_back();
    inputs[i] = std::move(all);
    order[i] = i;
  }
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return inputs[a].size() > inputs[b].size(); });
  int64_t done = 0;
  for (size_t start = 0; start < order.size(); start += static_cast<size_t>(batch_size)) {
    const size_t end = std::min(order.size(), start + static_cast<size_t>(batch_size));
    const auto B = static_cast<int64_t>(end - start);
    const auto T = static_cast<int64_t>(inputs[order[start]].size());  // longest first
    // Right-padded (causal: padding after a sequence does not change its logits).
    torch::Tensor ids = torch::zeros({B, T}, torch::kInt64);
    std::vector<int64_t> positions, targets;  // flat b * T + t of each continuation token, and the token
    for (int64_t b = 0; b < B; ++b) {
      const size_t i = order[start + static_cast<size_t>(b)];
      const std::vector<int64_t>& in = inputs[i];
      std::copy(in.begin(), in.end(), ids[b].data_ptr<int64_t>());
      const auto n = static_cast<int64_t>(requests[i].continuation.size()), len = static_cast<int64_t>(in.size());
      for (int64_t k = 0; k < n; ++k) {
        positions.push_back(b * T + len - n + k);
        targets.push_back(requests[i].continuation[static_cast<size_t>(k)]);
      }
    }
    torch::Tensor where = torch::tensor(positions, torch::kInt64).to(device);
    torch::Tensor want = torch::tensor(targets, torch::kInt64).to(device);
    torch::Tensor scored = model->head(model->trunk({ids.to(device)}), [&](const torch::Tensor& normed, const torch::Tensor& w) {
      torch::Tensor h = normed.reshape({-1, normed.size(-1)}).index_select(0, where);
      torch::Tensor logp = torch::log_softmax(torch::nn::functional::linear(h, w).to(torch::kFloat32), -1);
      torch::Tensor picked = logp.gather(1, want.unsqueeze(1)).squeeze(1);
      torch::Tensor greedy = (logp.argmax(-1) == want).to(torch::kFloat32);
      return torch::stack({picked, greedy}, 1);
    });
    torch::Tensor host = scored.to(torch::kCPU, torch::kFloat64).contiguous();
    const double* v = host.data_ptr<double>();
    size_t k = 0;
    for (int64_t b = 0; b < B; ++b) {
      const size_t i = order[start + static_cast<size_t>(b)];
      LoglikResult& r = results[i];
      r.tokens = static_cast<int64_t>(requests[i].continuation.size());
      r.is_greedy = true;
      for (int64_t t = 0; t < r.tokens; ++t, ++k) {
        r.loglik += v[2 * k];
        r.is_greedy = r.is_greedy && v[2 * k + 1] > 0.5;
      }
    }
    done += B;
    if (on_progress) on_progress(done);
  }
  return results;
}

}  // namespace dsalign
