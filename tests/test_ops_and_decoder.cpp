// ops:: references against first-principles formulas, and decoder properties: packing, padding,
// GQA, activation checkpointing, gradient accumulation, mixed precision; the KV cache and greedy
// generation against recomputing the whole sequence.
#include <gtest/gtest.h>

#include "data/sft_data.h"
#include "model/decoder.h"
#include "model/generate.h"
#include "model/kernel_choice.h"
#include "model/rope.h"
#include "train/run_setup.h"

using namespace dsalign;

namespace {

ModelConfig tiny_config(int64_t kv_heads = 2) {
  ModelConfig c = *model_preset("tiny");
  c.num_key_value_heads = kv_heads;
  c.num_hidden_layers = 2;
  return c;
}

CausalLM tiny_model(const ModelConfig& c, DecoderOptions o = {}) {
  CausalLM m(c, o);
  m->init_weights(3);
  return m;
}

torch::Tensor random_ids(int64_t b, int64_t t, int64_t vocab, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return torch::randint(vocab, {b, t}, gen, torch::kInt64);
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

}  // namespace

TEST(Ops, RmsNormMatchesDefinitionOnOddShapes) {
  torch::manual_seed(0);
  for (int64_t d : {1, 7, 123, 4096}) {
    torch::Tensor x = torch::randn({3, 5, d}, torch::kFloat64);
    torch::Tensor w = torch::randn({d}, torch::kFloat64);
    torch::Tensor expected = x / torch::sqrt((x * x).mean(-1, true) + 1e-6) * w;
    torch::Tensor got = ops::rms_norm(x.to(torch::kFloat32), w.to(torch::kFloat32), 1e-6, ops::Backend::reference);
    EXPECT_LE(max_diff(got, expected), 1e-5 * (1 + expected.abs().max().item<double>())) << d;
  }
}

TEST(Ops, SwigluMatchesDefinition) {
  torch::Tensor g = torch::randn({4, 171}, torch::kFloat64), u = torch::randn({4, 171}, torch::kFloat64);
  torch::Tensor expected = g / (1 + torch::exp(-g)) * u;
  EXPECT_LE(max_diff(ops::swiglu(g, u, ops::Backend::reference), expected), 1e-12);
}

// Rotate-half RoPE equals rotating each pair (x_i, x_{i + hd/2}) by angle pos * inv_freq_i.
TEST(Ops, RopeRotatesPairs) {
  ModelConfig c = tiny_config();
  const int64_t B = 2, H = 3, T = 9, hd = c.head_dim;
  torch::Tensor x = torch::randn({B, H, T, hd}, torch::kFloat64);
  torch::Tensor pos = torch::arange(T, torch::kInt64).unsqueeze(0).expand({B, T}).contiguous();
  RopeTables tables = rope_tables(c, pos, torch::kFloat64);
  torch::Tensor got = ops::rope(x, tables.cos, tables.sin, ops::Backend::reference);
  torch::Tensor inv = rope_inv_freq(c, T).to(torch::kFloat64);
  for (int64_t t : {0, 4, 8}) {
    for (int64_t i : {int64_t{0}, hd / 2 - 1}) {
      double angle = t * inv[i].item<double>();
      double a = x[1][2][t][i].item<double>(), b = x[1][2][t][i + hd / 2].item<double>();
      EXPECT_NEAR(got[1][2][t][i].item<double>(), a * std::cos(angle) - b * std::sin(angle), 1e-6);
      EXPECT_NEAR(got[1][2][t][i + hd / 2].item<double>(), b * std::cos(angle) + a * std::sin(angle), 1e-6);
    }
  }
}

TEST(Rope, LinearScalingDividesFrequencies) {
  ModelConfig c = tiny_config();
  torch::Tensor plain = rope_inv_freq(c, 10);
  c.rope_scaling.type = RopeScalingType::linear;
  c.rope_scaling.factor = 4.0;
  EXPECT_LE(max_diff(rope_inv_freq(c, 10), plain / 4.0), 1e-12);
}

TEST(Ops, LinearCrossEntropyIgnoresMaskedTargets) {
  torch::Tensor h = torch::randn({6, 8}), w = torch::randn({11, 8});
  torch::Tensor targets = torch::tensor({1, -100, 3, 10, -100, 0}, torch::kInt64);
  torch::Tensor logp = torch::log_softmax(torch::matmul(h, w.t()).to(torch::kFloat64), -1);
  double expected = 0;
  for (int64_t i = 0; i < 6; ++i)
    if (targets[i].item<int64_t>() != -100) expected -= logp[i][targets[i].item<int64_t>()].item<double>();
  EXPECT_NEAR(ops::linear_cross_entropy_sum(h, w, targets, ops::Backend::reference).item<double>(), expected, 1e-4);
}

// The chunked log-probs (recomputing logits in backward) against all-at-once log_softmax through
// autograd: values and both gradients, fp32 within 1e-5; with bf16 inputs within 2e-2 relative
// to the largest gradient (bf16 matmuls on both sides, different summation order).
TEST(Ops, ChunkedLinearLogProbsMatchReference) {
  torch::manual_seed(3);
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    torch::Tensor h = torch::randn({50, 24}).to(dtype).requires_grad_(true);
    torch::Tensor w = torch::randn({300, 24}).mul_(0.3).requires_grad_(true);
    torch::Tensor targets = torch::randint(0, 300, {50}, torch::kInt64);
    torch::Tensor upstream = torch::randn({50});
    torch::Tensor ref = ops::reference::linear_log_probs(h, w.to(dtype), targets);
    auto ref_grads = torch::autograd::grad({ref}, {h, w}, {upstream});
    torch::Tensor got = ops::linear_log_probs(h, w, targets, ops::Backend::reference, /*chunk_rows=*/7);
    auto got_grads = torch::autograd::grad({got}, {h, w}, {upstream});
    const double tol = dtype == torch::kFloat32 ? 1e-5 : 2e-2;
    EXPECT_EQ(got.scalar_type(), torch::kFloat32);
    EXPECT_LE(max_diff(got, ref), tol * ref.abs().max().item<double>()) << "values " << dtype;
    for (int i = 0; i < 2; ++i)
      EXPECT_LE(max_diff(got_grads[i].to(torch::kFloat32), ref_grads[i].to(torch::kFloat32)),
                tol * ref_grads[i].abs().max().item<double>())
          << (i ? "weight" : "hidden") << " gradient " << dtype;
  }
}

// Several documents in one row, positions restarting per document and no attention across
// documents, give the logits of each document run on its own.
TEST(Decoder, PackedRowEqualsDocumentsRunSeparately) {
  ModelConfig c = tiny_config();
  CausalLM model = tiny_model(c);
  torch::NoGradGuard no_grad;
  std::vector<int64_t> lengths = {5, 9, 3, 7};
  std::vector<torch::Tensor> docs, positions;
  for (size_t i = 0; i < lengths.size(); ++i) {
    docs.push_back(random_ids(1, lengths[i], c.vocab_size, 10 + i));
    positions.push_back(torch::arange(lengths[i], torch::kInt64).unsqueeze(0));
  }
  torch::Tensor packed_ids = torch::cat(docs, 1), packed_pos = torch::cat(positions, 1);
  torch::Tensor packed = model->forward({packed_ids, packed_pos, document_ids_from_positions(packed_pos)});
  int64_t offset = 0;
  for (size_t i = 0; i < docs.size(); ++i) {
    torch::Tensor alone = model->forward({docs[i]});
    EXPECT_LE(max_diff(packed.narrow(1, offset, lengths[i]), alone), 1e-5) << "document " << i;
    offset += lengths[i];
  }
}

TEST(Decoder, PackedLossEqualsSumOfDocumentLosses) {
  ModelConfig c = tiny_config();
  CausalLM model = tiny_model(c);
  torch::NoGradGuard no_grad;
  torch::Tensor a = random_ids(1, 6, c.vocab_size, 1), b = random_ids(1, 8, c.vocab_size, 2);
  torch::Tensor ids = torch::cat({a, b}, 1);
  torch::Tensor pos = torch::cat({torch::arange(6, torch::kInt64), torch::arange(8, torch::kInt64)}).unsqueeze(0);
  torch::Tensor labels = ids.clone();
  labels[0][6] = ops::kIgnoreIndex;  // the first token of document 2 is not predicted from document 1
  auto [packed_sum, packed_count] = model->loss_sum({ids, pos, document_ids_from_positions(pos)}, labels);
  auto [sa, ca] = model->loss_sum({a}, a);
  auto [sb, cb] = model->loss_sum({b}, b);
  EXPECT_EQ(packed_count.item<int64_t>(), ca.item<int64_t>() + cb.item<int64_t>());
  EXPECT_NEAR(packed_sum.item<double>(), sa.item<double>() + sb.item<double>(), 1e-4);
}

// A GQA model equals the MHA model whose K/V heads are the GQA heads repeated.
TEST(Decoder, GroupedQueryAttentionEqualsRepeatedHeads) {
  ModelConfig gqa = tiny_config(1);
  ModelConfig mha = tiny_config(4);
  CausalLM a = tiny_model(gqa), b = tiny_model(mha);
  torch::NoGradGuard no_grad;
  auto pa = a->named_parameters(), pb = b->named_parameters();
  for (auto& item : pb) {
    torch::Tensor src = pa[item.key()];
    if (item.key().ends_with("k_proj.weight") || item.key().ends_with("v_proj.weight"))
      src = src.view({1, gqa.head_dim, gqa.hidden_size}).repeat({4, 1, 1}).view({4 * gqa.head_dim, gqa.hidden_size});
    item.value().copy_(src);
  }
  torch::Tensor ids = random_ids(2, 12, gqa.vocab_size, 5);
  EXPECT_LE(max_diff(a->forward({ids}), b->forward({ids})), 1e-5);
  // the masked path (explicit document mask) agrees with the causal path
  torch::Tensor docs = torch::zeros({2, 12}, torch::kInt64);
  EXPECT_LE(max_diff(a->forward({ids, {}, docs}), a->forward({ids})), 1e-5);
}

TEST(Decoder, ActivationCheckpointingGivesIdenticalGradients) {
  ModelConfig c = tiny_config();
  DecoderOptions with;
  with.activation_checkpointing = true;
  CausalLM plain = tiny_model(c), ckpt = tiny_model(c, with);
  torch::Tensor ids = random_ids(2, 16, c.vocab_size, 9);
  for (CausalLM* m : {&plain, &ckpt}) {
    auto [sum, count] = (*m)->loss_sum({ids}, ids);
    sum.backward();
  }
  auto gp = plain->named_parameters(), gc = ckpt->named_parameters();
  for (auto& item : gp) {
    ASSERT_TRUE(gc[item.key()].grad().defined()) << item.key();
    EXPECT_LE(max_diff(item.value().grad(), gc[item.key()].grad()), 1e-6) << item.key();
  }
}

// Sum-then-divide: the loss and gradient of one batch equal those accumulated over micro-batches.
TEST(Decoder, GradientAccumulationEqualsOneBigBatch) {
  ModelConfig c = tiny_config();
  CausalLM big = tiny_model(c), micro = tiny_model(c);
  torch::Tensor ids = random_ids(4, 10, c.vocab_size, 4);
  torch::Tensor labels = ids.clone();
  labels.index_put_({1, torch::indexing::Slice(0, 7)}, ops::kIgnoreIndex);  // unequal token counts
  auto [sum, count] = big->loss_sum({ids}, labels);
  (sum / count.to(torch::kFloat32)).backward();
  int64_t total = (labels.narrow(1, 1, 9) != ops::kIgnoreIndex).sum().item<int64_t>();
  for (int64_t i = 0; i < 4; i += 2) {
    auto [s, n] = micro->loss_sum({ids.narrow(0, i, 2)}, labels.narrow(0, i, 2));
    (s / static_cast<double>(total)).backward();
  }
  auto a = big->named_parameters(), b = micro->named_parameters();
  for (auto& item : a) EXPECT_LE(max_diff(item.value().grad(), b[item.key()].grad()), 1e-6) << item.key();
}

// fp32 master weights with bf16 compute: parameters and their gradients stay fp32, logits are
// bf16 and close to the fp32 model's.
TEST(Decoder, Fp32MasterWeightsWithBf16Compute) {
  ModelConfig c = tiny_config();
  DecoderOptions mixed;
  mixed.compute_dtype = torch::kBFloat16;
  CausalLM ref = tiny_model(c), m = tiny_model(c, mixed);
  torch::Tensor ids = random_ids(2, 12, c.vocab_size, 6);
  torch::Tensor logits = m->forward({ids});
  EXPECT_EQ(logits.scalar_type(), torch::kBFloat16);
  torch::Tensor expected;
  {
    torch::NoGradGuard no_grad;
    expected = ref->forward({ids});
  }
  EXPECT_LE(max_diff(logits, expected), 0.05 * expected.abs().max().item<double>());
  auto [sum, count] = m->loss_sum({ids}, ids);
  EXPECT_EQ(sum.scalar_type(), torch::kFloat32);
  sum.backward();
  for (auto& p : m->parameters()) {
    ASSERT_TRUE(p.grad().defined());
    EXPECT_EQ(p.grad().scalar_type(), torch::kFloat32);
  }
}

TEST(Decoder, Bf16WeightsRunOnCpu) {
  ModelConfig c = tiny_config();
  DecoderOptions o;
  o.param_dtype = o.compute_dtype = torch::kBFloat16;
  CausalLM m = tiny_model(c, o);
  torch::NoGradGuard no_grad;
  torch::Tensor logits = m->forward({random_ids(1, 8, c.vocab_size, 1)});
  EXPECT_EQ(logits.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::isfinite(logits).all().item<bool>());
}

// Greedy decoding by recomputing the whole sequence each step: the reference for the cache.
std::vector<int32_t> greedy_by_recompute(CausalLM& model, std::vector<int32_t> ids, int64_t new_tokens) {
  torch::NoGradGuard no_grad;
  std::vector<int32_t> out;
  for (int64_t i = 0; i < new_tokens; ++i) {
    auto input = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end()), torch::kInt64).unsqueeze(0);
    int32_t next = static_cast<int32_t>(model->forward({input}).select(1, input.size(1) - 1).argmax(-1).item<int64_t>());
    ids.push_back(next);
    out.push_back(next);
  }
  return out;
}

TEST(Decoder, CachedLogitsEqualFullForwardWithLeftPadding) {
  ModelConfig c = tiny_config();
  CausalLM m = tiny_model(c);
  torch::NoGradGuard no_grad;
  // Row 0: 6 tokens; row 1: 4 tokens behind 2 pads. Prefill 5 slots, then one token each.
  torch::Tensor ids = random_ids(2, 6, c.vocab_size, 11);
  torch::Tensor real = torch::ones({2, 6}, torch::kBool);
  real[1].narrow(0, 0, 2).fill_(false);
  torch::Tensor positions = torch::tensor({0, 1, 2, 3, 4, 5, 0, 0, 0, 1, 2, 3}, torch::kInt64).view({2, 6});
  KVCache cache = m->new_cache(2, 8);
  m->forward_cached(ids.narrow(1, 0, 5), positions.narrow(1, 0, 5), real.narrow(1, 0, 5), cache);
  torch::Tensor cached = m->forward_cached(ids.narrow(1, 5, 1), positions.narrow(1, 5, 1), real.narrow(1, 5, 1), cache);
  torch::Tensor full0 = m->forward({ids.narrow(0, 0, 1)}).select(1, 5);
  torch::Tensor full1 = m->forward({ids.narrow(0, 1, 1).narrow(1, 2, 4)}).select(1, 3);
  double scale = full0.abs().max().item<double>();
  EXPECT_LT(max_diff(cached[0], full0[0]), 1e-5 * scale + 1e-6);
  EXPECT_LT(max_diff(cached[1], full1[0]), 1e-5 * scale + 1e-6);
  EXPECT_EQ(cache.length, 6);
}

TEST(Generate, BatchedGreedyEqualsRecomputeAndStops) {
  ModelConfig c = tiny_config();
  c.initializer_range = 0.4;  // sharper logits: argmax ties would make the comparison fragile
  CausalLM m = tiny_model(c);
  std::vector<std::vector<int32_t>> prompts;
  for (int64_t n : {3, 9, 5, 1}) {
    torch::Tensor t = random_ids(1, n, c.vocab_size, static_cast<uint64_t>(n));
    prompts.emplace_back(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + n);
  }
  std::vector<std::vector<int32_t>> expected;
  for (const auto& p : prompts) expected.push_back(greedy_by_recompute(m, p, 12));
  for (int64_t batch : {1, 3, 4}) {
    GenerationOptions o;
    o.max_new_tokens = 12;
    o.batch_size = batch;
    std::vector<Generation> got = generate_greedy(m, prompts, o);
    ASSERT_EQ(got.size(), prompts.size());
    for (size_t i = 0; i < prompts.size(); ++i) {
      EXPECT_EQ(got[i].tokens, expected[i]) << "prompt " << i << ", batch " << batch;
      EXPECT_FALSE(got[i].terminated);
    }
  }
  // A stop id ends its row there (the stop token is not part of the response); others run on.
  GenerationOptions o;
  o.max_new_tokens = 12;
  o.batch_size = 4;
  o.stop_ids = {expected[1][4]};
  std::vector<Generation> got = generate_greedy(m, prompts, o);
  EXPECT_TRUE(got[1].terminated);
  size_t first_stop = static_cast<size_t>(std::find(expected[1].begin(), expected[1].end(), o.stop_ids[0]) - expected[1].begin());
  EXPECT_EQ(got[1].tokens, std::vector<int32_t>(expected[1].begin(), expected[1].begin() + static_cast<long>(first_stop)));
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto it = std::find(expected[i].begin(), expected[i].end(), o.stop_ids[0]);
    EXPECT_EQ(got[i].terminated, it != expected[i].end());
    EXPECT_EQ(got[i].tokens, std::vector<int32_t>(expected[i].begin(), it));
  }
}

TEST(Decoder, RunsOnCudaWhenPresent) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  ModelConfig c = tiny_config();
  CausalLM cpu = tiny_model(c);
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    DecoderOptions o;
    o.device = torch::kCUDA;
    o.compute_dtype = dtype;
    CausalLM gpu = tiny_model(c, o);
    torch::Tensor ids = random_ids(2, 16, c.vocab_size, 2);
    torch::NoGradGuard no_grad;
    torch::Tensor expected = cpu->forward({ids});
    torch::Tensor got = gpu->forward({ids.cuda()}).cpu();
    double tol = dtype == torch::kFloat32 ? 1e-4 : 0.05;
    EXPECT_LE(max_diff(got, expected), tol * expected.abs().max().item<double>());
  }
}

// Fused RMSNorm kernel against the reference: outputs, input and weight gradients, over odd
// widths. fp32: close to round-off. bf16 (Liger's rule): the kernel's error against an fp32
// reference is at most twice the bf16 reference's own error, plus a small floor.
TEST(Kernels, FusedRmsNormMatchesReference) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  for (int64_t dim : {1, 123, 2048, 4096, 8193}) {
    for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
      auto gen = at::make_generator<at::CPUGeneratorImpl>(dim);
      torch::Tensor x64 = torch::randn({3, 37, dim}, gen, torch::kFloat64);
      torch::Tensor w64 = 1 + 0.1 * torch::randn({dim}, gen, torch::kFloat64);
      torch::Tensor dy64 = torch::randn({3, 37, dim}, gen, torch::kFloat64);
      auto run = [&](torch::ScalarType t, ops::Backend backend) {
        torch::Tensor x = x64.to(torch::kCUDA, t).requires_grad_(true);
        torch::Tensor w = w64.to(torch::kCUDA, t).requires_grad_(true);
        torch::Tensor y = ops::rms_norm(x, w, 1e-6, backend);
        y.backward(dy64.to(torch::kCUDA, t));
        return std::vector<torch::Tensor>{y.cpu().to(torch::kFloat64), x.grad().cpu().to(torch::kFloat64),
                                          w.grad().cpu().to(torch::kFloat64)};
      };
      auto truth = run(torch::kFloat64, ops::Backend::reference);
      auto ref = run(dtype, ops::Backend::reference);
      auto fused = run(dtype, ops::Backend::kernels);
      const char* names[] = {"y", "dx", "dw"};
      for (int i = 0; i < 3; ++i) {
        double scale = truth[i].abs().max().item<double>();
        double ref_error = max_diff(ref[i], truth[i]);
        double fused_error = max_diff(fused[i], truth[i]);
        double floor = (dtype == torch::kFloat32 ? 1e-5 : 1e-2) * scale;
        EXPECT_LE(fused_error, 2 * ref_error + floor)
            << names[i] << " dim " << dim << " " << c10::toString(dtype) << ": fused " << fused_error << " reference "
            << ref_error;
      }
    }
  }
}

TEST(Kernels, DecoderWithKernelsMatchesReferenceOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  ModelConfig c = tiny_config();
  DecoderOptions ref_options, fused_options;
  ref_options.device = fused_options.device = torch::kCUDA;
  fused_options.kernels = choose_kernels(KernelMode::fused, torch::kCUDA);
  CausalLM ref = tiny_model(c, ref_options), fused = tiny_model(c, fused_options);
  torch::Tensor ids = random_ids(2, 16, c.vocab_size, 8).cuda();
  auto [rs, rc] = ref->loss_sum({ids}, ids);
  auto [fs_, fc] = fused->loss_sum({ids}, ids);
  EXPECT_NEAR(rs.item<double>(), fs_.item<double>(), 1e-4 * std::abs(rs.item<double>()));
  rs.backward();
  fs_.backward();
  auto a = ref->named_parameters(), b = fused->named_parameters();
  for (auto& item : a)
    EXPECT_LE(max_diff(item.value().grad(), b[item.key()].grad()), 1e-4 * (1 + item.value().grad().abs().max().item<double>()))
        << item.key();
}

// Varlen flash attention on packed rows: logits of every document and the parameter gradients of
// the summed loss equal running each document alone. bf16 rule as in the kernel tests: against
// an fp32 truth (each document alone, reference path), the varlen error is at most twice the
// error of the bf16 reference path on the same packed rows (dense document mask), plus 1e-2 of
// the scale.
TEST(Kernels, VarlenAttentionOnPackedRowsEqualsDocumentsAlone) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  ModelConfig c = tiny_config(/*kv_heads=*/2);  // grouped-query attention: K/V are not repeated
  std::vector<TokenizedExample> examples;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(21);
  for (int n : {9, 5, 14, 3, 11}) {
    TokenizedExample e;
    for (int i = 0; i < n; ++i) e.ids.push_back(static_cast<int32_t>(torch::randint(c.vocab_size, {1}, gen).item<int64_t>()));
    e.loss_mask.assign(static_cast<size_t>(n), 1);
    examples.push_back(e);
  }
  std::vector<const TokenizedExample*> pointers;
  for (const auto& e : examples) pointers.push_back(&e);
  const std::vector<PackedRow> rows = pack_examples(pointers, 20, /*pad=*/false, 0);
  ASSERT_GE(rows.size(), 2u);

  DecoderOptions truth_o, ref_o, varlen_o;
  truth_o.device = ref_o.device = varlen_o.device = torch::kCUDA;
  ref_o.compute_dtype = varlen_o.compute_dtype = torch::kBFloat16;
  varlen_o.kernels.attention = ops::Backend::kernels;
  CausalLM truth = tiny_model(c, truth_o), ref = tiny_model(c, ref_o), varlen = tiny_model(c, varlen_o);

  // Per document: its logits; and every parameter's gradient of the summed loss.
  auto packed = [&](CausalLM& m) {
    Batch batch = collate(rows, 0, rows.size(), torch::kCUDA, 0, m->uses_varlen_attention());
    torch::Tensor logits = m->forward(batch.input).to(torch::kFloat32);
    std::vector<torch::Tensor> out;
    for (size_t r = 0; r < rows.size(); ++r)
      for (size_t t = 0; t < rows[r].ids.size();) {
        size_t end = t;
        while (end < rows[r].ids.size() && rows[r].document_ids[end] == rows[r].document_ids[t]) ++end;
        out.push_back(logits[static_cast<int64_t>(r)].narrow(0, static_cast<int64_t>(t), static_cast<int64_t>(end - t)));
        t = end;
      }
    m->zero_grad();
    m->loss_sum(batch.input, batch.labels, batch.target_rows).first.backward();
    return out;
  };
  auto alone = [&](CausalLM& m) {
    std::vector<torch::Tensor> out;
    m->zero_grad();
    for (const auto& e : examples) {
      torch::Tensor ids = torch::tensor(std::vector<int64_t>(e.ids.begin(), e.ids.end())).unsqueeze(0).cuda();
      out.push_back(m->forward({ids})[0].to(torch::kFloat32).detach());
      m->loss_sum({ids}, ids).first.backward();
    }
    return out;
  };
  auto expected = alone(truth);
  ASSERT_FALSE(ref->uses_varlen_attention());
  ASSERT_TRUE(varlen->uses_varlen_attention());
  auto ref_logits = packed(ref);
  auto got_logits = packed(varlen);
  ASSERT_EQ(got_logits.size(), expected.size());
  for (size_t d = 0; d < expected.size(); ++d) {
    const double scale = expected[d].abs().max().item<double>();
    EXPECT_LE(max_diff(got_logits[d], expected[d]), 2 * max_diff(ref_logits[d], expected[d]) + 1e-2 * scale)
        << "document " << d;
  }
  auto t = truth->named_parameters(), r = ref->named_parameters(), v = varlen->named_parameters();
  for (auto& item : t) {
    const torch::Tensor& g = item.value().grad();
    const double scale = g.abs().max().item<double>();
    EXPECT_LE(max_diff(v[item.key()].grad(), g), 2 * max_diff(r[item.key()].grad(), g) + 1e-2 * scale) << item.key();
  }
}

// Fused SwiGLU and RoPE kernels against their references: outputs and input gradients over odd
// shapes (elements not a multiple of the block, hidden 123), fp32 and bf16, with the rule of the
// RMSNorm test: the kernel's error against an fp64 truth is at most twice the reference's in the
// same dtype, plus 1e-5 (fp32) or 1e-2 (bf16) of the scale.
static void expect_within_rule(const std::vector<torch::Tensor>& truth, const std::vector<torch::Tensor>& ref,
                        const std::vector<torch::Tensor>& fused, torch::ScalarType dtype, const std::string& what) {
  for (size_t i = 0; i < truth.size(); ++i) {
    const double scale = truth[i].abs().max().item<double>();
    const double floor = (dtype == torch::kFloat32 ? 1e-5 : 1e-2) * scale;
    EXPECT_LE(max_diff(fused[i], truth[i]), 2 * max_diff(ref[i], truth[i]) + floor) << what << " output " << i;
  }
}

TEST(Kernels, FusedSwiGLUMatchesReference) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  for (auto shape : {std::vector<int64_t>{3, 37, 123}, {2, 5, 5504}}) {
    for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
      auto gen = at::make_generator<at::CPUGeneratorImpl>(shape.back());
      torch::Tensor g64 = torch::randn(shape, gen, torch::kFloat64) * 3, u64 = torch::randn(shape, gen, torch::kFloat64);
      torch::Tensor dy64 = torch::randn(shape, gen, torch::kFloat64);
      auto run = [&](torch::ScalarType t, ops::Backend backend) {
        torch::Tensor g = g64.to(torch::kCUDA, t).requires_grad_(true), u = u64.to(torch::kCUDA, t).requires_grad_(true);
        torch::Tensor y = ops::swiglu(g, u, backend);
        y.backward(dy64.to(torch::kCUDA, t));
        return std::vector<torch::Tensor>{y.cpu().to(torch::kFloat64), g.grad().cpu().to(torch::kFloat64),
                                          u.grad().cpu().to(torch::kFloat64)};
      };
      expect_within_rule(run(torch::kFloat64, ops::Backend::reference), run(dtype, ops::Backend::reference),
                         run(dtype, ops::Backend::kernels), dtype, "swiglu " + std::to_string(shape.back()));
    }
  }
}

// q and k as the decoder makes them: [B, T, H, hd] projections viewed as [B, H, T, hd] (strided),
// grouped heads for k, positions that restart (packed documents).
TEST(Kernels, FusedRopeMatchesReference) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  ModelConfig c = tiny_config(2);
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    const int64_t B = 2, T = 37, H = 4, Hkv = 2, hd = 64;
    c.head_dim = hd;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(9);
    torch::Tensor q64 = torch::randn({B, T, H, hd}, gen, torch::kFloat64), k64 = torch::randn({B, T, Hkv, hd}, gen, torch::kFloat64);
    torch::Tensor dq64 = torch::randn({B, H, T, hd}, gen, torch::kFloat64), dk64 = torch::randn({B, Hkv, T, hd}, gen, torch::kFloat64);
    torch::Tensor positions = torch::arange(T, torch::kInt64).remainder(19).unsqueeze(0).expand({B, T}).contiguous().cuda();
    RopeTables tables = rope_tables(c, positions, torch::kFloat32);
    auto run = [&](torch::ScalarType t, ops::Backend backend) {
      torch::Tensor q = q64.to(torch::kCUDA, t).requires_grad_(true), k = k64.to(torch::kCUDA, t).requires_grad_(true);
      auto [qr, kr] = ops::rope_qk(q.transpose(1, 2), k.transpose(1, 2), tables.cos.to(t == torch::kFloat64 ? t : torch::kFloat32),
                                   tables.sin.to(t == torch::kFloat64 ? t : torch::kFloat32), backend);
      torch::autograd::backward({qr, kr}, {dq64.to(torch::kCUDA, qr.scalar_type()), dk64.to(torch::kCUDA, kr.scalar_type())});
      return std::vector<torch::Tensor>{qr.cpu().to(torch::kFloat64), kr.cpu().to(torch::kFloat64),
                                        q.grad().cpu().to(torch::kFloat64), k.grad().cpu().to(torch::kFloat64)};
    };
    expect_within_rule(run(torch::kFloat64, ops::Backend::reference), run(dtype, ops::Backend::reference),
                       run(dtype, ops::Backend::kernels), dtype, "rope");
  }
}
