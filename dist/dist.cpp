#include "dist/dist.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef DSALIGN_WITH_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <cstring>

#include "util/error.h"

namespace dsalign {

namespace {

// c10d's messages run to many lines (a C++ backtrace); the first says what happened.
std::string first_line(const std::string& s) {
  size_t end = s.find('\n');
  return end == std::string::npos ? s : s.substr(0, end);
}

}  // namespace

Dist Dist::connect(const LaunchEnv& env, const torch::Device& device, std::chrono::milliseconds timeout) {
  Dist d;
  if (!env.distributed()) return d;
  d.rank_ = env.rank;
  d.world_ = env.world_size;
  d.local_rank_ = env.local_rank;
  // One GPU per rank: cuda:LOCAL_RANK, also for the collectives' own small tensors.
  d.device_ = device.is_cuda() ? torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank)) : device;
  d.timeout_ = timeout;
  c10::intrusive_ptr<c10d::Store> store;
  try {
    c10d::TCPStoreOptions options;
    options.port = static_cast<uint16_t>(env.master_port);
    options.isServer = env.rank == 0 && !env.agent_store;
    options.numWorkers = env.agent_store ? std::nullopt : std::optional<std::size_t>(env.world_size);
    options.waitWorkers = false;
    options.timeout = timeout;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(env.master_addr, options);
    store = c10::make_intrusive<c10d::PrefixStore>(env.store_prefix, tcp);
  } catch (const std::exception& e) {
    fail("rank ", env.rank, ": cannot reach the c10d store at ", env.master_addr, ":", env.master_port, " (",
         first_line(e.what()), ")");
  }
  try {
    if (device.is_cuda()) {
#ifdef DSALIGN_WITH_NCCL
      c10::cuda::set_device(static_cast<c10::DeviceIndex>(env.local_rank));
      auto options = c10d::ProcessGroupNCCL::Options::create();
      options->timeout = timeout;
      d.backend_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, static_cast<int>(env.rank),
                                                               static_cast<int>(env.world_size), options);
      d.backend_name_ = "nccl";
#else
      fail("this build has no NCCL (CUDA was not found when it was configured); train on CPU or rebuild with CUDA");
#endif
    } else {
      auto options = c10d::ProcessGroupGloo::Options::create_default(timeout);
      d.backend_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store, static_cast<int>(env.rank),
                                                               static_cast<int>(env.world_size), options);
      d.backend_name_ = "gloo";
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail("rank ", env.rank, ": cannot create the process group (", first_line(e.what()), ")");
  }
  return d;
}

void Dist::wait(const c10::intrusive_ptr<c10d::Work>& work, const char* what) const {
  try {
    work->wait(timeout_);
  } catch (const std::exception& e) {
    fail("rank ", rank_, ": collective '", what, "' failed: a peer stopped or did not answer within ",
         timeout_.count() / 60000.0, " minutes (", first_line(e.what()), ")");
  }
}

void Dist::all_reduce_sum(std::vector<torch::Tensor>& tensors, const char* what) const {
  if (single() || tensors.empty()) return;
  // One flat buffer: one collective per call, whatever the number of tensors.
  std::vector<torch::Tensor> flat = {torch::cat([&] {
    std::vector<torch::Tensor> parts;
    for (auto& t : tensors) parts.push_back(t.reshape(-1));
    return parts;
  }())};
  wait(backend_->allreduce(flat), what);
  int64_t offset = 0;
  for (auto& t : tensors) {
    t.copy_(flat[0].narrow(0, offset, t.numel()).view_as(t));
    offset += t.numel();
  }
}

void Dist::all_reduce_sum(torch::Tensor& t, const char* what) const {
  if (single()) return;
  std::vector<torch::Tensor> one = {t};
  wait(backend_->allreduce(one), what);
}

void Dist::reduce_scatter_sum(torch::Tensor& output, torch::Tensor& input, const char* what) const {
  if (single()) {
    output.copy_(input);
    return;
  }
  wait(backend_->_reduce_scatter_base(output, input), what);
}

void Dist::all_gather(torch::Tensor& output, torch::Tensor& input, const char* what) const {
  if (single()) {
    output.copy_(input);
    return;
  }
  wait(backend_->_allgather_base(output, input), what);
}

std::unique_ptr<Dist::Async> Dist::all_gather_async(torch::Tensor& output, torch::Tensor& input, const char* what) const {
  if (single()) {
    output.copy_(input);
    return std::make_unique<Async>(*this, nullptr, what);
  }
  return std::make_unique<Async>(*this, backend_->_allgather_base(output, input), what);
}

void Dist::Async::wait() {
  if (work_) dist_.wait(work_, what_);
  work_.reset();
}

std::vector<double> Dist::all_reduce_sum(const std::vector<double>& values, const char* what) const {
  if (single() || values.empty()) return values;
  torch::Tensor t = torch::tensor(values, torch::kFloat64).to(device_);
  all_reduce_sum(t, what);
  t = t.cpu();
  return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
}

double Dist::all_reduce_max(double value, const char* what) const {
  if (single()) return value;
  std::vector<torch::Tensor> one = {torch::tensor({value}, torch::kFloat64).to(device_)};
  c10d::AllreduceOptions options;
  options.reduceOp = c10d::ReduceOp::MAX;
  wait(backend_->allreduce(one, options), what);
  return one[0].cpu().item<double>();
}

std::vector<double> Dist::all_gather_values(double value, const char* what) const {
  if (single()) return {value};
  torch::Tensor mine = torch::tensor({value}, torch::kFloat64).to(device_);
  torch::Tensor all = torch::empty({world_}, mine.options());
  all_gather(all, mine, what);
  all = all.cpu();
  return std::vector<double>(all.data_ptr<double>(), all.data_ptr<double>() + world_);
}

std::vector<std::string> Dist::all_gather_strings(const std::string& mine, const char* what) const {
  if (single()) return {mine};
  // Lengths first, then every rank's bytes padded to the longest.
  torch::Tensor length = torch::tensor({static_cast<int64_t>(mine.size())}, torch::kInt64).to(device_);
  torch::Tensor lengths = torch::empty({world_}, length.options());
  all_gather(lengths, length, what);
  lengths = lengths.cpu();
  const int64_t longest = lengths.max().item<int64_t>();
  torch::Tensor bytes = torch::zeros({std::max<int64_t>(longest, 1)}, torch::kUInt8);
  std::memcpy(bytes.data_ptr<uint8_t>(), mine.data(), mine.size());
  bytes = bytes.to(device_);
  torch::Tensor all = torch::empty({world_ * bytes.numel()}, bytes.options());
  all_gather(all, bytes, what);
  all = all.cpu();
  std::vector<std::string> out;
  for (int64_t r = 0; r < world_; ++r)
    out.emplace_back(reinterpret_cast<const char*>(all.data_ptr<uint8_t>()) + r * bytes.numel(),
                     static_cast<size_t>(lengths[r].item<int64_t>()));
  return out;
}

void Dist::all_succeed(const std::function<void()>& work, const char* what) const {
  std::string error;
  std::exception_ptr mine;
  try {
    work();
  } catch (const std::exception& e) {
    error = first_line(e);
    if (error.empty()) error = "failed";
    mine = std::current_exception();
  }
  const std::vector<std::string> errors = all_gather_strings(error, what);
  if (mine) std::rethrow_exception(mine);
  for (int64_t r = 0; r < world_; ++r)
    if (!errors[static_cast<size_t>(r)].empty()) fail(what, ": rank ", r, " failed: ", errors[static_cast<size_t>(r)]);
}

void Dist::barrier(const char* what) const {
  if (single()) return;
  std::vector<torch::Tensor> one = {torch::zeros({1}, torch::TensorOptions().device(device_))};
  wait(backend_->allreduce(one), what);
}

void Dist::check_same(uint64_t value, const std::string& what) const {
  if (single()) return;
  // Compare as two 32-bit halves (exact in fp64): min and max agree only when every rank agrees.
  const double hi = static_cast<double>(value >> 32), lo = static_cast<double>(value & 0xffffffffu);
  const double max_hi = all_reduce_max(hi, "check_same"), max_lo = all_reduce_max(lo, "check_same");
  const double min_hi = -all_reduce_max(-hi, "check_same"), min_lo = -all_reduce_max(-lo, "check_same");
  if (max_hi != min_hi || max_lo != min_lo) fail("rank ", rank_, ": ", what, " differs between ranks");
}

}  // namespace dsalign
