#include "dist/sharded_units.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>

#include "model/checkpoint.h"
#include "util/error.h"

namespace dsalign {
namespace {

// A gathered parameter's storage is allocated and released in place (the bytes, not the tensor):
// every view of it, including those autograd saved, shares that storage. Both return the change
// in allocated bytes.
int64_t allocate_storage(const torch::Tensor& t) {
  c10::StorageImpl* storage = t.storage().unsafeGetStorageImpl();
  const size_t bytes = static_cast<size_t>(t.numel()) * t.element_size();
  if (storage->nbytes() == bytes) return 0;
  const auto before = static_cast<int64_t>(storage->nbytes());
  storage->set_data_ptr_noswap(storage->allocator()->allocate(bytes));
  storage->set_nbytes(bytes);
  return static_cast<int64_t>(bytes) - before;
}

int64_t release_storage(const torch::Tensor& t) {
  c10::StorageImpl* storage = t.storage().unsafeGetStorageImpl();
  const auto before = static_cast<int64_t>(storage->nbytes());
  storage->set_data_ptr_noswap(at::DataPtr(nullptr, t.device()));
  storage->set_nbytes(0);
  return -before;
}

// The backward of one unit: re-gather, back-propagate through the unit's graph (recorded in
// forward, or recomputed now), reduce-scatter the parameter gradients, release, and pass the
// input's gradient on.
struct UnitBackward : torch::autograd::Node {
  UnitBackward(std::shared_ptr<ShardedUnits> units, size_t unit, UnitFn recompute, torch::Tensor input, torch::Tensor output)
      : units_(std::move(units)), unit_(unit), recompute_(std::move(recompute)), input_(std::move(input)),
        output_(std::move(output)) {}

  torch::autograd::variable_list apply(torch::autograd::variable_list&& grads) override {
    // The saved tensors are dropped below (they hold the unit's graph and activations).
    TORCH_CHECK(input_.defined() || output_.defined(), "zero3 units support one backward per forward");
    ShardedUnits& units = *units_;
    units.gather(unit_);
    if (unit_ > 0) units.prefetch(unit_ - 1);
    torch::Tensor x = input_, y = output_;
    if (recompute_) {
      torch::AutoGradMode enable(true);
      x = input_.detach();
      if (input_.requires_grad()) x.requires_grad_(true);
      y = recompute_(x);
    }
    const std::vector<size_t>& params = units.unit_parameters(unit_);
    std::vector<torch::Tensor> wrt;  // the trainable parameters, then the input if it needs a gradient
    for (size_t i : params)
      if (units.full_parameters()[i].requires_grad()) wrt.push_back(units.full_parameters()[i]);
    const size_t trainable = wrt.size();
    const bool input_grad = x.requires_grad();
    if (input_grad) wrt.push_back(x);
    torch::Tensor g = grads[0].defined() ? grads[0] : torch::zeros_like(y);
    torch::autograd::variable_list out =
        torch::autograd::grad({y}, wrt, {g}, /*retain_graph=*/false, /*create_graph=*/false, /*allow_unused=*/true);
    units.release(unit_);
    std::vector<torch::Tensor> param_grads(params.size());  // undefined for frozen parameters
    for (size_t k = 0, next = 0; k < params.size() && next < trainable; ++k)
      if (units.full_parameters()[params[k]].requires_grad()) param_grads[k] = out[next++];
    units.reduce_gradients(unit_, param_grads);
    recompute_ = nullptr;
    input_ = output_ = torch::Tensor();
    return {input_grad ? out.back() : torch::Tensor()};
  }
  std::string name() const override { return "ShardedUnitBackward"; }

 private:
  std::shared_ptr<ShardedUnits> units_;
  size_t unit_;
  UnitFn recompute_;  // set under activation checkpointing
  torch::Tensor input_, output_;
};

}  // namespace

std::shared_ptr<ShardedUnits> ShardedUnits::shard(const Dist& dist, CausalLM& model, const ShardedUnitsOptions& options) {
  if (model->config.tie_word_embeddings)
    fail("dist.strategy zero3: models with tie_word_embeddings are not supported (the embedding and lm_head would be "
         "one parameter in two units); use zero2");
  auto u = std::make_shared<ShardedUnits>(dist, options);
  torch::NoGradGuard no_grad;
  const int64_t layers = model->config.num_hidden_layers;
  u->units_.resize(unit_count(layers));
  u->gathered_.assign(u->units_.size(), false);
  u->gather_dtype_ = model->options.compute_dtype;
  for (auto& item : model->named_parameters()) {
    torch::Tensor p = item.value();
    const RowShard s = row_shard(p.size(0), dist.world_size(), dist.rank());
    const size_t i = u->names_.size();
    u->names_.push_back(item.key());
    u->row_shards_.push_back(s);
    u->row_elements_.push_back(p.numel() / std::max<int64_t>(p.size(0), 1));
    std::vector<int64_t> rows_shape = p.sizes().vec();
    rows_shape[0] = s.rows();
    u->shard_weights_.push_back(p.storage().nbytes() > 0 ? p.detach().narrow(0, s.begin, s.rows()).clone()
                                                         : torch::empty(rows_shape, p.options()));
    u->shard_grads_.push_back(p.requires_grad() ? torch::zeros_like(u->shard_weights_.back(), torch::kFloat32) : torch::Tensor());
    // The parameter keeps its identity (the module's tensor, its requires_grad) and becomes a
    // full-size compute-dtype tensor with no bytes until its unit is gathered.
    p.set_data(ParamFactory{p.options().dtype(u->gather_dtype_), true}(p.sizes()));
    u->full_.push_back(p);
    u->units_[unit_of_parameter(item.key(), layers)].push_back(i);
  }
  model->unit_runner = u;
  return u;
}

torch::Tensor ShardedUnits::unit_input(size_t unit) const {
  int64_t block = 0;
  for (size_t i : units_[unit]) block += row_shards_[i].per_rank * row_elements_[i];
  const torch::Tensor& any = shard_weights_[units_[unit].front()];
  torch::Tensor input = torch::zeros({block}, any.options().dtype(gather_dtype_));
  int64_t offset = 0;
  for (size_t i : units_[unit]) {
    input.narrow(0, offset, shard_weights_[i].numel()).copy_(shard_weights_[i].reshape(-1));
    offset += row_shards_[i].per_rank * row_elements_[i];
  }
  return input;
}

// `output` holds every rank's block in rank order; each block holds the rank's rows of each
// parameter of the unit, padded to per_rank rows.
void ShardedUnits::scatter_gathered(size_t unit, const torch::Tensor& output) {
  torch::NoGradGuard no_grad;
  const int64_t world = dist_.world_size(), block = output.numel() / world;
  int64_t offset = 0;
  for (size_t i : units_[unit]) {
    resident_ += allocate_storage(full_[i]);
    traffic_.peak_resident = std::max(traffic_.peak_resident, resident_);
    // variable_data(): the same storage with its own version counter, so filling it does not look
    // like an in-place change to the tensors autograd saved.
    torch::Tensor rows = full_[i].variable_data().view({full_[i].size(0), row_elements_[i]});
    for (int64_t r = 0; r < world; ++r) {
      const RowShard s = row_shard(full_[i].size(0), world, r);
      if (s.rows() > 0)
        rows.narrow(0, s.begin, s.rows()).copy_(output.narrow(0, r * block + offset, s.rows() * row_elements_[i]).view({s.rows(), row_elements_[i]}));
    }
    offset += row_shards_[i].per_rank * row_elements_[i];
  }
}

void ShardedUnits::gather(size_t unit) {
  if (gathered_[unit]) return;
  torch::Tensor output;
  if (pending_ && pending_->unit == unit) {
    pending_->work->wait();
    output = pending_->output;
  } else {
    if (pending_) pending_->work->wait();  // every rank issued it: finish it before the next collective
    torch::Tensor input = unit_input(unit);
    output = torch::empty({input.numel() * dist_.world_size()}, input.options());
    dist_.all_gather(output, input, "parameter all-gather");
    traffic_.gathered += output.numel() * output.element_size();
  }
  pending_.reset();
  scatter_gathered(unit, output);
  gathered_[unit] = true;
}

void ShardedUnits::prefetch(size_t unit) {
  if (!options_.prefetch || unit >= units_.size() || gathered_[unit] || pending_) return;
  Pending p;
  p.unit = unit;
  p.input = unit_input(unit);
  p.output = torch::empty({p.input.numel() * dist_.world_size()}, p.input.options());
  p.work = dist_.all_gather_async(p.output, p.input, "parameter all-gather (prefetch)");
  traffic_.gathered += p.output.numel() * p.output.element_size();
  pending_ = std::move(p);
}

void ShardedUnits::release(size_t unit) {
  for (size_t i : units_[unit]) resident_ += release_storage(full_[i]);
  gathered_[unit] = false;
}

void ShardedUnits::reduce_gradients(size_t unit, const std::vector<torch::Tensor>& grads) {
  torch::NoGradGuard no_grad;
  const std::vector<size_t>& params = units_[unit];
  const int64_t world = dist_.world_size();
  int64_t block = 0;
  for (size_t i : params) block += row_shards_[i].per_rank * row_elements_[i];
  const torch::Tensor& any = shard_weights_[params.front()];
  torch::Tensor input = torch::zeros({world * block}, any.options().dtype(torch::kFloat32));
  for (int64_t r = 0; r < world; ++r) {
    int64_t offset = r * block;
    for (size_t k = 0; k < params.size(); ++k) {
      const size_t i = params[k];
      const RowShard s = row_shard(full_[i].size(0), world, r);
      if (grads[k].defined() && s.rows() > 0)
        input.narrow(0, offset, s.rows() * row_elements_[i])
            .copy_(grads[k].reshape({full_[i].size(0), row_elements_[i]}).narrow(0, s.begin, s.rows()).reshape(-1));
      offset += row_shards_[i].per_rank * row_elements_[i];
    }
  }
  torch::Tensor output = torch::empty({block}, input.options());
  dist_.reduce_scatter_sum(output, input, "gradient reduce-scatter");
  traffic_.reduced += input.numel() * input.element_size();
  int64_t offset = 0;
  for (size_t i : params) {
    if (shard_grads_[i].defined())
      shard_grads_[i].add_(output.narrow(0, offset, shard_grads_[i].numel()).view_as(shard_grads_[i]));
    offset += row_shards_[i].per_rank * row_elements_[i];
  }
}

torch::Tensor ShardedUnits::run(size_t unit, const UnitFn& fn, const torch::Tensor& x, bool recompute) {
  bool trainable = x.requires_grad();
  for (size_t i : units_[unit]) trainable |= full_[i].requires_grad();
  gather(unit);
  prefetch(unit + 1);
  if (!torch::GradMode::is_enabled() || !trainable) {
    torch::Tensor y = fn(x);
    release(unit);
    return y;
  }
  torch::Tensor input = x.detach();
  if (x.requires_grad()) input.requires_grad_(true);
  torch::Tensor inner, y;
  if (recompute) {
    torch::NoGradGuard no_grad;
    y = fn(input);
  } else {
    inner = fn(input);
    y = inner.detach();
  }
  // The head's backward comes next: it stays gathered (as FSDP keeps its root unit).
  if (options_.reshard_after_forward && unit != head()) release(unit);
  auto node = std::shared_ptr<UnitBackward>(
      new UnitBackward(shared_from_this(), unit, recompute ? fn : UnitFn(), input, inner), torch::autograd::deleteNode);
  node->set_next_edges(torch::autograd::collect_next_edges(x));
  torch::autograd::set_history(y, node);
  return y;
}

UnitRunner::LoadTarget ShardedUnits::load_target(const std::string& name) {
  auto it = std::find(names_.begin(), names_.end(), name);
  if (it == names_.end()) fail("zero3 load: no parameter named ", name);
  const auto i = static_cast<size_t>(it - names_.begin());
  return {row_shards_[i].begin, shard_weights_[i]};
}

CausalLM load_sharded_model(const Dist& dist, const std::filesystem::path& dir, DecoderOptions options,
                            const ShardedUnitsOptions& units, bool frozen) {
  options.unallocated = true;
  CausalLM model(load_model_config(dir), options);
  if (frozen)
    for (auto& p : model->parameters()) p.set_requires_grad(false);
  ShardedUnits::shard(dist, model, units);
  load_weights(model, dir);
  return model;
}

int64_t ShardedUnits::max_over_ranks(int64_t local) {
  return static_cast<int64_t>(dist_.all_reduce_max(static_cast<double>(local), "turns in lockstep"));
}

torch::Tensor ShardedUnits::gather_whole(size_t i) {
  torch::NoGradGuard no_grad;
  const int64_t world = dist_.world_size(), per_row = row_elements_[i], rows = full_[i].size(0);
  const int64_t block = row_shards_[i].per_rank * per_row;
  torch::Tensor input = torch::zeros({block}, shard_weights_[i].options());
  input.narrow(0, 0, shard_weights_[i].numel()).copy_(shard_weights_[i].reshape(-1));
  torch::Tensor output = torch::empty({block * world}, input.options());
  dist_.all_gather(output, input, "parameter gather (checkpoint)");
  torch::Tensor whole = torch::empty({rows, per_row}, input.options());
  for (int64_t r = 0; r < world; ++r) {
    const RowShard s = row_shard(rows, world, r);
    if (s.rows() > 0) whole.narrow(0, s.begin, s.rows()).copy_(output.narrow(0, r * block, s.rows() * per_row).view({s.rows(), per_row}));
  }
  return whole.view(full_[i].sizes());
}

int64_t ShardedUnits::gathered_bytes_resident() const {
  int64_t bytes = 0;
  for (const auto& t : full_) bytes += static_cast<int64_t>(t.storage().nbytes());
  return bytes;
}

}  // namespace dsalign
