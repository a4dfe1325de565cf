#include "model/generate.h"

#include <algorithm>
#include <numeric>

#include "util/error.h"

namespace dsalign {

std::vector<std::vector<int32_t>> chat_prompt_ids(const Tokenizer& tokenizer, ChatFormat format,
                                                  const std::vector<std::string>& user_messages) {
  std::vector<std::vector<ChatMessage>> conversations;
  for (const auto& m : user_messages) conversations.push_back({{"user", m}});
  return chat_prompt_ids(tokenizer, format, conversations);
}

std::vector<std::vector<int32_t>> chat_prompt_ids(const Tokenizer& tokenizer, ChatFormat format,
                                                  const std::vector<std::vector<ChatMessage>>& conversations) {
  EncodeScratch scratch;
  std::vector<std::vector<int32_t>> ids;
  for (const auto& c : conversations) ids.push_back(tokenize_chat(tokenizer, format, c, true, ChatLossOptions{}, scratch).ids);
  return ids;
}

GenerationOptions chat_generation_options(const Tokenizer& tokenizer, ChatFormat format, int64_t max_new_tokens,
                                          int64_t batch_size) {
  GenerationOptions g;
  g.max_new_tokens = max_new_tokens;
  g.batch_size = batch_size;
  g.pad_id = tokenizer.pad_id().value_or(tokenizer.eos_id().value_or(0));
  g.vocab_size = tokenizer.vocab_size();
  if (auto eot = tokenizer.token_to_id(end_of_turn_token(format, tokenizer.settings().eos_token))) g.stop_ids.push_back(*eot);
  if (auto eos = tokenizer.eos_id(); eos && std::find(g.stop_ids.begin(), g.stop_ids.end(), *eos) == g.stop_ids.end())
    g.stop_ids.push_back(*eos);
  if (g.stop_ids.empty()) fail("generation: the tokenizer has neither an end-of-turn nor an EOS token to stop at");
  return g;
}

std::vector<Generation> generate_greedy(CausalLM& model, const std::vector<std::vector<int32_t>>& prompts,
                                        const GenerationOptions& o, const std::function<void(size_t, size_t)>& on_batch) {
  if (o.max_new_tokens < 1) fail("generation: max_new_tokens must be at least 1, got ", o.max_new_tokens);
  if (o.batch_size < 1) fail("generation: batch_size must be at least 1, got ", o.batch_size);
  const int64_t context = model->config.max_position_embeddings;
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (prompts[i].empty()) fail("generation: prompt ", i + 1, " is empty");
    if (static_cast<int64_t>(prompts[i].size()) > context)
      fail("generation: prompt ", i + 1, " is ", prompts[i].size(), " tokens, longer than the model's context of ",
           context, " (max_position_embeddings)");
  }
  torch::NoGradGuard no_grad;
  const torch::Device device = model->options.device;
  std::vector<size_t> order(prompts.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return prompts[a].size() > prompts[b].size(); });

  std::vector<Generation> out(prompts.size());
  // With sharded units every rank gathers each unit for every forward, so all ranks take the same
  // number of batches and decoding steps: a rank out of prompts decodes a one-token filler prompt,
  // a rank whose rows have all stopped keeps stepping (on padding) until every rank's have.
  const auto per_batch = static_cast<size_t>(o.batch_size);
  const int64_t batches = static_cast<int64_t>((order.size() + per_batch - 1) / per_batch);
  const std::vector<int32_t> filler_prompt = {o.pad_id};
  std::vector<Generation> filler_out(1);
  for (int64_t turn = 0, turns = model->turns_in_lockstep(batches); turn < turns; ++turn) {
    const bool real_batch = turn < batches;
    const size_t first = real_batch ? static_cast<size_t>(turn) * per_batch : 0;
    const size_t last = real_batch ? std::min(order.size(), first + per_batch) : 1;
    auto prompt = [&](size_t i) -> const std::vector<int32_t>& { return real_batch ? prompts[order[i]] : filler_prompt; };
    auto result = [&](size_t i) -> Generation& { return real_batch ? out[order[i]] : filler_out[0]; };
    const int64_t B = static_cast<int64_t>(last - first);
    int64_t longest = 0;
    for (size_t i = first; i < last; ++i) longest = std::max<int64_t>(longest, static_cast<int64_t>(prompt(i).size()));

    // Left padding: every row's last prompt token sits in the same slot.
    auto ids = torch::full({B, longest}, o.pad_id, torch::kInt64);
    auto real = torch::zeros({B, longest}, torch::kBool);
    auto positions = torch::zeros({B, longest}, torch::kInt64);
    std::vector<int64_t> next_position(static_cast<size_t>(B));
    for (int64_t b = 0; b < B; ++b) {
      const auto& p = prompt(first + static_cast<size_t>(b));
      const int64_t n = static_cast<int64_t>(p.size()), pad = longest - n;
      for (int64_t t = 0; t < n; ++t) {
        ids[b][pad + t] = static_cast<int64_t>(p[static_cast<size_t>(t)]);
        real[b][pad + t] = true;
        positions[b][pad + t] = t;
      }
      next_position[static_cast<size_t>(b)] = n;
    }
    KVCache cache = model->new_cache(B, longest + o.max_new_tokens);
    torch::Tensor logits = model->forward_cached(ids.to(device), positions.to(device), real.to(device), cache);

    std::vector<bool> done(static_cast<size_t>(B), false);
    for (int64_t step = 0; step < o.max_new_tokens; ++step) {
      if (o.vocab_size > 0 && o.vocab_size < logits.size(-1)) logits = logits.narrow(-1, 0, o.vocab_size);
      torch::Tensor next = logits.argmax(-1).to(torch::kCPU);
      auto next_ids = torch::full({B, 1}, o.pad_id, torch::kInt64);
      auto next_real = torch::zeros({B, 1}, torch::kBool);
      auto next_positions = torch::zeros({B, 1}, torch::kInt64);
      bool all_done = true;
      for (int64_t b = 0; b < B; ++b) {
        const size_t row = static_cast<size_t>(b);
        if (done[row]) continue;
        const int32_t token = static_cast<int32_t>(next[b].item<int64_t>());
        Generation& g = result(first + row);
        if (std::find(o.stop_ids.begin(), o.stop_ids.end(), token) != o.stop_ids.end()) {
          g.terminated = true;
          done[row] = true;
          continue;
        }
        g.tokens.push_back(token);
        if (o.stop_when && o.stop_when(g.tokens)) {
          g.terminated = true;
          done[row] = true;
          continue;
        }
        all_done = false;
        next_ids[b][0] = static_cast<int64_t>(token);
        next_real[b][0] = true;
        next_positions[b][0] = next_position[row]++;
      }
      if (model->turns_in_lockstep(all_done ? 0 : 1) == 0 || step + 1 == o.max_new_tokens) break;
      logits = model->forward_cached(next_ids.to(device), next_positions.to(device), next_real.to(device), cache);
    }
    if (on_batch && real_batch) on_batch(last, order.size());
  }
  return out;
}

}  // namespace dsalign
