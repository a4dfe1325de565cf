// init, inspect, forward: the model-level subcommands.
#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/args.h"
#include "data/id_list.h"
#include "dist/memory_plan.h"
#include "model/checkpoint.h"
#include "model/export.h"
#include "model/inspect.h"
#include "model/weight_file.h"
#include "util/error.h"
#include "util/files.h"

namespace dsalign::cli {
namespace {

// A preset name, a config.json file, or a checkpoint directory.
ModelConfig resolve_config(const std::string& what) {
  if (auto preset = model_preset(what)) return *preset;
  if (path_exists(what)) return load_model_config(what);
  std::string names;
  for (const auto& n : model_preset_names()) names += (names.empty() ? "" : ", ") + n;
  fail("'", what, "' is neither a checkpoint directory, a config.json, nor a preset (", names, ")");
}

// Token ids (data/id_list) as an int64 tensor [rows, ids].
torch::Tensor read_ids(const std::string& spec, int64_t vocab_size) {
  const std::vector<std::vector<int64_t>> rows = read_id_rows(spec, "--ids", vocab_size);
  torch::Tensor ids = torch::empty({static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows[0].size())}, torch::kInt64);
  for (size_t r = 0; r < rows.size(); ++r)
    std::copy(rows[r].begin(), rows[r].end(), ids[static_cast<int64_t>(r)].data_ptr<int64_t>());
  return ids;
}

}  // namespace

int init_command(const Args& args) {
  po::options_description options("options");
  std::string source, out, dtype, shard_size;
  uint64_t seed = 0;
  options.add_options()
      ("source", po::value(&source)->required(), "preset name or config.json")
      ("out", po::value(&out)->required(), "output directory (must not exist or be empty)")
      ("dtype", po::value(&dtype)->default_value("bf16"), "on-disk dtype: bf16, fp32, fp16")
      ("seed", po::value(&seed)->default_value(0), "random seed")
      ("shard-size", po::value(&shard_size)->default_value("5GB"), "largest safetensors shard, e.g. 5GB, 200MB");
  po::positional_options_description positional;
  positional.add("source", 1).add("out", 1);
  po::variables_map vm;
  std::string presets;
  for (const auto& n : model_preset_names()) presets += (presets.empty() ? "" : ", ") + n;
  if (!parse(args, "dsalign init <preset|config.json> <out_dir> [--dtype bf16] [--seed 0] [--shard-size 5GB]\n\n"
                   "Writes a randomly initialised Hugging Face checkpoint (normal(0, initializer_range) weights),\n"
                   "generated one tensor at a time (host memory stays small at any size). Presets: " + presets,
             options, positional, vm))
    return 0;
  ModelConfig config = resolve_config(source);
  torch::ScalarType disk_dtype = parse_dtype(dtype);
  SaveOptions save;
  save.dtype = disk_dtype;
  save.max_shard_bytes = parse_byte_size(shard_size);
  init_checkpoint(config, seed, out, save);
  std::cout << "wrote " << out << ": " << count_parameters(config).total << " parameters in " << dtype_name(disk_dtype) << "\n";
  return 0;
}

int inspect_command(const Args& args) {
  po::options_description options("options");
  std::string source, dtype;
  int64_t seq_len = 4096;
  options.add_options()
      ("source", po::value(&source)->required(), "checkpoint directory, config.json or preset name")
      ("seq-len", po::value(&seq_len)->default_value(4096), "sequence length for the FLOPs figures")
      ("load", po::bool_switch(), "load the weights (strict check) and report time and peak host memory")
      ("dtype", po::value(&dtype)->default_value("bf16"), "dtype to load into with --load: bf16, fp32")
      ("plan", po::value<std::string>(), "per-rank memory of a training run: world=8,strategy=zero3,seq=4096,micro_batch=1[,checkpointing]");
  po::positional_options_description positional;
  positional.add("source", 1);
  po::variables_map vm;
  if (!parse(args, "dsalign inspect <dir|config.json|preset> [--seq-len 4096] [--load [--dtype bf16]] [--plan world=8,...]",
             options, positional, vm))
    return 0;
  if (seq_len <= 0) fail("--seq-len must be positive");
  ModelConfig config = resolve_config(source);
  std::optional<PlanRequest> plan;
  if (vm.count("plan")) plan = parse_plan_request(vm["plan"].as<std::string>());
  std::cout << inspect_report(config, seq_len);
  if (plan) std::cout << "\n" << plan_report(config, *plan, plan_memory(config, *plan));
  if (vm["load"].as<bool>()) {
    if (!is_existing_directory(source)) fail("--load needs a checkpoint directory, got '", source, "'");
    DecoderOptions model_options;
    model_options.param_dtype = model_options.compute_dtype = parse_dtype(dtype);
    reset_peak_host_memory();
    HostMemory before = host_memory();
    auto start = std::chrono::steady_clock::now();
    CausalLM model(config, model_options);
    LoadReport report = load_weights(model, source);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    HostMemory after = host_memory();
    double model_bytes = static_cast<double>(count_parameters(config).total) * torch::elementSize(model_options.param_dtype);
    std::cout << "\nload                " << report.tensors << " tensors from " << report.files << " file(s), "
              << human_bytes(static_cast<double>(report.bytes_read)) << " read in " << seconds << " s ("
              << human_bytes(report.bytes_read / std::max(seconds, 1e-9)) << "/s)\n"
              << "host memory         peak " << human_bytes(static_cast<double>(after.peak_resident_bytes)) << " (before "
              << human_bytes(static_cast<double>(before.resident_bytes)) << "; the weights in " << dtype_name(model_options.param_dtype)
              << " are " << human_bytes(model_bytes) << ")\n";
  }
  return 0;
}

int forward_command(const Args& args) {
  po::options_description options("options");
  std::string model_dir, ids_spec, out, device_name, dtype;
  options.add_options()
      ("model", po::value(&model_dir)->required(), "checkpoint directory")
      ("ids", po::value(&ids_spec)->required(), "token ids: '1,2,3' or a file with one equal-length row per line")
      ("out", po::value(&out)->required(), "output .safetensors: logits [B, T, V] fp32 and input_ids")
      ("device", po::value(&device_name)->default_value("cpu"), "cpu or cuda[:N]")
      ("dtype", po::value(&dtype)->default_value("fp32"), "weights and compute dtype: fp32 or bf16");
  po::variables_map vm;
  if (!parse(args, "dsalign forward --model <dir> --ids <file|comma list> --out <logits.safetensors> [--device cpu|cuda] [--dtype fp32|bf16]",
             options, {}, vm))
    return 0;
  DecoderOptions model_options;
  model_options.device = parse_device(device_name);
  model_options.param_dtype = model_options.compute_dtype = parse_dtype(dtype);
  check_output_path(out, "--out", OutputKind::file);
  CausalLM model = load_model(model_dir, model_options, frozen_model_reads());
  torch::Tensor ids = read_ids(ids_spec, model->config.vocab_size);
  torch::Tensor logits;
  {
    torch::NoGradGuard no_grad;
    logits = model->forward({ids.to(model_options.device)}).to(torch::kCPU, torch::kFloat32);
  }
  write_safetensors(out, {{"logits", logits}, {"input_ids", ids}});
  std::cout << "wrote " << out << ": logits " << shape_string(logits.sizes().vec()) << " fp32\n";
  return 0;
}

}  // namespace dsalign::cli
