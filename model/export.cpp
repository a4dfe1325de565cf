#include "model/export.h"

#include <cmath>

#include <nlohmann/json.hpp>

#include "train/checkpoint_reader.h"
#include "train/training_checkpoint.h"
#include "util/error.h"
#include "util/files.h"
#include "util/interrupt.h"

namespace dsalign {

void export_chat_checkpoint(const ModelConfig& config, const std::vector<std::pair<std::string, torch::Tensor>>& named,
                            const fs::path& tokenizer_dir, ChatFormat format, const fs::path& out,
                            const ExportOptions& options) {
  std::vector<TensorToWrite> tensors;
  for (auto& [name, t] : named) tensors.push_back({name, t.sizes().vec(), options.dtype, [t] { return t; }});
  export_chat_checkpoint(config, std::move(tensors), tokenizer_dir, format, out, options);
}

void export_chat_checkpoint(const ModelConfig& config, std::vector<TensorToWrite> tensors, const fs::path& tokenizer_dir,
                            ChatFormat format, const fs::path& out, const ExportOptions& options) {
  for (const char* required : {"tokenizer.json", "tokenizer_config.json"})
    if (!path_exists(tokenizer_dir / required)) fail(tokenizer_dir.string(), ": no ", required, " to export with the model");
  // Between tensors, a signal (util/interrupt) stops the export; the staging directory goes with it.
  for (TensorToWrite& t : tensors)
    t.data = [data = std::move(t.data), name = t.name, out] {
      stop_if_interrupted("while exporting " + name + " (" + out.string() + " was not written)");
      return data();
    };
  if (path_exists(out) && !fs::is_empty(out) && !options.overwrite)
    fail(out.string(), ": already exists (choose another directory, or overwrite)");
  Tokenizer tokenizer = Tokenizer::load(tokenizer_dir);
  const std::string eot = end_of_turn_token(format, tokenizer.settings().eos_token);
  auto eot_id = tokenizer.token_to_id(eot);
  if (!eot_id) fail(tokenizer_dir.string(), ": the tokenizer has no '", eot, "' token (the ", chat_format_name(format), " end of turn)");

  ModelConfig exported = config;
  if (auto bos = tokenizer.bos_id()) exported.bos_token_id = *bos;
  if (auto eos = tokenizer.eos_id()) exported.eos_token_ids = {*eos};
  // The weights and config first, into a staging directory that the rest joins before the rename.
  fs::path staging = out.parent_path() / ("." + out.filename().string() + ".export");
  fs::remove_all(staging);
  try {
    SaveOptions save;
    save.dtype = options.dtype;
    save.max_shard_bytes = options.max_shard_bytes;
    save.overwrite = true;
    save_checkpoint(exported, std::move(tensors), staging, save);
    fs::copy_file(tokenizer_dir / "tokenizer.json", staging / "tokenizer.json", fs::copy_options::overwrite_existing);
    if (path_exists(tokenizer_dir / "special_tokens_map.json"))
      fs::copy_file(tokenizer_dir / "special_tokens_map.json", staging / "special_tokens_map.json",
                    fs::copy_options::overwrite_existing);
    nlohmann::json tokenizer_config = nlohmann::json::parse(read_text_file(tokenizer_dir / "tokenizer_config.json"));
    tokenizer_config["chat_template"] = chat_template_jinja(format);
    write_file_atomic(staging / "tokenizer_config.json", tokenizer_config.dump(2) + "\n");
    // Generation stops at the end of an assistant turn.
    nlohmann::json generation = to_generation_config_json(exported);
    generation["eos_token_id"] = *eot_id;
    write_file_atomic(staging / "generation_config.json", generation.dump(2) + "\n");
    fs::remove_all(out);
    fs::rename(staging, out);
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(staging, ignored);
    throw;
  }
}

fs::path export_model(const fs::path& source, const fs::path& out, const std::string& chat_template,
                      const ExportOptions& options) {
  if (!is_existing_directory(source)) fail(source.string(), ": no such directory");
  fs::path dir = source;
  if (path_exists(source / "config.yaml") && !path_exists(source / "config.json")) {  // a run directory
    dir = newest_training_checkpoint(source);
    if (dir.empty()) {
      if (!path_exists(source / "final" / "config.json"))
        fail(source.string(), ": a run directory with no complete checkpoint and no final/ to export");
      dir = source / "final";
    }
  }
  std::string format_name = chat_template;
  if (path_exists(dir / "state.json") && format_name == "auto") {
    try {
      auto state = nlohmann::json::parse(read_text_file(dir / "state.json"));
      format_name = state.value("chat_format", std::string("auto"));
    } catch (const nlohmann::json::exception& e) {
      fail((dir / "state.json").string(), ": ", first_line(e));
    }
  }
  Tokenizer tokenizer = Tokenizer::load(dir);
  ChatFormat format = resolve_chat_format(format_name, tokenizer);
  if (path_exists(dir / "shard_layout.json")) {
    // A multi-rank run's checkpoint: each tensor assembled from the ranks' rows as it is written.
    const ModelConfig config = load_model_config(dir);
    DecoderOptions meta;
    meta.device = torch::kMeta;
    CausalLM shapes(config, meta);
    auto reader = std::make_shared<CheckpointReader>(dir);
    std::vector<TensorToWrite> tensors;
    for (auto& [name, t] : checkpoint_tensors(shapes))
      tensors.push_back({name, t.sizes().vec(), options.dtype, [reader, name] { return reader->whole(name); }});
    export_chat_checkpoint(config, std::move(tensors), dir, format, out, options);
    return dir;
  }
  // Streamed through the model on the CPU in its stored precision, then converted on write.
  DecoderOptions o;
  o.param_dtype = options.dtype;
  CausalLM model = load_model(dir, o, frozen_model_reads());
  export_chat_checkpoint(model->config, checkpoint_tensors(model), dir, format, out, options);
  return dir;
}

int64_t parse_byte_size(const std::string& text) {
  size_t end = 0;
  double value = 0;
  try {
    value = std::stod(text, &end);
  } catch (const std::exception&) {
    fail("'", text, "' is not a size (expected e.g. 5GB, 500MB, 2GiB or a byte count)");
  }
  std::string unit = text.substr(end);
  double scale = 0;
  if (unit.empty() || unit == "B") scale = 1;
  else if (unit == "KB") scale = 1e3;
  else if (unit == "MB") scale = 1e6;
  else if (unit == "GB") scale = 1e9;
  else if (unit == "KiB") scale = 1024.0;
  else if (unit == "MiB") scale = 1024.0 * 1024;
  else if (unit == "GiB") scale = 1024.0 * 1024 * 1024;
  if (scale == 0 || !(value > 0)) fail("'", text, "' is not a size (expected e.g. 5GB, 500MB, 2GiB or a byte count)");
  return static_cast<int64_t>(std::llround(value * scale));
}

}  // namespace dsalign
