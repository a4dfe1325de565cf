#include "dist/data_parallel.h"

#include "model/checkpoint.h"
#include "train/checkpoint_reader.h"
#include "train/run_setup.h"
#include "util/error.h"

namespace dsalign {
namespace {

constexpr int64_t kBucketElements = 25'000'000;  // values per collective, so no model-size buffer appears

int64_t row_elements(const torch::Tensor& t) { return t.dim() == 0 ? 1 : t.numel() / std::max<int64_t>(t.size(0), 1); }

// Rows [begin, begin + n) of `t` as a [per_rank * row_elements] flat tensor, zero-padded at the end.
torch::Tensor padded_rows(const torch::Tensor& t, int64_t begin, int64_t n, int64_t per_rank) {
  torch::Tensor flat = torch::zeros({per_rank * row_elements(t)}, t.options());
  if (n > 0) flat.narrow(0, 0, n * row_elements(t)).copy_(t.reshape({t.size(0), -1}).narrow(0, begin, n).reshape(-1));
  return flat;
}

}  // namespace

DataParallel::DataParallel(const Dist& dist, ShardStrategy strategy, CausalLM& model, const TrainConfig& train,
                           const ShardedUnitsOptions& zero3)
    : dist_(dist), strategy_(strategy) {
  torch::NoGradGuard no_grad;
  if (strategy_ == ShardStrategy::zero3) {
    // A model load_sharded_model() built is sharded already; a whole one is taken apart here.
    units_ = std::dynamic_pointer_cast<ShardedUnits>(model->unit_runner);
    if (!units_) units_ = ShardedUnits::shard(dist, model, zero3);
    names_ = units_->names();
    params_ = units_->full_parameters();
    shards_ = units_->row_shards();
    owned_ = units_->weights();         // the same tensors: AdamW updates the units' rows
    shard_grads_ = units_->gradients();  // filled by the units' backward
  }
  for (auto& item : model->named_parameters()) {
    if (units_) break;
    names_.push_back(item.key());
    params_.push_back(item.value());
    RowShard shard = sharded() ? row_shard(item.value().size(0), dist.world_size(), dist.rank())
                               : RowShard{0, item.value().size(0), item.value().size(0)};
    shards_.push_back(shard);
    // A view of the owned rows: AdamW's in-place update writes the parameter's own storage.
    owned_.push_back(sharded() ? item.value().detach().narrow(0, shard.begin, shard.rows()) : item.value());
    if (sharded()) shard_grads_.push_back(torch::zeros_like(owned_.back()));
  }
  size_t first = 0;
  int64_t in_bucket = 0;
  for (size_t i = 0; i < params_.size(); ++i) {
    in_bucket += params_[i].numel();
    if (in_bucket >= kBucketElements || i + 1 == params_.size()) {
      buckets_.emplace_back(first, i + 1);
      first = i + 1;
      in_bucket = 0;
    }
  }
  NamedTensors named;
  for (size_t i = 0; i < owned_.size(); ++i) named.emplace_back(names_[i], owned_[i]);
  adamw_ = make_adamw(named, train, model->options.kernels.adamw == ops::Backend::kernels);
  if (sharded())
    for (size_t i = 0; i < owned_.size(); ++i) owned_[i].mutable_grad() = shard_grads_[i];
}

void DataParallel::begin_step() {
  traffic_ = {};
  if (units_) units_->reset_traffic();
}

// Each bucket: for every rank r, its rows of every parameter, one after another; the collective
// leaves rank r the sum over ranks of block r.
void DataParallel::reduce_scatter_into_shards() {
  torch::NoGradGuard no_grad;
  const int64_t world = dist_.world_size();
  for (auto [first, last] : buckets_) {
    std::vector<torch::Tensor> blocks;
    int64_t block = 0;
    for (size_t i = first; i < last; ++i) block += shards_[i].per_rank * row_elements(params_[i]);
    for (int64_t r = 0; r < world; ++r)
      for (size_t i = first; i < last; ++i) {
        RowShard s = row_shard(params_[i].size(0), world, r);
        torch::Tensor g = params_[i].grad().defined() ? params_[i].grad() : torch::zeros_like(params_[i]);
        blocks.push_back(padded_rows(g, s.begin, s.rows(), s.per_rank));
      }
    torch::Tensor input = torch::cat(blocks), output = torch::empty({block}, input.options());
    blocks.clear();
    dist_.reduce_scatter_sum(output, input, "gradient reduce-scatter");
    traffic_.reduced += input.numel() * input.element_size();
    int64_t offset = 0;
    for (size_t i = first; i < last; ++i) {
      const int64_t n = shards_[i].rows() * row_elements(params_[i]);
      shard_grads_[i].add_(output.narrow(0, offset, n).view_as(shard_grads_[i]));
      offset += shards_[i].per_rank * row_elements(params_[i]);
      params_[i].mutable_grad() = torch::Tensor();  // the full gradient is not kept
    }
  }
}

void DataParallel::all_gather_rows() {
  torch::NoGradGuard no_grad;
  const int64_t world = dist_.world_size();
  for (auto [first, last] : buckets_) {
    std::vector<torch::Tensor> mine;
    for (size_t i = first; i < last; ++i) mine.push_back(padded_rows(params_[i], shards_[i].begin, shards_[i].rows(), shards_[i].per_rank));
    torch::Tensor input = torch::cat(mine);
    torch::Tensor output = torch::empty({input.numel() * world}, input.options());
    dist_.all_gather(output, input, "parameter all-gather");
    traffic_.gathered += output.numel() * output.element_size();
    for (int64_t r = 0; r < world; ++r) {
      int64_t offset = r * input.numel();
      for (size_t i = first; i < last; ++i) {
        RowShard s = row_shard(params_[i].size(0), world, r);
        const int64_t per_row = row_elements(params_[i]);
        if (r != dist_.rank() && s.rows() > 0)
          params_[i].reshape({params_[i].size(0), -1}).narrow(0, s.begin, s.rows()).copy_(
              output.narrow(0, offset, s.rows() * per_row).view({s.rows(), per_row}));
        offset += s.per_rank * per_row;
      }
    }
  }
}

void DataParallel::after_micro_batch() {
  if (strategy_ == ShardStrategy::zero2) reduce_scatter_into_shards();
}

void DataParallel::finish_gradients() {
  if (strategy_ == ShardStrategy::zero1) {
    reduce_scatter_into_shards();
  } else if (strategy_ == ShardStrategy::ddp) {
    for (auto [first, last] : buckets_) {
      std::vector<torch::Tensor> grads;
      for (size_t i = first; i < last; ++i) {
        if (!params_[i].grad().defined()) params_[i].mutable_grad() = torch::zeros_like(params_[i]);
        grads.push_back(params_[i].grad());
      }
      dist_.all_reduce_sum(grads, "gradient all-reduce");
      for (const auto& g : grads) traffic_.reduced += g.numel() * g.element_size();
    }
  }
}

// The gradient norm in fp64 over every element (summed over the ranks' rows when sharded), so one
// process and any sharding compute the same number; clipping as torch.nn.utils.clip_grad_norm_:
// scale by max_norm / (norm + 1e-6) when that is below 1.
double DataParallel::clip_grad_norm(double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads;
  if (sharded()) {
    for (const auto& g : shard_grads_)
      if (g.defined()) grads.push_back(g);  // undefined: a frozen parameter under zero3
  } else {
    for (auto& p : params_)
      if (p.grad().defined()) grads.push_back(p.grad());
  }
  double squares = 0;
  for (const auto& g : grads) {
    // Accumulated in fp64 inside the reduction (no fp64 copy of the gradient).
    const double n = torch::linalg_vector_norm(g, 2, c10::nullopt, false, torch::kFloat64).item<double>();
    squares += n * n;
  }
  if (sharded()) squares = dist_.all_reduce_sum({squares}, "gradient norm")[0];
  const double norm = std::sqrt(squares);
  const double coefficient = max_norm / (norm + 1e-6);
  if (max_norm > 0 && coefficient < 1)
    for (auto& g : grads) g.mul_(coefficient);
  return norm;
}

void DataParallel::step(double lr) {
  adamw_->step(lr);
  if (replicated_rows()) all_gather_rows();
  last_traffic_ = traffic_;
  if (units_) {
    last_traffic_.reduced += units_->traffic().reduced;
    last_traffic_.gathered += units_->traffic().gathered;
    last_traffic_.gathered_peak = units_->traffic().peak_resident;
    last_traffic_.gathered_after = units_->gathered_bytes_resident();
  }
  zero_grad();
}

void DataParallel::zero_grad() {
  for (auto& p : params_) p.mutable_grad() = torch::Tensor();
  for (auto& g : shard_grads_)
    if (g.defined()) g.zero_();
}

NamedTensors DataParallel::optimizer_state(HostStaging& staging) {
  NamedTensors named;
  for (size_t i = 0; i < owned_.size(); ++i) named.emplace_back(names_[i], owned_[i]);
  if (!sharded()) return adamw_state_tensors(named, *adamw_, staging);
  // Each moment gathered row range by row range into the full tensor, one parameter at a time.
  NamedTensors out;
  const int64_t world = dist_.world_size();
  for (size_t i = 0; i < params_.size(); ++i) {
    const AdamW::ParamState* st = adamw_->state(owned_[i]);
    if (!st) continue;  // no step taken yet
    const std::string prefix = "optimizer." + names_[i];
    for (const char* key : {".exp_avg", ".exp_avg_sq"}) {
      const torch::Tensor& part = std::string(key) == ".exp_avg" ? st->exp_avg : st->exp_avg_sq;
      torch::Tensor input = padded_rows(part.detach().to(params_[i].device()), 0, shards_[i].rows(), shards_[i].per_rank);
      torch::Tensor output = torch::empty({input.numel() * world}, input.options());
      dist_.all_gather(output, input, "optimizer state all-gather");
      if (!dist_.is_main()) continue;
      std::vector<torch::Tensor> pieces;
      for (int64_t r = 0; r < world; ++r) {
        RowShard s = row_shard(params_[i].size(0), world, r);
        pieces.push_back(output.narrow(0, r * input.numel(), s.rows() * row_elements(params_[i])));
      }
      out.emplace_back(prefix + key, staging.copy(prefix + key, torch::cat(pieces).view(params_[i].sizes())));
    }
    out.emplace_back(prefix + ".step", torch::tensor({st->step}, torch::kInt64));
  }
  return out;
}

void DataParallel::load_optimizer_state(const CheckpointReader& checkpoint) {
  NamedTensors named;
  std::map<std::string, torch::Tensor> saved;
  for (size_t i = 0; i < owned_.size(); ++i) {
    named.emplace_back(names_[i], owned_[i]);
    const std::string prefix = "optimizer." + names_[i];
    if (!checkpoint.has(prefix + ".step")) continue;  // no step taken yet
    // The rows this rank's AdamW covers: its shard, or the whole parameter.
    const int64_t begin = sharded() ? shards_[i].begin : 0;
    const int64_t end = sharded() ? shards_[i].end : params_[i].size(0);
    for (const char* key : {".exp_avg", ".exp_avg_sq"}) saved[prefix + key] = checkpoint.rows(prefix + key, begin, end);
    saved[prefix + ".step"] = checkpoint.whole(prefix + ".step");
  }
  restore_adamw_state(named, *adamw_, saved, checkpoint.dir().string());
}

DataParallel::CheckpointPart DataParallel::checkpoint_part(HostStaging& staging) {
  torch::NoGradGuard no_grad;
  const int64_t world = dist_.world_size(), rank = dist_.rank();
  CheckpointPart part;
  part.layout = nlohmann::json::object();
  for (size_t i = 0; i < params_.size(); ++i) {
    const int64_t rows = params_[i].size(0);
    const RowShard mine = row_shard(rows, world, rank);
    nlohmann::json ranges = nlohmann::json::array();
    for (int64_t r = 0; r < world; ++r) {
      const RowShard s = row_shard(rows, world, r);
      ranges.push_back({s.begin, s.end});
    }
    // AdamW's state covers exactly these rows when sharded (zero1/2/3), the whole parameter otherwise.
    auto my_rows = [&](const std::string& key, const torch::Tensor& t) {
      return staging.copy(key, sharded() ? t : t.narrow(0, mine.begin, mine.rows()));
    };
    part.layout[names_[i]] = {{"shape", params_[i].sizes().vec()}, {"rows", ranges}};
    if (mine.rows() > 0)
      part.weights.emplace_back(names_[i],
                                staging.copy(names_[i], units_ ? owned_[i] : params_[i].narrow(0, mine.begin, mine.rows())));
    const AdamW::ParamState* st = adamw_->state(owned_[i]);
    if (!st) continue;  // no step taken yet
    const std::string prefix = "optimizer." + names_[i];
    for (const char* key : {".exp_avg", ".exp_avg_sq"}) {
      part.layout[prefix + key] = {{"shape", params_[i].sizes().vec()}, {"rows", ranges}};
      if (mine.rows() > 0)
        part.optimizer.emplace_back(prefix + key, my_rows(prefix + key, std::string(key) == ".exp_avg" ? st->exp_avg : st->exp_avg_sq));
    }
    part.layout[prefix + ".step"] = {{"shape", {1}}, {"whole", true}};
    part.optimizer.emplace_back(prefix + ".step", torch::tensor({st->step}, torch::kInt64));
  }
  staging.finish();
  return part;
}

NamedTensors DataParallel::model_weights(CausalLM& model) {
  if (!units_) return checkpoint_tensors(model);
  NamedTensors out;
  for (size_t i = 0; i < names_.size(); ++i) {
    torch::Tensor whole = units_->gather_whole(i);
    if (dist_.is_main()) out.emplace_back(names_[i], whole.cpu());
  }
  return out;
}

DataParallel::Held DataParallel::held_bytes() const {
  Held h;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (units_) {  // the rows, their summed gradient and their AdamW moments, all fp32
      h.weights += owned_[i].numel() * owned_[i].element_size();
      h.gradients += shard_grads_[i].defined() ? shard_grads_[i].numel() * 4 : 0;
      h.optimizer += 2 * owned_[i].numel() * 4;
      continue;
    }
    h.weights += params_[i].numel() * params_[i].element_size();
    // zero1 accumulates full gradients through the step, then keeps its rows' sum; zero2 only the rows.
    const int64_t full = strategy_ == ShardStrategy::zero2 ? 0 : params_[i].numel();
    h.gradients += (full + (sharded() ? owned_[i].numel() : 0)) * params_[i].element_size();
    h.optimizer += 2 * owned_[i].numel() * 4;  // exp_avg, exp_avg_sq in fp32
  }
  return h;
}

}  // namespace dsalign
