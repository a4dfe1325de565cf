// Multi-process training on CPU with Gloo: several ranks (dsalign launch) against one process.
// Every command runs in its own process group under a hard timeout that kills the whole group,
// ports come from the OS, and directories are removed afterwards: a hung rank cannot hang CI.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "dist/launcher.h"
#include "model/checkpoint.h"
#include "model/weight_file.h"
#include "train/checkpoint_reader.h"
#include "train/sharded_checkpoint.h"
#include "train/tensorboard_writer.h"
#include "util/files.h"
#include "test_util.h"

using namespace dsalign;
using dsalign::testing::TempDir;

namespace {

constexpr int kTimeoutSeconds = 300;

// `command` through /bin/sh in a new process group; returns its pid (the group id).
pid_t start_group(const std::string& command) {
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::setpgid(pid, pid);
  return pid;
}

// Waits for the group's leader at most `seconds`; on timeout kills the whole group. Returns the
// exit code, or -1 after a timeout / a signal.
int wait_group(pid_t pid, int seconds) {
  for (int i = 0; i < seconds * 10; ++i) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      ::kill(-pid, SIGKILL);  // anything the leader left behind
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ::kill(-pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  return -1;
}

int run(const std::string& command, int seconds = kTimeoutSeconds) { return wait_group(start_group(command), seconds); }

struct DistFixture {
  TempDir tmp;
  std::string cli = DSALIGN_CLI;
  fs::path recipe;
  DistFixture() {
    SaveOptions save;
    save.dtype = torch::kFloat32;
    init_checkpoint(*model_preset("tiny-coder"), 0, tmp.path / "model", save);
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
      fs::copy_file(fs::path(DSALIGN_SOURCE_DIR) / "assets/tokenizers/deepseek-coder" / f, tmp.path / "model" / f);
    std::ofstream data(tmp.path / "data.jsonl");
    const char* names[] = {"Alice", "Bob", "Carol", "Dan", "Eve"};
    for (int i = 0; i < 150; ++i)
      data << R"({"prompt": "Greet )" << names[i % 5] << R"( politely.", "response": "Hello, )" << names[i % 5]
           << std::string(static_cast<size_t>(i % 7), '!') << R"("})" << "\n";
    // 8 rows a step in micro-batches of 2: on 3 ranks that is 3, 3 and 2 rows.
    recipe = tmp.write("recipe.yaml",
                       "run: {name: t, output_dir: one, seed: 3}\nmodel: {path: model}\n"
                       "data: {sources: [{path: data.jsonl}], max_seq_len: 128, validation_fraction: 0.1, cache_dir: cache}\n"
                       "train: {micro_batch_size: 2, global_batch_size: 8, lr: 0.003, warmup_steps: 2, schedule: cosine,"
                       " log_every: 1, max_steps: 6, checkpoint_every_steps: 2, keep_last: 10}\n"
                       "monitor: {repetition: {prompts: " +
                           (fs::path(DSALIGN_SOURCE_DIR) / "recipes/quickstart/data/heldout.jsonl").string() +
                           ", max_prompts: 5, max_new_tokens: 12, batch_size: 2},"
                           " eval: {suite: suite.yaml}}\n");
    // monitor.eval: multiple choice and generation, at the start and the end, on every rank.
    tmp.write("mc.jsonl", "{\"query\": \"Greet Bob politely.\", \"choices\": [\"Hello, Bob!\", \"Go away.\"], \"gold\": 0}\n"
                          "{\"query\": \"Greet Eve politely.\", \"choices\": [\"No.\", \"Hello, Eve!\", \"Hi\"], \"gold\": 1}\n");
    tmp.write("gsm8k.jsonl", "{\"prompt\": \"Question: 1 + 1?\\nAnswer:\", \"answer\": \"2\"}\n");
    tmp.write("suite.yaml", "suite: {data_dir: .}\ntasks:\n  - {name: greet, method: mc, data: mc.jsonl}\n"
                            "  - {name: sums, method: gen, task: gsm8k, data: gsm8k.jsonl, max_new_tokens: 4}\n");
  }
  // `dsalign sft` as one process, or under `dsalign launch` (always when nproc > 1).
  std::string sft(const std::string& out, int nproc, const std::string& extra = "", bool launcher = false) const {
    std::string launch = nproc > 1 || launcher ? cli + " launch --nproc-per-node " + std::to_string(nproc) + " sft "
                                               : cli + " sft ";
    return launch + recipe.string() + " run.output_dir=" + out + " " + extra + " > " + (tmp.path / (out + ".log")).string() +
           " 2>&1";
  }
  std::string log(const std::string& out) const { return read_text_file(tmp.path / (out + ".log")); }
};

std::vector<std::pair<int64_t, double>> curve(const fs::path& metrics, const char* key = "loss") {
  std::vector<std::pair<int64_t, double>> out;
  std::istringstream in(read_text_file(metrics));
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    if (j.contains(key)) out.emplace_back(j["step"].get<int64_t>(), j[key].get<double>());
  }
  return out;
}

void expect_same_curve(const fs::path& a, const fs::path& b, const char* key, const std::string& what) {
  auto x = curve(a, key), y = curve(b, key);
  ASSERT_EQ(x.size(), y.size()) << what;
  ASSERT_FALSE(x.empty()) << what;
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(x[i].first, y[i].first) << what;
    EXPECT_NEAR(x[i].second, y[i].second, 1e-5 * std::max(1.0, std::abs(y[i].second))) << what << " " << key << " at step " << x[i].first;
  }
}

// The fp32 master weights of a run's last checkpoint (final/ is exported in the model's dtype,
// where a last-bit difference can round to a whole bf16 step).
fs::path last_checkpoint(const fs::path& run) {
  fs::path newest;
  int64_t step = -1;
  for (const auto& e : fs::directory_iterator(run / "checkpoints")) {
    const std::string name = e.path().filename();
    if (name.rfind("step_", 0) == 0 && std::stoll(name.substr(5)) > step) step = std::stoll(name.substr(5)), newest = e.path();
  }
  return newest;
}

// A training checkpoint's weights (either layout: sharded ones are assembled), in checkpoint order.
std::vector<std::pair<std::string, torch::Tensor>> checkpoint_weights(const fs::path& dir) {
  DecoderOptions meta;
  meta.device = torch::kMeta;
  CausalLM shapes(load_model_config(dir), meta);
  CheckpointReader reader(dir);
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (auto& [name, t] : checkpoint_tensors(shapes)) out.emplace_back(name, reader.whole(name));
  return out;
}

// Every tensor of two safetensors files (or training checkpoints) within `tolerance` x the
// largest weight of `b`.
void expect_close_weights(const fs::path& a, const fs::path& b, double tolerance, const std::string& what) {
  auto x = fs::is_directory(a) ? checkpoint_weights(a) : read_safetensors(a);
  auto y = fs::is_directory(b) ? checkpoint_weights(b) : read_safetensors(b);
  ASSERT_EQ(x.size(), y.size());
  double scale = 0;
  for (auto& [name, t] : y) scale = std::max(scale, t.abs().max().item<double>());
  for (size_t i = 0; i < x.size(); ++i) {
    const std::string& name = x[i].first;
    ASSERT_EQ(name, y[i].first);
    torch::Tensor u = y[i].second.to(torch::kFloat32), v = x[i].second.to(torch::kFloat32);
    EXPECT_LE((u - v).abs().max().item<double>(), tolerance * scale) << what << ": " << name;
  }
}

// The runs' last fp32 checkpoints within `tolerance` (1e-5) x the model's largest weight: Adam
// turns the rounding differences of near-zero gradients (ranks sum in another order) into
// differences of a few 1e-6 over ten SFT steps.
void expect_same_weights(const fs::path& run_a, const fs::path& run_b, const std::string& what, double tolerance = 1e-5) {
  ASSERT_TRUE(fs::exists(run_a / "final" / "config.json") && fs::exists(run_b / "final" / "config.json")) << what;
  const fs::path a = last_checkpoint(run_a), b = last_checkpoint(run_b);
  ASSERT_EQ(a.filename(), b.filename()) << what;
  expect_close_weights(a, b, tolerance, what);
}

// Bytes each strategy holds and moves for this model, from its parameter shapes: what rank 0
// should report in metrics.jsonl.
// zero3 also: the most gathered parameter bytes allocated at once (one unit when units are
// resharded after forward, the whole model when not).
struct Expected {
  int64_t weights = 0, gradients = 0, optimizer = 0, reduced = 0, gathered = 0, gathered_peak = 0;
};
Expected expected_bytes(const fs::path& checkpoint, const std::string& strategy, int64_t world, int64_t micro_batches,
                        bool reshard_after_forward = true) {
  Expected e;
  std::map<std::string, int64_t> unit_bytes;  // fp32 bytes per unit: embedding, each layer, head
  for (auto& [name, t] : read_safetensors(checkpoint / "model.safetensors")) {
    const int64_t rows = t.size(0), per_row = t.numel() / rows, psi = t.numel();
    const int64_t per_rank = (rows + world - 1) / world, mine = std::min(rows, per_rank) * per_row;  // rank 0's rows
    const int64_t padded = 4 * per_rank * world * per_row;  // what a collective over this tensor moves
    const bool head = name == "model.norm.weight" || name == "lm_head.weight";
    const std::string unit = head ? "head" : name.substr(0, name.find('.', name.find("layers.") + 7));
    unit_bytes[unit] += 4 * psi;
    if (strategy == "ddp") {
      e.weights += 4 * psi, e.gradients += 4 * psi, e.optimizer += 8 * psi, e.reduced += 4 * psi;
    } else if (strategy == "zero3") {
      // Each micro-batch: every unit gathered for forward and again for backward (all but the
      // head, which stays gathered in between; none when not resharded), gradients reduce-scattered.
      e.weights += 4 * mine, e.gradients += 4 * mine, e.optimizer += 8 * mine;
      e.reduced += padded * micro_batches;
      e.gathered += padded * micro_batches * (reshard_after_forward && !head ? 2 : 1);
    } else {
      e.weights += 4 * psi;
      e.gradients += 4 * mine + (strategy == "zero1" ? 4 * psi : 0);
      e.optimizer += 8 * mine;
      e.reduced += padded * (strategy == "zero2" ? micro_batches : 1);
      e.gathered += padded;
    }
  }
  for (auto& [unit, bytes] : unit_bytes)
    e.gathered_peak = reshard_after_forward ? std::max(e.gathered_peak, bytes) : e.gathered_peak + bytes;
  return e;
}

}  // namespace

// Each strategy on 2 and 3 ranks (3 does not divide a step's 8 rows) gives the one-process loss,
// grad_norm and validation curves and weights; rank 0 holds and moves the bytes the strategy's
// formula gives; checkpoints resume across world sizes and strategies.
TEST(DistSft, RanksTrainLikeOneProcess) {
  DistFixture f;
  ASSERT_EQ(run(f.sft("one", 1)), 0) << f.log("one");
  struct Case {
    std::string strategy;
    int ranks;
    std::string overrides, name;
    bool reshard = true;
  };
  std::vector<Case> cases;
  for (const std::string strategy : {"ddp", "zero1", "zero2", "zero3"})
    for (int n : {2, 3, 4}) cases.push_back({strategy, n, "", strategy + "_" + std::to_string(n)});
  // zero3 options, each with the same curves (3 ranks: the third runs a filler micro-batch each step).
  cases.push_back({"zero3", 2, "dist.reshard_after_forward=false", "zero3_keep_gathered", false});
  cases.push_back({"zero3", 3, "dist.prefetch=false", "zero3_no_prefetch"});
  cases.push_back({"zero3", 3, "model.activation_checkpointing=true", "zero3_checkpointing"});
  cases.push_back({"zero2", 2, "model.activation_checkpointing=true", "zero2_checkpointing"});
  for (const Case& c : cases) {
    {
      const std::string& strategy = c.strategy;
      const int n = c.ranks;
      const std::string& out = c.name;
      ASSERT_EQ(run(f.sft(out, n, "dist.strategy=" + strategy + " " + c.overrides)), 0) << f.log(out);
      const fs::path metrics = f.tmp.path / out / "metrics.jsonl";
      for (const char* key : {"loss", "grad_norm", "val_loss", "repetition_prompts", "repetition_terminated",
                              "repetition_repetitive", "eval/greet/acc_norm", "eval/sums/exact_match_flexible"})
        expect_same_curve(metrics, f.tmp.path / "one" / "metrics.jsonl", key, out);
      expect_same_weights(f.tmp.path / out, f.tmp.path / "one", out);
      // Rank 0 alone writes TensorBoard events: one file, as many records as one process's.
      const auto events = tensorboard_event_files(f.tmp.path / out / "tensorboard");
      ASSERT_EQ(events.size(), 1u) << out;
      EXPECT_EQ(read_tfrecords(events[0]).records.size(),
                read_tfrecords(tensorboard_event_files(f.tmp.path / "one" / "tensorboard").at(0)).records.size()) << out;
      EXPECT_NE(f.log(out).find("[rank 0] dist: " + std::to_string(n) + " ranks (gloo), strategy " + strategy),
                std::string::npos) << f.log(out);
      // 8 rows a step over n ranks in micro-batches of 2.
      const int64_t micro_batches = ((8 + n - 1) / n + 1) / 2;
      Expected want = expected_bytes(last_checkpoint(f.tmp.path / "one"), strategy, n, micro_batches, c.reshard);
      nlohmann::json first;
      std::istringstream lines(read_text_file(metrics));
      for (std::string line; std::getline(lines, line) && first.is_null();)
        if (line.find("held_weight_bytes") != std::string::npos) first = nlohmann::json::parse(line);
      ASSERT_FALSE(first.is_null()) << out;
      EXPECT_EQ(first["world_size"].get<int64_t>(), n);
      EXPECT_EQ(first["peak_memory_bytes_per_rank"].size(), static_cast<size_t>(n));
      EXPECT_EQ(first["held_weight_bytes"].get<int64_t>(), want.weights) << out;
      EXPECT_EQ(first["held_gradient_bytes"].get<int64_t>(), want.gradients) << out;
      EXPECT_EQ(first["held_optimizer_bytes"].get<int64_t>(), want.optimizer) << out;
      EXPECT_EQ(first["reduced_bytes"].get<int64_t>(), want.reduced) << out;
      EXPECT_EQ(first["gathered_bytes"].get<int64_t>(), want.gathered) << out;
      if (strategy == "zero3") {  // gathered storage is really released: measured from the storages
        EXPECT_EQ(first["gathered_peak_bytes"].get<int64_t>(), want.gathered_peak) << out;
        EXPECT_EQ(first["gathered_after_step_bytes"].get<int64_t>(), 0) << out;
      }
    }
  }
  // A multi-rank checkpoint is one file per rank and its layout; `dsalign export` assembles it
  // tensor by tensor into what final/ holds; one with a rank's file missing is not complete, so
  // --resume latest passes it over.
  const fs::path z3 = f.tmp.path / "zero3_3";
  for (int64_t r = 0; r < 3; ++r) EXPECT_TRUE(fs::exists(z3 / "checkpoints" / "step_6" / shard_file_name(r, 3)));
  EXPECT_FALSE(fs::exists(z3 / "checkpoints" / "step_6" / "model.safetensors"));
  ASSERT_EQ(run(f.cli + " export " + (z3 / "checkpoints" / "step_6").string() + " " + (f.tmp.path / "exported").string() +
                " > " + (f.tmp.path / "export.log").string() + " 2>&1"),
            0) << f.log("export");
  EXPECT_EQ(read_text_file(f.tmp.path / "exported" / "model.safetensors"), read_text_file(z3 / "final" / "model.safetensors"));
  fs::copy(z3, f.tmp.path / "broken", fs::copy_options::recursive);
  fs::remove(f.tmp.path / "broken" / "checkpoints" / "step_6" / shard_file_name(1, 3));
  EXPECT_EQ(newest_training_checkpoint(f.tmp.path / "broken").filename(), "step_4");

  // Resume from step 2 across world sizes and strategies, and on the same ones: each ends equal.
  struct Resume {
    std::string from, to, overrides;
    int ranks = 2;
  };
  for (const Resume& c : {Resume{"one", "one_to_zero2", "dist.strategy=zero2"}, Resume{"zero1_3", "zero1_to_ddp", "dist.strategy=ddp"},
                          Resume{"one", "one_to_zero3", "dist.strategy=zero3", 3}, Resume{"zero3_3", "zero3_to_one", "", 1},
                          Resume{"zero3_4", "zero3_to_ddp", "dist.strategy=ddp"},
                          Resume{"zero3_3", "zero3_again", "dist.strategy=zero3", 3}}) {
    fs::copy(f.tmp.path / c.from, f.tmp.path / c.to, fs::copy_options::recursive);
    fs::remove_all(f.tmp.path / c.to / "final");
    const std::string resume = "--resume " + (f.tmp.path / c.to / "checkpoints" / "step_2").string();
    ASSERT_EQ(run(f.sft(c.to, c.ranks, c.overrides + " " + resume)), 0) << f.log(c.to);
    expect_same_curve(f.tmp.path / c.to / "metrics.jsonl", f.tmp.path / "one" / "metrics.jsonl", "loss", c.to);
    expect_same_weights(f.tmp.path / c.to, f.tmp.path / "one", c.to);
  }
}

// torchrun (torch 2.11's, from the test venv; its elastic agent serves the store) launches dsalign
// as users do: `torchrun --no-python --nproc-per-node 2 dsalign sft ...` trains like one process.
TEST(DistSft, TorchrunLaunchesRanksLikeOneProcess) {
  if (!fs::exists(DSALIGN_TORCHRUN)) GTEST_SKIP() << "no torchrun at " << DSALIGN_TORCHRUN;
  DistFixture f;
  ASSERT_EQ(run(f.sft("one", 1)), 0) << f.log("one");
  const std::string command = std::string(DSALIGN_TORCHRUN) + " --no-python --nproc-per-node 2 --master-port " +
                              std::to_string(free_tcp_port()) + " " + f.cli + " sft " + f.recipe.string() +
                              // A rank torchrun left behind after a failure gives up within a minute.
                              " run.output_dir=torchrun dist.timeout_minutes=1 > " + (f.tmp.path / "torchrun.log").string() +
                              " 2>&1";
  ASSERT_EQ(run(command), 0) << f.log("torchrun");
  EXPECT_NE(f.log("torchrun").find("dist: 2 ranks (gloo), strategy zero3"), std::string::npos) << f.log("torchrun");
  expect_same_curve(f.tmp.path / "torchrun" / "metrics.jsonl", f.tmp.path / "one" / "metrics.jsonl", "loss", "torchrun");
  expect_same_weights(f.tmp.path / "torchrun", f.tmp.path / "one", "torchrun");
}

// SIGKILL of one rank mid-run: dsalign launch stops the other and exits non-zero naming the
// rank, no half-written checkpoint is left as complete, and the run resumes (here on 1 process).
TEST(DistSft, KilledRankStopsTheRunWhichThenResumes) {
  DistFixture f;
  const std::string longer = "train.max_steps=0 data.epochs=2";
  ASSERT_EQ(run(f.sft("one", 1, longer)), 0) << f.log("one");
  pid_t launcher = start_group(f.sft("two", 2, longer));
  const fs::path metrics = f.tmp.path / "two" / "metrics.jsonl";
  bool reached = false;
  for (int i = 0; i < 1200 && !reached; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    reached = fs::exists(metrics) && read_text_file(metrics).find("\"step\":5,") != std::string::npos;
  }
  if (!reached) ::kill(-launcher, SIGKILL);
  ASSERT_TRUE(reached) << "the 2-rank run never reached step 5: " << f.log("two");
  // Rank 1: the process whose environment says RANK=1 and whose parent is our dsalign launch.
  pid_t rank1 = -1;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    try {
      const std::string environ = read_text_file(entry.path() / "environ");
      const std::string stat = read_text_file(entry.path() / "stat");
      const pid_t parent = std::stoi(stat.substr(stat.rfind(')') + 4));
      if (environ.find(std::string("\0RANK=1") + '\0') != std::string::npos && ::getpgid(parent) == launcher)
        rank1 = std::stoi(name);
    } catch (...) {
    }
  }
  ASSERT_GT(rank1, 0);
  auto killed_at = std::chrono::steady_clock::now();
  ::kill(rank1, SIGKILL);
  const int code = wait_group(launcher, 120);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  EXPECT_NE(code, 0);
  EXPECT_NE(code, -1) << "dsalign launch did not end by itself";
  EXPECT_LT(seconds, 60);
  EXPECT_NE(f.log("two").find("dsalign launch: rank 1 killed by signal 9"), std::string::npos) << f.log("two");
  ASSERT_FALSE(fs::exists(f.tmp.path / "two" / "final")) << "killed too late";
  for (const auto& entry : fs::directory_iterator(f.tmp.path / "two" / "checkpoints")) {
    if (entry.path().filename().string().rfind("step_", 0) == 0) {
      EXPECT_TRUE(fs::exists(entry.path() / "state.json")) << entry.path() << " published without state.json";
      for (int64_t r = 0; r < 2; ++r)
        EXPECT_TRUE(fs::exists(entry.path() / shard_file_name(r, 2))) << entry.path() << " published without rank " << r;
    }
  }

  // 2 -> 1: the one-process resume finishes the run exactly as the uninterrupted one did.
  ASSERT_EQ(run(f.sft("two", 1, longer + " --resume")), 0) << f.log("two");
  expect_same_curve(metrics, f.tmp.path / "one" / "metrics.jsonl", "loss", "2 ranks killed, resumed on 1");
  expect_same_weights(f.tmp.path / "two", f.tmp.path / "one", "2 ranks killed, resumed on 1");
}

// Ranks whose recipes differ stop together with that error; a rank that cannot load stops the
// run with its error named by the launcher.
TEST(DistSft, DifferentRecipesOrAMissingModelStopAllRanks) {
  DistFixture f;
  const std::string port = std::to_string(free_tcp_port());
  auto rank = [&](int k, const std::string& lr) {
    return "RANK=" + std::to_string(k) + " WORLD_SIZE=2 LOCAL_RANK=" + std::to_string(k) +
           " MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port + " OMP_NUM_THREADS=1 " + f.cli + " sft " + f.recipe.string() +
           " run.output_dir=differ train.lr=" + lr + " > " + (f.tmp.path / ("rank" + std::to_string(k) + ".log")).string() + " 2>&1";
  };
  pid_t r0 = start_group(rank(0, "0.003")), r1 = start_group(rank(1, "0.004"));
  EXPECT_EQ(wait_group(r0, 120), 1);
  EXPECT_EQ(wait_group(r1, 120), 1);
  for (int k : {0, 1})
    EXPECT_NE(read_text_file(f.tmp.path / ("rank" + std::to_string(k) + ".log")).find("the resolved recipe"), std::string::npos)
        << read_text_file(f.tmp.path / ("rank" + std::to_string(k) + ".log"));

  EXPECT_EQ(run(f.sft("missing", 2, "model.path=" + (f.tmp.path / "nowhere").string()), 120), 1);
  EXPECT_NE(f.log("missing").find("dsalign launch: rank "), std::string::npos) << f.log("missing");
  EXPECT_NE(f.log("missing").find("nowhere"), std::string::npos) << f.log("missing");
}

// On a GPU: one NCCL rank (dsalign launch --nproc-per-node 1) trains like one process on cuda.
// Skipped without CUDA; scripts/gpu_check.sh runs it.
TEST(DistSft, NcclRankTrainsLikeOneProcessOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  DistFixture f;
  ASSERT_EQ(run(f.sft("cuda", 1, "model.device=cuda")), 0) << f.log("cuda");
  ASSERT_EQ(run(f.sft("nccl", 1, "model.device=cuda", /*launcher=*/true)), 0) << f.log("nccl");
  EXPECT_NE(f.log("nccl").find("(nccl)"), std::string::npos) << f.log("nccl");
  expect_same_curve(f.tmp.path / "nccl" / "metrics.jsonl", f.tmp.path / "cuda" / "metrics.jsonl", "loss", "one NCCL rank");
  expect_same_weights(f.tmp.path / "nccl", f.tmp.path / "cuda", "one NCCL rank");
}

// DPO on 2, 3 and 4 ranks (ddp, zero2, zero3 with the reference sharded too, and zero3 keeping
// units gathered, without prefetch, with activation checkpointing) with a live and a precomputed reference: the one-process
// loss, reward and validation curves and weights. 14 pairs a step over 2 pairs a micro-batch.
TEST(DistDpo, RanksTrainLikeOneProcess) {
  DistFixture f;
  {
    std::ofstream pairs(f.tmp.path / "pairs.jsonl");
    const char* names[] = {"Alice", "Bob", "Carol", "Dan", "Eve", "Finn", "Gus"};
    for (int i = 0; i < 70; ++i)
      pairs << R"({"prompt": "Greet )" << names[i % 7] << R"(.", "chosen": "Hello, )" << names[i % 7] << R"(!", "rejected": "Hello, )"
            << names[(i + 1) % 7] << std::string(static_cast<size_t>(1 + i % 3), '!') << R"("})" << "\n";
  }
  // The reference: the policy with other random weights, so rewards are not zero from the start.
  SaveOptions save;
  save.dtype = torch::kFloat32;
  init_checkpoint(*model_preset("tiny-coder"), 7, f.tmp.path / "reference", save);
  for (const char* file : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(f.tmp.path / "model" / file, f.tmp.path / "reference" / file);
  const fs::path recipe = f.tmp.write(
      "dpo.yaml",
      "run: {name: d, output_dir: one}\nmodel: {path: model}\n"
      "data: {sources: [{path: pairs.jsonl}], max_seq_len: 128, validation_fraction: 0.2}\n"
      "train: {micro_batch_size: 2, global_batch_size: 14, lr: 0.002, schedule: cosine, log_every: 1, val_every: 2,"
      " checkpoint_every_steps: 2, keep_last: 10}\n"
      "dpo: {loss: rpo, beta: 0.1, reference: {path: reference, cache_dir: refcache}}\n");
  auto dpo = [&](const std::string& out, int nproc, const std::string& extra) {
    const std::string launch = nproc > 1 ? f.cli + " launch --nproc-per-node " + std::to_string(nproc) + " dpo " : f.cli + " dpo ";
    return launch + recipe.string() + " run.output_dir=" + out + " " + extra + " > " + (f.tmp.path / (out + ".log")).string() + " 2>&1";
  };
  for (const std::string mode : {"live", "precomputed"}) {
    const std::string one = "one_" + mode, reference = "dpo.reference.mode=" + mode;
    ASSERT_EQ(run(dpo(one, 1, reference)), 0) << f.log(one);
    struct Case {
      std::string strategy;
      int n;
      std::string overrides;
    };
    for (const auto& [strategy, n, overrides] :
         std::vector<Case>{{"ddp", 2, ""}, {"zero2", 3, ""}, {"zero3", 3, ""},
                           {"zero3", 4, "dist.reshard_after_forward=false dist.prefetch=false model.activation_checkpointing=true"}}) {
      const std::string out = mode + "_" + strategy + "_" + std::to_string(n);
      // The precomputed runs share the cache with the one-process run: the 3-rank run scores
      // the reference itself first, to prove the table it builds across ranks.
      if (mode == "precomputed") fs::remove_all(f.tmp.path / "refcache");
      ASSERT_EQ(run(dpo(out, n, reference + " dist.strategy=" + strategy + " " + overrides)), 0) << f.log(out);
      const fs::path metrics = f.tmp.path / out / "metrics.jsonl", want = f.tmp.path / one / "metrics.jsonl";
      for (const char* key : {"loss", "grad_norm", "rewards/accuracy", "rewards/margin", "logps/chosen", "val_loss",
                              "val_rewards/margin"})
        expect_same_curve(metrics, want, key, out);
      // DPO's larger learning rate and RPO's two losses amplify more: up to 2.3e-5 seen on an
      // AVX-512 machine while every curve above agreed within 1e-5.
      expect_same_weights(f.tmp.path / out, f.tmp.path / one, out, 5e-5);
    }
  }
}

// A pipeline (init -> sft -> dpo -> fp32 export) under dsalign launch on 2 ranks ends with the
// weights one process's pipeline exports; a rerun skips every finished stage on every rank.
TEST(DistPipeline, RanksRunThePipelineLikeOneProcess) {
  DistFixture f;
  {
    std::ofstream pairs(f.tmp.path / "pairs.jsonl");
    const char* names[] = {"Alice", "Bob", "Carol", "Dan", "Eve"};
    for (int i = 0; i < 30; ++i)
      pairs << R"({"prompt": "Greet )" << names[i % 5] << R"(.", "chosen": "Hello, )" << names[i % 5]
            << R"(!", "rejected": "Bye."})" << "\n";
  }
  f.tmp.write("dpo.yaml", "run: {name: d, output_dir: d}\nmodel: {path: model}\n"
                          "data: {sources: [{path: pairs.jsonl}], max_seq_len: 128}\n"
                          "train: {micro_batch_size: 2, global_batch_size: 6, lr: 0.002, max_steps: 3, log_every: 1}\n"
                          "dpo: {loss: sigmoid, beta: 0.1, reference: {mode: live, path: model}}\n");
  const std::string tokenizer = (fs::path(DSALIGN_SOURCE_DIR) / "assets/tokenizers/deepseek-coder").string();
  const fs::path pipeline = f.tmp.write(
      "pipeline.yaml", "run: {name: p, output_dir: out}\nstages:\n"
                       "  - {name: base, init: {preset: tiny-coder, tokenizer: " + tokenizer + ", dtype: fp32}}\n"
                       "  - {name: sft, sft: recipe.yaml, overrides: {model.path: '${base.output}', train.max_steps: 3}}\n"
                       "  - {name: dpo, dpo: dpo.yaml, overrides: {model.path: '${sft.output}', dpo.reference.path: '${sft.output}'}}\n"
                       "  - {name: chat, export: {from: '${dpo.output}', dtype: fp32}}\n");
  auto pipe = [&](const std::string& out, int nproc, const std::string& log) {
    const std::string launch = nproc > 1 ? f.cli + " launch --nproc-per-node " + std::to_string(nproc) + " run " : f.cli + " run ";
    return launch + pipeline.string() + " run.output_dir=" + (f.tmp.path / out).string() + " > " +
           (f.tmp.path / (log + ".log")).string() + " 2>&1";
  };
  ASSERT_EQ(run(pipe("one", 1, "one")), 0) << f.log("one");
  ASSERT_EQ(run(pipe("two", 2, "two")), 0) << f.log("two");
  // The sft stage's fp32 master weights match to 1e-5; its final/ (bf16) feeds the dpo stage, so a
  // last-bit difference may round to one bf16 step there: the exported chat weights are compared
  // within one bf16 step (2^-8) of the largest weight.
  expect_same_weights(f.tmp.path / "two" / "sft", f.tmp.path / "one" / "sft", "pipeline sft stage");
  expect_close_weights(f.tmp.path / "two" / "chat" / "model.safetensors", f.tmp.path / "one" / "chat" / "model.safetensors",
                       1.0 / 256, "pipeline chat export");
  ASSERT_EQ(run(pipe("two", 2, "again")), 0) << f.log("again");
  const std::string again = f.log("again");
  size_t skipped = 0;
  for (size_t at = again.find("done already"); at != std::string::npos; at = again.find("done already", at + 1)) ++skipped;
  EXPECT_EQ(skipped, 4u) << again;  // rank 0 reports, every rank skips
}
