#include "dpo/reference_logps.h"

#include <fstream>

#include "model/checkpoint.h"
#include "model/weight_file.h"
#include "train/run_setup.h"
#include "util/error.h"
#include "util/files.h"
#include "util/hash.h"
#include "util/progress.h"

namespace dsalign {
namespace fs = std::filesystem;

std::pair<torch::Tensor, torch::Tensor> ReferenceTable::lookup(const std::vector<size_t>& ids, const torch::Device& device) const {
  std::vector<float> c, r;
  c.reserve(ids.size());
  r.reserve(ids.size());
  for (size_t id : ids) {
    c.push_back(chosen.at(id));
    r.push_back(rejected.at(id));
  }
  return {host_to_device(torch::tensor(c), device), host_to_device(torch::tensor(r), device)};
}

ReferenceTable compute_reference_table(CausalLM& reference, const std::vector<TokenizedPair>& pairs, int64_t max_seq_len,
                                       bool packing, int64_t rows_per_batch, int32_t pad_id, const std::string& label,
                                       const TokenizedPair* filler) {
  torch::NoGradGuard no_grad;
  const PairList all(pairs);
  const std::vector<size_t>& ids = all.ids;
  std::vector<PackedRow> rows = pair_rows(all.pairs, max_seq_len, packing, pad_id);
  ReferenceTable table;
  table.chosen.assign(pairs.size(), 0.0f);
  table.rejected.assign(pairs.size(), 0.0f);
  Progress progress(label, static_cast<int64_t>(pairs.size()), "pairs");
  int64_t done = 0;
  const auto per_batch = static_cast<size_t>(rows_per_batch);
  const int64_t batches = static_cast<int64_t>((rows.size() + per_batch - 1) / per_batch);
  for (int64_t t = 0, turns = reference->turns_in_lockstep(batches); t < turns; ++t) {
    if (t >= batches) {
      if (!filler) fail(label, ": no pair to keep this rank's forwards in step with the others");
      std::vector<PackedRow> one = pair_rows({filler}, max_seq_len, packing, pad_id);
      sequence_log_probs(reference, collate_pairs(one, 0, 1, {0}, reference->options.device, pad_id,
                                                  reference->uses_varlen_attention()));
      continue;
    }
    const size_t b = static_cast<size_t>(t) * per_batch;
    PairBatch batch = collate_pairs(rows, b, std::min(rows.size(), b + per_batch), ids, reference->options.device, pad_id,
                                    reference->uses_varlen_attention());
    SequenceLogps logps = sequence_log_probs(reference, batch);
    torch::Tensor c = logps.chosen.cpu().contiguous(), r = logps.rejected.cpu().contiguous();
    for (size_t k = 0; k < batch.pair_ids.size(); ++k) {
      table.chosen[batch.pair_ids[k]] = c.data_ptr<float>()[k];
      table.rejected[batch.pair_ids[k]] = r.data_ptr<float>()[k];
    }
    done += batch.pairs();
    progress.update(done);
  }
  progress.finish();
  return table;
}

std::string weights_fingerprint(const fs::path& dir, const fs::path& memo_dir) {
  std::vector<fs::path> files = {dir / "config.json"};
  CheckpointFiles weights = find_checkpoint_files(dir);
  files.insert(files.end(), weights.files.begin(), weights.files.end());
  std::string stamp;  // what identifies these files without reading them
  for (const fs::path& f : files)
    stamp += fs::absolute(f).string() + "|" + std::to_string(fs::file_size(f)) + "|" +
             std::to_string(fs::last_write_time(f).time_since_epoch().count()) + "\n";
  const fs::path memo_file = memo_dir / "weights_fingerprints.json";
  nlohmann::json memo = nlohmann::json::object();
  if (path_exists(memo_file)) {
    try {
      memo = nlohmann::json::parse(read_text_file(memo_file));
    } catch (const std::exception&) {
      memo = nlohmann::json::object();  // unreadable: start over
    }
    if (memo.contains(stamp) && memo[stamp].is_string()) return memo[stamp];
  }
  Hasher h;
  std::vector<char> buffer(16 << 20);
  for (const fs::path& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) fail(f.string(), ": cannot read");
    h.add(f.filename().string());
    while (in) {
      in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
      h.add(std::string_view(buffer.data(), static_cast<size_t>(in.gcount())));
    }
  }
  memo[stamp] = h.hex();
  try {  // a memo that cannot be written only costs a rehash next time
    fs::create_directories(memo_dir);
    write_file_atomic(memo_file, memo.dump(1));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "warning: %s not written: %s\n", memo_file.c_str(), first_line(e).c_str());
  }
  return h.hex();
}

std::string reference_cache_key(const std::string& fingerprint, const DecoderOptions& o, const std::vector<TokenizedPair>& train,
                                const std::vector<TokenizedPair>& validation) {
  Hasher h;
  h.add(std::string("dsalign reference logps v1")).add(fingerprint).add(dtype_name(o.compute_dtype));
  h.add(std::string(o.device.is_cuda() ? "cuda" : "cpu"));
  auto add_example = [&](const TokenizedExample& e) {
    h.add(std::string_view(reinterpret_cast<const char*>(e.ids.data()), e.ids.size() * sizeof(int32_t)));
    h.add(std::string_view(reinterpret_cast<const char*>(e.loss_mask.data()), e.loss_mask.size()));
  };
  for (const auto* set : {&train, &validation}) {
    h.add(static_cast<uint64_t>(set->size()));
    for (const TokenizedPair& p : *set) {
      add_example(p.chosen);
      add_example(p.rejected);
    }
  }
  return h.hex();
}

std::optional<std::pair<ReferenceTable, ReferenceTable>> read_reference_cache(const fs::path& file, size_t train_pairs,
                                                                              size_t validation_pairs) {
  if (!path_exists(file)) return std::nullopt;
  std::map<std::string, torch::Tensor> t;
  try {
    for (auto& [name, tensor] : read_safetensors(file)) t[name] = tensor;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "warning: reference cache %s unreadable (%s); recomputing\n", file.c_str(), first_line(e).c_str());
    return std::nullopt;
  }
  auto column = [&](const std::string& name, size_t n) -> std::optional<std::vector<float>> {
    auto it = t.find(name);
    if (it == t.end() || it->second.dim() != 1 || it->second.size(0) != static_cast<int64_t>(n)) return std::nullopt;
    torch::Tensor v = it->second.to(torch::kFloat32).contiguous();
    return std::vector<float>(v.data_ptr<float>(), v.data_ptr<float>() + n);
  };
  auto tc = column("train.chosen", train_pairs), tr = column("train.rejected", train_pairs);
  auto vc = column("validation.chosen", validation_pairs), vr = column("validation.rejected", validation_pairs);
  if (!tc || !tr || !vc || !vr) return std::nullopt;
  return std::make_pair(ReferenceTable{*tc, *tr}, ReferenceTable{*vc, *vr});
}

void write_reference_cache(const fs::path& file, const ReferenceTable& train, const ReferenceTable& validation) {
  auto tensor = [](const std::vector<float>& v) { return torch::tensor(v, torch::kFloat32); };
  fs::create_directories(file.parent_path());
  write_safetensors(file, {{"train.chosen", tensor(train.chosen)},
                           {"train.rejected", tensor(train.rejected)},
                           {"validation.chosen", tensor(validation.chosen)},
                           {"validation.rejected", tensor(validation.rejected)}});
}

fs::path default_reference_cache_dir() {
  const char* home = std::getenv("HOME");
  return fs::path(home ? home : "/tmp") / ".cache" / "dsalign" / "reference_logps";
}

}  // namespace dsalign
