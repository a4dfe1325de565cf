// The ranks of a run and the c10d process group that joins them: a value passed to whatever
// communicates (trainers, validation, checkpoints), never a global. Dist{} is one process, where
// every collective is the identity. Collectives wait at most `timeout`; a peer that died or hung
// ends the wait with an Error naming the collective, so no rank hangs.
#pragma once
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dist/launch_env.h"

namespace dsalign {

class Dist {
 public:
  Dist() = default;  // one process
  // Rendezvous on the c10d TCPStore at MASTER_ADDR:MASTER_PORT (rank 0 serves it, unless torchrun's
  // agent does) and create ProcessGroupGloo (CPU) or ProcessGroupNCCL (CUDA, device
  // cuda:LOCAL_RANK). A one-process environment gives Dist{}.
  static Dist connect(const LaunchEnv& env, const torch::Device& device, std::chrono::milliseconds timeout);

  int64_t rank() const { return rank_; }
  int64_t world_size() const { return world_; }
  int64_t local_rank() const { return local_rank_; }
  bool is_main() const { return rank_ == 0; }
  // No process group: every collective is the identity. (One rank under a launcher still has a
  // group, so its collectives run: a one-rank NCCL run exercises NCCL.)
  bool single() const { return !backend_; }
  const std::string& backend_name() const { return backend_name_; }

  // In place, summed over the ranks (fp32 or fp64 tensors on the group's device).
  void all_reduce_sum(std::vector<torch::Tensor>& tensors, const char* what) const;
  void all_reduce_sum(torch::Tensor& t, const char* what) const;
  // output [input.numel()] = block `rank` of input [world_size * n] summed over the ranks.
  void reduce_scatter_sum(torch::Tensor& output, torch::Tensor& input, const char* what) const;
  // output [world_size * n] = every rank's input [n], in rank order.
  void all_gather(torch::Tensor& output, torch::Tensor& input, const char* what) const;
  // An all-gather started now and finished by wait() (which throws on timeout like the others):
  // work that overlaps compute (zero3's prefetch). On CUDA the collective runs on NCCL's stream and
  // wait() orders the current stream after it.
  class Async {
   public:
    Async(const Dist& dist, c10::intrusive_ptr<c10d::Work> work, const char* what)
        : dist_(dist), work_(std::move(work)), what_(what) {}
    void wait();

   private:
    const Dist& dist_;
    c10::intrusive_ptr<c10d::Work> work_;  // null: nothing to wait for (one process)
    const char* what_;
  };
  std::unique_ptr<Async> all_gather_async(torch::Tensor& output, torch::Tensor& input, const char* what) const;
  // Host numbers summed over the ranks (one collective for all of them).
  std::vector<double> all_reduce_sum(const std::vector<double>& values, const char* what) const;
  double all_reduce_max(double value, const char* what) const;
  // Every rank's value, in rank order (on every rank).
  std::vector<double> all_gather_values(double value, const char* what) const;
  // Every rank's bytes, in rank order (on every rank).
  std::vector<std::string> all_gather_strings(const std::string& mine, const char* what) const;
  void barrier(const char* what) const;
  // Runs `work` on this rank, then all ranks learn whether it threw anywhere: every rank returns
  // or every rank throws (the failing rank its own error, the others one naming that rank), so
  // no rank waits out the timeout in a later collective. Also a barrier.
  void all_succeed(const std::function<void()>& work, const char* what) const;
  // Error unless every rank passes the same value (a recipe hash: ranks that disagree stop together).
  void check_same(uint64_t value, const std::string& what) const;

 private:
  void wait(const c10::intrusive_ptr<c10d::Work>& work, const char* what) const;
  int64_t rank_ = 0, world_ = 1, local_rank_ = 0;
  std::string backend_name_ = "none";
  torch::Device device_ = torch::kCPU;
  std::chrono::milliseconds timeout_{0};
  c10::intrusive_ptr<c10d::Backend> backend_;
};

}  // namespace dsalign
