#include "sft/pipeline.h"

#include <iostream>

#include "model/checkpoint.h"
#include "model/export.h"
#include "dpo/dpo_recipe.h"
#include "dpo/dpo_trainer.h"
#include "sft/sft_recipe.h"
#include "sft/sft_trainer.h"
#include "train/training_checkpoint.h"
#include "util/error.h"
#include "util/files.h"
#include "util/yaml_reader.h"

namespace dsalign {
namespace fs = std::filesystem;

namespace {

std::string preset_list() {
  std::string names;
  for (const std::string& n : model_preset_names()) names += (names.empty() ? "" : ", ") + n;
  return names;
}

// Replaces every ${stage.output} in `text`; `known` holds the stages before this one.
std::string interpolate(const std::string& text, const std::map<std::string, fs::path>& known, const std::string& where) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    size_t open = text.find("${", i);
    if (open == std::string::npos) {
      out += text.substr(i);
      break;
    }
    size_t close = text.find('}', open);
    if (close == std::string::npos) fail(where, ": unclosed '${' in '", text, "'");
    out += text.substr(i, open - i);
    std::string ref = text.substr(open + 2, close - open - 2);
    const std::string suffix = ".output";
    if (ref.size() <= suffix.size() || ref.compare(ref.size() - suffix.size(), suffix.size(), suffix) != 0)
      fail(where, ": '${", ref, "}' must be ${<stage>.output}");
    std::string stage = ref.substr(0, ref.size() - suffix.size());
    auto it = known.find(stage);
    if (it == known.end()) {
      std::string names;
      for (const auto& [n, p] : known) names += (names.empty() ? "" : ", ") + n;
      fail(where, ": '${", ref, "}' names no earlier stage (earlier stages: ", names.empty() ? "none" : names, ")");
    }
    out += it->second.string();
    i = close + 1;
  }
  return out;
}

std::string scalar_text(const YAML::Node& node) {
  if (node.IsScalar()) return node.Scalar();
  YAML::Emitter e;
  e << YAML::Flow << node;
  return e.c_str();
}

bool stage_done(const PipelineStage& s) {
  switch (s.kind) {
    case PipelineStage::Kind::init: return path_exists(s.output / "config.json");
    case PipelineStage::Kind::sft:
    case PipelineStage::Kind::dpo: return path_exists(s.output / "final" / "config.json");
    case PipelineStage::Kind::export_: return path_exists(s.output / "config.json");
  }
  return false;
}

fs::path stage_result(const PipelineStage& s) {
  const bool trains = s.kind == PipelineStage::Kind::sft || s.kind == PipelineStage::Kind::dpo;
  return trains ? s.output / "final" : s.output;
}

}  // namespace

Pipeline parse_pipeline(const RecipeFile& file) {
  const std::string path = file.path.string();
  const fs::path base = file.path.parent_path();
  auto resolve = [&](const std::string& p) {
    fs::path q(p);
    return q.is_relative() ? fs::absolute(base / q).lexically_normal() : q;
  };
  YamlReader root(file.root, "", path);
  Pipeline p;
  YamlReader run = root.child("run");
  p.name = run.string("name", std::string("pipeline"));
  p.output_dir = resolve(run.string("output_dir", std::nullopt));
  run.finish();
  std::map<std::string, fs::path> outputs;
  std::vector<YamlReader> stages = root.children("stages");
  if (stages.empty()) root.error("stages", "needs at least one stage");
  for (YamlReader& s : stages) {
    PipelineStage stage;
    stage.name = s.string("name", std::nullopt);
    if (stage.name.empty() || stage.name.find_first_of("/.${} ") != std::string::npos)
      s.error("name", "'", stage.name, "' must be a non-empty name without '/', '.', '$', braces or spaces");
    if (outputs.count(stage.name)) s.error("name", "'", stage.name, "' is used by an earlier stage");
    stage.output = p.output_dir / stage.name;
    const int kinds = s.has("init") + s.has("sft") + s.has("dpo") + s.has("export");
    if (kinds != 1) s.error("init", "a stage has exactly one of init, sft, dpo or export (this one has ", kinds, ")");
    auto text = [&](YamlReader& r, const std::string& key, const std::optional<std::string>& fallback) {
      return interpolate(r.string(key, fallback), outputs, path + ": " + r.key_path(key));
    };
    if (s.has("init")) {
      stage.kind = PipelineStage::Kind::init;
      YamlReader init = s.child("init");
      if (init.has("preset") == init.has("config"))
        init.error("preset", "an init stage names exactly one of preset (", preset_list(),
                   ") or config (a config.json)");
      if (init.has("preset")) {
        stage.preset = init.string("preset", std::nullopt);
        std::optional<ModelConfig> preset = model_preset(stage.preset);
        if (!preset) init.error("preset", "'", stage.preset, "' is not a preset (", preset_list(), ")");
        stage.model_config = *preset;
      } else {
        stage.config = resolve(text(init, "config", std::nullopt));
        try {
          stage.model_config = load_model_config(stage.config);
        } catch (const Error& e) {
          init.error("config", e.what());
        }
      }
      stage.tokenizer = resolve(text(init, "tokenizer", std::nullopt));
      stage.seed = init.integer("seed", 0);
      stage.dtype = init.choice("dtype", {"fp32", "bf16"}, "fp32");
      init.finish();
    } else if (s.has("sft") || s.has("dpo")) {
      const char* key = s.has("sft") ? "sft" : "dpo";
      stage.kind = s.has("sft") ? PipelineStage::Kind::sft : PipelineStage::Kind::dpo;
      stage.recipe = resolve(s.string(key, std::nullopt));
      if (!path_exists(stage.recipe)) s.error(key, stage.recipe.string(), ": no such recipe");
    } else {
      stage.kind = PipelineStage::Kind::export_;
      YamlReader e = s.child("export");
      stage.from = resolve(text(e, "from", std::nullopt));
      stage.export_dtype = e.choice("dtype", {"bf16", "fp32", "fp16"}, "bf16");
      e.finish();
    }
    if (s.has("overrides")) {
      if (stage.kind != PipelineStage::Kind::sft && stage.kind != PipelineStage::Kind::dpo)
        s.error("overrides", "only sft and dpo stages take overrides");
      YAML::Node overrides = file.root["stages"][static_cast<size_t>(&s - stages.data())]["overrides"];
      if (!overrides.IsMap()) s.error("overrides", "expected a mapping of key.path: value");
      for (const auto& kv : overrides) {
        const std::string key = kv.first.as<std::string>();
        stage.overrides.push_back(key + "=" + interpolate(scalar_text(kv.second), outputs, path + ": " + s.key_path("overrides." + key)));
      }
    }
    // Every key a stage may have is known to finish(), for its "did you mean".
    for (const char* key : {"init", "export", "overrides"}) s.child(key);
    if (!s.has("sft")) s.child("sft");
    if (!s.has("dpo")) s.child("dpo");
    s.finish();
    outputs[stage.name] = stage_result(stage);
    p.stages.push_back(std::move(stage));
  }
  root.finish();
  return p;
}

std::string pipeline_device(const Pipeline& p) {
  std::string device, first;
  for (const PipelineStage& s : p.stages) {
    if (s.kind != PipelineStage::Kind::sft && s.kind != PipelineStage::Kind::dpo) continue;
    RecipeFile recipe = load_recipe(s.recipe, s.overrides);
    const std::string d = s.kind == PipelineStage::Kind::sft ? parse_sft_recipe(recipe).model.device
                                                             : parse_dpo_recipe(recipe).model.device;
    if (device.empty()) device = d, first = s.name;
    else if (d != device)
      fail("stage ", s.name, ": model.device ", d, " differs from stage ", first, "'s ", device,
           " (a pipeline on several ranks uses one device kind)");
  }
  return device.empty() ? "cpu" : device;
}

namespace {

// pipeline.json: the stages in order, for `dsalign report <output_dir>`.
void write_pipeline_listing(const Pipeline& p) {
  static const char* kinds[] = {"init", "sft", "dpo", "export"};
  nlohmann::json stages = nlohmann::json::array();
  for (const PipelineStage& s : p.stages)
    stages.push_back({{"name", s.name}, {"kind", kinds[static_cast<int>(s.kind)]}, {"output", s.output.string()}});
  write_file_atomic(p.output_dir / "pipeline.json", nlohmann::json({{"name", p.name}, {"stages", stages}}).dump(2) + "\n");
}

}  // namespace

fs::path run_pipeline(const Pipeline& p, const PipelineOptions& options, const Dist& dist) {
  if (options.from_stage) {
    bool found = false;
    for (const auto& s : p.stages) found |= s.name == *options.from_stage;
    if (!found) fail("--from ", *options.from_stage, ": no such stage");
  }
  // Under all_succeed: a failure on rank 0 stops every rank at once instead of leaving them
  // waiting in the next collective.
  dist.all_succeed([&] {
    if (!dist.is_main()) return;
    create_parent_directories(p.output_dir / "pipeline.json");
    write_pipeline_listing(p);
  }, "pipeline directory");
  // Rank 0's view of the run directory decides, so every rank takes the same branch.
  auto decided = [&](int64_t mine, const char* what) {
    return static_cast<int64_t>(dist.all_reduce_max(dist.is_main() ? static_cast<double>(mine) : 0.0, what));
  };
  bool rerun = false;
  for (size_t i = 0; i < p.stages.size(); ++i) {
    const PipelineStage& s = p.stages[i];
    rerun |= options.from_stage && s.name == *options.from_stage;
    if (dist.is_main())
      std::cerr << "== " << p.name << ": stage " << i + 1 << "/" << p.stages.size() << " '" << s.name << "' -> "
                << s.output.string() << "\n";
    if (decided(!rerun && stage_done(s), "pipeline stage done")) {
      if (dist.is_main()) std::cerr << "   done already, skipping (rerun with --from " << s.name << ")\n";
      continue;
    }
    switch (s.kind) {
      case PipelineStage::Kind::init: {
        if (!dist.is_main()) {
          dist.barrier("pipeline init stage");
          break;
        }
        for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
          if (!path_exists(s.tokenizer / f)) fail("stage ", s.name, ": ", s.tokenizer.string(), " has no ", f);
        SaveOptions save;
        save.dtype = parse_dtype(s.dtype);
        save.overwrite = true;
        init_checkpoint(s.model_config, static_cast<uint64_t>(s.seed), s.output, save);
        for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"})
          if (path_exists(s.tokenizer / f)) fs::copy_file(s.tokenizer / f, s.output / f, fs::copy_options::overwrite_existing);
        dist.barrier("pipeline init stage");
        break;
      }
      case PipelineStage::Kind::sft:
      case PipelineStage::Kind::dpo: {
        std::vector<std::string> overrides = s.overrides;
        overrides.push_back("run.output_dir=" + s.output.string());
        std::string resume;
        // 1: start over, 2: resume from the newest checkpoint, 3: replace a run that died before one.
        const int64_t how = decided(rerun ? 1 : !newest_training_checkpoint(s.output).empty() ? 2
                                              : path_exists(s.output / "config.yaml")          ? 3
                                                                                               : 0,
                                    "pipeline stage resume");
        if (how == 1 || how == 3) overrides.push_back("run.overwrite=true");
        if (how == 2) resume = "latest";
        RecipeFile recipe = load_recipe(s.recipe, overrides);
        if (s.kind == PipelineStage::Kind::dpo) {
          DpoOutcome outcome = run_dpo(parse_dpo_recipe(recipe), recipe, resume, dist);
          if (dist.is_main())
            std::cerr << "   " << s.name << ": " << outcome.steps << " steps, last loss " << outcome.last_loss
                      << ", reward accuracy " << outcome.first_accuracy << " -> " << outcome.last_accuracy << "\n";
          break;
        }
        SftOutcome outcome = run_sft(parse_sft_recipe(recipe), recipe, resume, dist);
        if (!dist.is_main()) break;
        std::cerr << "   " << s.name << ": " << outcome.steps << " steps, last loss " << outcome.last_loss;
        if (outcome.repetition_ratio >= 0) std::cerr << ", repetition ratio " << outcome.repetition_ratio;
        std::cerr << "\n";
        break;
      }
      case PipelineStage::Kind::export_: {
        if (dist.is_main()) {
          ExportOptions o;
          o.dtype = parse_dtype(s.export_dtype);
          o.overwrite = true;
          export_model(s.from, s.output, "auto", o);
        }
        dist.barrier("pipeline export stage");
        break;
      }
    }
  }
  return stage_result(p.stages.back());
}

}  // namespace dsalign
