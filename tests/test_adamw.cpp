// train/adamw against torch::optim::AdamW (LibTorch's own, the update torch.optim.AdamW makes):
// the fused (at::_fused_adamw_) and reference updates over 20 steps with two weight-decay groups,
// and a checkpoint's AdamW state restored mid-run (the format checkpoints have always held).
#include <gtest/gtest.h>

#include "model/kernel_choice.h"
#include "train/adamw.h"
#include "train/training_checkpoint.h"
#include "util/error.h"

namespace dsalign {
namespace {

struct ParamSet {
  std::vector<torch::Tensor> decay, no_decay;
  NamedTensors named() const {
    NamedTensors n;
    for (size_t i = 0; i < decay.size(); ++i) n.emplace_back("layers." + std::to_string(i) + ".weight", decay[i]);
    for (size_t i = 0; i < no_decay.size(); ++i) n.emplace_back("norm" + std::to_string(i) + ".weight", no_decay[i]);
    return n;
  }
};

// Odd shapes (a vectorised kernel's tail), a 0-d-like single element and a matrix.
ParamSet make_params(uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  ParamSet s;
  for (auto shape : {std::vector<int64_t>{37, 13}, {123}, {1}})
    s.decay.push_back(torch::randn(shape, gen).requires_grad_(true));
  for (auto shape : {std::vector<int64_t>{64}, {5, 3}}) s.no_decay.push_back(torch::randn(shape, gen).requires_grad_(true));
  return s;
}

void set_grads(const ParamSet& s, int step) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1000 + step);
  for (const auto& list : {s.decay, s.no_decay})
    for (const torch::Tensor& p : list) const_cast<torch::Tensor&>(p).mutable_grad() = torch::randn(p.sizes(), gen);
}

double lr_at(int step) { return 1e-2 * (1.0 - 0.03 * step); }  // a schedule, as training has

std::unique_ptr<torch::optim::AdamW> torch_adamw(const ParamSet& s) {
  auto options = [](double wd) {
    auto o = std::make_unique<torch::optim::AdamWOptions>(1e-2);
    o->betas({0.9, 0.95}).eps(1e-8).weight_decay(wd);
    return o;
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(s.decay, options(0.1));
  groups.emplace_back(s.no_decay, options(0.0));
  return std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(1e-2));
}

void torch_step(torch::optim::AdamW& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
  optimizer.step();
}

AdamW ours(const ParamSet& s, bool fused) {
  AdamWSettings settings;
  settings.beta1 = 0.9;
  settings.beta2 = 0.95;
  settings.eps = 1e-8;
  settings.fused = fused;
  return AdamW({{s.decay, 0.1}, {s.no_decay, 0.0}}, settings);
}

// Largest |a - b| over every parameter, relative to the largest |b|.
double relative_diff(const ParamSet& a, const ParamSet& b) {
  double diff = 0, scale = 0;
  for (int list = 0; list < 2; ++list) {
    const auto& x = list ? a.no_decay : a.decay;
    const auto& y = list ? b.no_decay : b.decay;
    for (size_t i = 0; i < x.size(); ++i) {
      diff = std::max(diff, (x[i] - y[i]).abs().max().item<double>());
      scale = std::max(scale, y[i].abs().max().item<double>());
    }
  }
  return diff / scale;
}

TEST(AdamW, FusedAndReferenceEqualTorchAdamWOver20Steps) {
  for (bool fused : {true, false}) {
    ParamSet expected = make_params(7), got = make_params(7);
    auto reference = torch_adamw(expected);
    AdamW optimizer = ours(got, fused);
    for (int step = 0; step < 20; ++step) {
      set_grads(expected, step);
      set_grads(got, step);
      torch_step(*reference, lr_at(step));
      optimizer.step(lr_at(step));
    }
    EXPECT_LE(relative_diff(got, expected), 1e-6) << (fused ? "fused" : "reference");
    const AdamW::ParamState* st = optimizer.state(got.decay[0]);
    ASSERT_NE(st, nullptr);
    EXPECT_EQ(st->step, 20);
  }
}

TEST(AdamW, ParametersWithoutGradientsAreSkippedAndGetNoState) {
  ParamSet s = make_params(3);
  torch::Tensor before = s.no_decay[0].detach().clone();
  AdamW optimizer = ours(s, true);
  set_grads(s, 0);
  s.no_decay[0].mutable_grad() = torch::Tensor();
  optimizer.step(1e-2);
  EXPECT_TRUE(torch::equal(s.no_decay[0].detach(), before));
  EXPECT_EQ(optimizer.state(s.no_decay[0]), nullptr);
  EXPECT_NE(optimizer.state(s.decay[0]), nullptr);
}

// The state a checkpoint holds (exp_avg, exp_avg_sq, step as int64 [1]) taken from LibTorch's
// AdamW after 10 steps and restored into ours: the next 10 steps equal LibTorch's. This is the
// state every checkpoint written before the fused optimizer holds.
TEST(AdamW, ResumesFromTheStateLibTorchAdamWSaved) {
  ParamSet expected = make_params(11), got = make_params(11);
  auto reference = torch_adamw(expected);
  for (int step = 0; step < 10; ++step) {
    set_grads(expected, step);
    torch_step(*reference, lr_at(step));
  }
  std::map<std::string, torch::Tensor> saved;
  NamedTensors named = expected.named();
  for (const auto& [name, p] : named) {
    auto& st = static_cast<torch::optim::AdamWParamState&>(*reference->state().at(p.unsafeGetTensorImpl()));
    saved["optimizer." + name + ".exp_avg"] = st.exp_avg().clone();
    saved["optimizer." + name + ".exp_avg_sq"] = st.exp_avg_sq().clone();
    saved["optimizer." + name + ".step"] = torch::tensor({st.step()}, torch::kInt64);
  }
  {
    torch::NoGradGuard no_grad;
    NamedTensors mine = got.named();
    for (size_t i = 0; i < named.size(); ++i) mine[i].second.copy_(named[i].second);
  }
  AdamW optimizer = ours(got, true);
  restore_adamw_state(got.named(), optimizer, saved, "test checkpoint");
  // And back out under the same names.
  HostStaging staging;
  NamedTensors state = adamw_state_tensors(got.named(), optimizer, staging);
  ASSERT_EQ(state.size(), saved.size());
  for (const auto& [name, t] : state) EXPECT_TRUE(torch::equal(t, saved.at(name))) << name;
  for (int step = 10; step < 20; ++step) {
    set_grads(expected, step);
    set_grads(got, step);
    torch_step(*reference, lr_at(step));
    optimizer.step(lr_at(step));
  }
  EXPECT_LE(relative_diff(got, expected), 1e-6);
}

TEST(AdamW, RestoringAMisshapenMomentNamesIt) {
  ParamSet s = make_params(5);
  AdamW optimizer = ours(s, true);
  std::map<std::string, torch::Tensor> saved = {{"optimizer.layers.0.weight.exp_avg", torch::zeros({3})},
                                                {"optimizer.layers.0.weight.exp_avg_sq", torch::zeros({37, 13})},
                                                {"optimizer.layers.0.weight.step", torch::tensor({4}, torch::kInt64)}};
  try {
    restore_adamw_state(s.named(), optimizer, saved, "ckpt/step_4");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ckpt/step_4: 'optimizer.layers.0.weight.exp_avg' has shape [3]"), std::string::npos)
        << e.what();
  }
}

TEST(KernelChoice, AutoIsFusedOnlyWhereVerified) {
  // No CUDA row is verified until a GPU run passes: auto on CUDA is the reference everywhere.
  for (const VerifiedKernel& v : verified_kernels()) EXPECT_STREQ(v.device, "cpu") << v.op;
  const ops::Kernels cuda = choose_kernels(KernelMode::automatic, torch::Device(torch::kCUDA, 0));
  EXPECT_EQ(describe(cuda), describe(ops::Kernels{}));
  const ops::Kernels cpu = choose_kernels(KernelMode::automatic, torch::kCPU);
  EXPECT_EQ(cpu.adamw, ops::Backend::kernels);
  EXPECT_EQ(cpu.cross_entropy, ops::Backend::kernels);
  EXPECT_EQ(cpu.rms_norm, ops::Backend::reference);
  EXPECT_EQ(describe(choose_kernels(KernelMode::reference, torch::kCPU)), describe(ops::Kernels{}));
  EXPECT_EQ(choose_kernels(KernelMode::fused, torch::Device(torch::kCUDA, 0)).cross_entropy, ops::Backend::kernels);
  EXPECT_THROW(parse_kernel_mode("true"), Error);
}

}  // namespace
}  // namespace dsalign
