// The pieces of multi-process training that need no second process: the launcher's environment
// (torchrun, Slurm), the recipe's dist section, the row dealing, the launcher itself on a shell
// command (stderr prefixes, a failed rank stopping the others), loading one rank's rows, and
// zero3's units in one process.
#include <gtest/gtest.h>

#include <chrono>
#include <map>

#include "dist/data_parallel.h"
#include "dist/dist_config.h"
#include "dist/launch_env.h"
#include "dist/launcher.h"
#include "dist/memory_plan.h"
#include "model/inspect.h"
#include "dist/shard_plan.h"
#include "model/checkpoint.h"
#include "util/files.h"
#include "test_util.h"

using namespace dsalign;
using dsalign::testing::error_of;

namespace {

LaunchEnv env_of(const std::map<std::string, std::string>& vars) {
  return launch_env_from([&](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  });
}

DistConfig dist_of(const std::string& yaml) {
  YAML::Node node = YAML::Load(yaml);
  YamlReader r(node, "dist", "r.yaml");
  return parse_dist_config(r);
}

}  // namespace

TEST(LaunchEnv, TorchrunSlurmAndNone) {
  EXPECT_FALSE(env_of({}).distributed());
  LaunchEnv t = env_of({{"RANK", "3"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "2"},
                        {"MASTER_ADDR", "node0"}, {"MASTER_PORT", "29500"}});
  EXPECT_EQ(t.launcher, "torchrun");
  EXPECT_EQ(t.rank, 3);
  EXPECT_EQ(t.world_size, 8);
  EXPECT_EQ(t.local_rank, 1);
  EXPECT_EQ(t.local_world_size, 2);
  EXPECT_EQ(t.master_addr, "node0");
  EXPECT_EQ(t.master_port, 29500);
  EXPECT_FALSE(t.agent_store);

  LaunchEnv agent = env_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"},
                            {"TORCHELASTIC_USE_AGENT_STORE", "True"}, {"TORCHELASTIC_RESTART_COUNT", "2"}});
  EXPECT_TRUE(agent.agent_store);
  EXPECT_EQ(agent.store_prefix, "dsalign/attempt_2");

  LaunchEnv s = env_of({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "16"}, {"SLURM_LOCALID", "5"},
                        {"SLURM_NTASKS_PER_NODE", "8"}, {"MASTER_ADDR", "n1"}, {"MASTER_PORT", "6000"}});
  EXPECT_EQ(s.launcher, "slurm");
  EXPECT_EQ(s.rank, 5);
  EXPECT_EQ(s.world_size, 16);
  EXPECT_EQ(s.local_rank, 5);
  EXPECT_EQ(s.local_world_size, 8);
}

TEST(LaunchEnv, BadValuesNameTheVariable) {
  EXPECT_NE(error_of([] { env_of({{"RANK", "x"}, {"WORLD_SIZE", "2"}}); }).find("RANK='x'"), std::string::npos);
  EXPECT_NE(error_of([] { env_of({{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}}); })
                .find("RANK=2 is not below WORLD_SIZE=2"),
            std::string::npos);
  EXPECT_NE(error_of([] { env_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "1"}}); }).find("MASTER_ADDR"),
            std::string::npos);
  EXPECT_NE(error_of([] { env_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "70000"}}); })
                .find("MASTER_PORT=70000"),
            std::string::npos);
  EXPECT_NE(error_of([] { env_of({{"SLURM_PROCID", "0"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}}); }).find("SLURM_NTASKS"),
            std::string::npos);
}

TEST(DistConfig, DefaultsAndErrorsNameTheKey) {
  DistConfig none = dist_of("{}");
  EXPECT_EQ(resolve_strategy(none, 1), ShardStrategy::none);
  EXPECT_EQ(resolve_strategy(none, 4), ShardStrategy::zero3);
  EXPECT_EQ(resolve_strategy(dist_of("{strategy: zero3, reshard_after_forward: false}"), 2), ShardStrategy::zero3);
  EXPECT_DOUBLE_EQ(none.timeout_minutes, 30);
  EXPECT_EQ(resolve_strategy(dist_of("{strategy: zero2}"), 1), ShardStrategy::none);
  EXPECT_EQ(resolve_strategy(dist_of("{strategy: ddp}"), 2), ShardStrategy::ddp);
  EXPECT_NE(error_of([] { dist_of("{strategy: zero9}"); }).find("dist.strategy"), std::string::npos);
  EXPECT_NE(error_of([] { dist_of("{strategi: ddp}"); }).find("did you mean 'dist.strategy'"), std::string::npos);
  EXPECT_NE(error_of([] { dist_of("{timeout_minutes: 0}"); }).find("dist.timeout_minutes"), std::string::npos);
  EXPECT_NE(error_of([] { resolve_strategy(dist_of("{strategy: none}"), 2); }).find("dist.strategy: none"), std::string::npos);
  EXPECT_NE(error_of([] { resolve_strategy(dist_of("{strategy: ddp, reshard_after_forward: false}"), 2); })
                .find("dist.reshard_after_forward applies to strategy zero3"),
            std::string::npos);
}

TEST(ShardPlan, RowsAreDealtOnceAndMicroBatchesCoverTheBusiestRank) {
  for (int64_t world : {1, 2, 3, 4}) {
    std::vector<int> seen(11, 0);
    for (int64_t r = 0; r < world; ++r)
      for (size_t i : rank_rows(3, 14, world, r)) seen[i - 3] += 1;
    EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), 11) << world;
  }
  EXPECT_EQ(rank_rows(0, 8, 3, 2), (std::vector<size_t>{2, 5}));
  EXPECT_EQ(micro_batches_per_rank(8, 3, 2), 2);  // ranks hold 3, 3, 2 rows
  EXPECT_EQ(micro_batches_per_rank(8, 3, 4), 1);
  EXPECT_EQ(micro_batches_per_rank(1, 4, 1), 1);  // three ranks run an empty micro-batch
}

TEST(Launcher, PrefixesLinesAndStopsTheOthersWhenARankFails) {
  LaunchOptions o;
  o.nproc = 3;
  o.program = "/bin/sh";
  o.grace_seconds = 2;
  // Rank 1 fails at once; the others would sleep for a minute.
  o.args = {"-c", "echo \"hello from $RANK of $WORLD_SIZE at $MASTER_ADDR:$MASTER_PORT\" >&2; "
                  "if [ \"$RANK\" = 1 ]; then sleep 1; echo 'error: no such file: model.safetensors' >&2; exit 3; fi; sleep 60"};
  ::testing::internal::CaptureStderr();
  auto start = std::chrono::steady_clock::now();
  LaunchResult result = launch_ranks(o);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_LT(seconds, 20) << "the other ranks were not stopped";
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.failed_rank, 1);
  EXPECT_EQ(result.message(), "rank 1 exited with code 3: error: no such file: model.safetensors");
  EXPECT_NE(err.find("[rank 0] hello from 0 of 3 at 127.0.0.1:"), std::string::npos) << err;
  EXPECT_NE(err.find("[rank 2] hello from 2 of 3"), std::string::npos) << err;

  o.args = {"-c", "echo ok >&2"};
  EXPECT_EQ(launch_ranks(o).exit_code, 0);
}

TEST(MemoryPlan, StrategiesFollowTheirFormulasAndBadSpecsNameTheKey) {
  const ModelConfig c = *model_preset("deepseek-llm-7b");
  const double psi = static_cast<double>(count_parameters(c).total);
  auto plan = [&](const std::string& spec) { return plan_memory(c, parse_plan_request(spec)); };
  MemoryPlan ddp = plan("world=8,strategy=ddp"), z1 = plan("world=8,strategy=zero1"), z2 = plan("world=8,strategy=zero2"),
             z3 = plan("world=8,strategy=zero3,checkpointing");
  EXPECT_DOUBLE_EQ(ddp.weights, 4 * psi);
  EXPECT_DOUBLE_EQ(ddp.optimizer, 8 * psi);
  EXPECT_DOUBLE_EQ(ddp.deepspeed, 16 * psi);
  // Sharded state: 1/8 of it, within the padding of rows to a multiple of 8.
  EXPECT_NEAR(z1.optimizer, psi, 0.001 * psi);
  EXPECT_DOUBLE_EQ(z1.gradients, z2.gradients);
  EXPECT_NEAR(z3.weights, psi / 2, 0.001 * psi);
  EXPECT_DOUBLE_EQ(z2.deepspeed, 4 * psi + 16 * psi / 8);
  EXPECT_LT(z3.activations, z2.activations);  // checkpointing
  EXPECT_LT(z3.total(), z2.total());
  // A checkpoint's host copy: each rank's rows of weights and moments, whatever the strategy.
  EXPECT_DOUBLE_EQ(z3.checkpoint_host, z3.weights + z1.optimizer);
  EXPECT_DOUBLE_EQ(ddp.checkpoint_host, z3.checkpoint_host);
  EXPECT_DOUBLE_EQ(plan("world=1").checkpoint_host, 12 * psi);
  EXPECT_EQ(parse_plan_request("world=8").strategy, ShardStrategy::zero3);
  EXPECT_NE(error_of([] { parse_plan_request("world=0"); }).find("world=0"), std::string::npos);
  EXPECT_NE(error_of([] { parse_plan_request("wrld=8"); }).find("unknown key 'wrld'"), std::string::npos);
  EXPECT_NE(error_of([] { parse_plan_request("strategy=zero4"); }).find("zero4"), std::string::npos);
}

namespace {

// What zero3's ShardedUnits does when loading, for a rank `rank` of `world` in one process: every
// parameter holds only its rows (the model built unallocated), and load_weights reads just those.
struct RowsOfOneRank : UnitRunner {
  std::map<std::string, std::pair<int64_t, torch::Tensor>> rows;
  RowsOfOneRank(CausalLM& model, int64_t world, int64_t rank) {
    for (auto& item : model->named_parameters()) {
      const RowShard s = row_shard(item.value().size(0), world, rank);
      std::vector<int64_t> shape = item.value().sizes().vec();
      shape[0] = s.rows();
      rows[item.key()] = {s.begin, torch::empty(shape, torch::kFloat32)};
    }
  }
  torch::Tensor run(size_t, const UnitFn&, const torch::Tensor&, bool) override { throw std::logic_error("not used"); }
  int64_t max_over_ranks(int64_t local) override { return local; }
  LoadTarget load_target(const std::string& name) override { return {rows.at(name).first, rows.at(name).second}; }
};

}  // namespace

// Sharded loading: a rank reads only its rows of each tensor from the memory-mapped file, so its
// host memory grows by about its shard (a quarter of the model here), not by the model, and the
// rows equal those of a whole load.
TEST(ShardedLoad, ARankReadsOnlyItsRows) {
  dsalign::testing::TempDir tmp;
  ModelConfig c = dsalign::testing::memory_test_config();
  {
    CausalLM m(c, DecoderOptions{});
    m->init_weights(0);
    SaveOptions s;
    s.dtype = torch::kFloat32;
    save_checkpoint(m, tmp.path / "ckpt", s);  // 232 MB, one file
  }
  DecoderOptions unallocated;
  unallocated.unallocated = true;
  CausalLM sharded(c, unallocated);
  for (auto& p : sharded->parameters()) EXPECT_EQ(p.storage().nbytes(), 0u);
  auto rows = std::make_shared<RowsOfOneRank>(sharded, 4, 1);
  sharded->unit_runner = rows;
  double shard_bytes = 0, largest = 0, whole = 0;
  for (auto& [name, r] : rows->rows) {
    shard_bytes += static_cast<double>(r.second.nbytes());
    const double full = static_cast<double>(sharded->named_parameters()[name].numel()) * 4;
    largest = std::max(largest, full);
    whole += full;
  }
  ASSERT_GT(whole, 200e6);
  // The row tensors are allocated but untouched; loading writes them and maps the file's pages.
  reset_peak_host_memory();
  HostMemory before = host_memory();
  LoadReport report = load_weights(sharded, tmp.path / "ckpt");
  HostMemory after = host_memory();
  EXPECT_NEAR(static_cast<double>(report.bytes_read), shard_bytes, 0.01 * shard_bytes);
  const double growth = static_cast<double>(after.peak_resident_bytes - before.resident_bytes);
  EXPECT_LE(growth, shard_bytes + largest / 4 + 16e6)
      << "peak grew " << growth / 1e6 << " MB for a " << shard_bytes / 1e6 << " MB shard of " << whole / 1e6 << " MB";
  CausalLM full = load_model(tmp.path / "ckpt", DecoderOptions{});
  for (auto& [name, r] : rows->rows)
    EXPECT_TRUE(torch::equal(r.second, full->named_parameters()[name].narrow(0, r.first, r.second.size(0)))) << name;
}

namespace {

struct Trained {
  std::vector<double> losses, norms;
  std::vector<std::pair<std::string, torch::Tensor>> weights;
  int64_t gathered_after = 0;
};

// Three AdamW steps of the tiny model on fixed tokens through DataParallel, in one process.
Trained train_three_steps(const torch::Device& device, ShardStrategy strategy, const ShardedUnitsOptions& units,
                          bool checkpointing) {
  DecoderOptions o;
  o.device = device;
  o.activation_checkpointing = checkpointing;
  CausalLM model(*model_preset("tiny"), o);
  model->init_weights(0);
  TrainConfig train;
  train.schedule.lr = 1e-3;
  Dist one;
  DataParallel dp(one, strategy, model, train, units);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  const torch::Tensor ids = torch::randint(model->config.vocab_size, {2, 24}, gen, torch::kInt64).to(device);
  Trained out;
  for (int step = 0; step < 3; ++step) {
    dp.begin_step();
    auto [sum, count] = model->loss_sum({ids}, ids);
    (sum / count.to(torch::kFloat32)).backward();
    dp.after_micro_batch();
    dp.finish_gradients();
    out.norms.push_back(dp.clip_grad_norm(1.0));
    dp.step(1e-3);
    out.losses.push_back((sum / count.to(torch::kFloat32)).item<double>());
    out.gathered_after = dp.last_step_traffic().gathered_after;
  }
  for (auto& [name, t] : dp.model_weights(model)) out.weights.emplace_back(name, t.cpu());
  return out;
}

// zero3 in one process (every collective the identity) trains like none: gathering, releasing,
// re-gathering for backward and reducing into the rows change no number, with or without
// resharding, prefetch and activation checkpointing, and nothing stays gathered between steps.
void expect_zero3_trains_like_none(const torch::Device& device) {
  const Trained none = train_three_steps(device, ShardStrategy::none, {}, false);
  struct Case {
    ShardedUnitsOptions units;
    bool checkpointing;
  };
  for (const Case& c : {Case{{true, true}, false}, Case{{false, true}, false}, Case{{true, false}, false}, Case{{true, true}, true}}) {
    const std::string what = std::string("reshard ") + (c.units.reshard_after_forward ? "on" : "off") + ", prefetch " +
                             (c.units.prefetch ? "on" : "off") + (c.checkpointing ? ", checkpointing" : "");
    const Trained z = train_three_steps(device, ShardStrategy::zero3, c.units, c.checkpointing);
    for (size_t s = 0; s < none.losses.size(); ++s) {
      EXPECT_NEAR(z.losses[s], none.losses[s], 1e-6 * std::abs(none.losses[s])) << what << " step " << s;
      EXPECT_NEAR(z.norms[s], none.norms[s], 1e-5 * std::abs(none.norms[s])) << what << " step " << s;
    }
    EXPECT_EQ(z.gathered_after, 0) << what;
    ASSERT_EQ(z.weights.size(), none.weights.size());
    for (size_t i = 0; i < none.weights.size(); ++i) {
      EXPECT_EQ(z.weights[i].first, none.weights[i].first);
      EXPECT_LE((z.weights[i].second - none.weights[i].second).abs().max().item<double>(), 1e-6) << what << " " << z.weights[i].first;
    }
  }
}

}  // namespace

TEST(Zero3, OneProcessTrainsLikeNone) { expect_zero3_trains_like_none(torch::kCPU); }

TEST(Zero3, OneProcessTrainsLikeNoneOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  expect_zero3_trains_like_none(torch::Device(torch::kCUDA, 0));
}
