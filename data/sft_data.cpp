#include "data/sft_data.h"

#include <fstream>
#include <random>
#include <sstream>

#include "data/batch_encode.h"
#include "data/validation_split.h"
#include "util/error.h"
#include "util/files.h"
#include "util/hash.h"
#include "util/progress.h"

namespace dsalign {
namespace fs = std::filesystem;

namespace {

constexpr char kCacheMagic[8] = {'D', 'S', 'T', 'O', 'K', 'v', '2', '\n'};  // v2: TRL's response spans

// What one source file becomes before domain filtering (what the cache holds).
struct SourceTokens {
  std::vector<TokenizedExample> examples;
  SourceReport report;
};

template <typename T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}

std::string serialise(const SourceTokens& s) {
  std::string out(kCacheMagic, sizeof kCacheMagic);
  const SourceReport& r = s.report;
  put<uint64_t>(out, r.records);
  put<uint64_t>(out, r.truncated);
  put<uint64_t>(out, r.dropped_too_long);
  put<uint64_t>(out, r.dropped_no_loss);
  put<uint64_t>(out, r.skipped.size());
  for (const auto& [reason, count] : r.skipped) {
    put<uint64_t>(out, reason.size());
    out += reason;
    put<uint64_t>(out, count);
  }
  put<uint64_t>(out, s.examples.size());
  for (const auto& e : s.examples) {
    put<uint64_t>(out, e.line);
    put<uint64_t>(out, e.domain.size());
    out += e.domain;
    put<uint64_t>(out, e.ids.size());
    out.append(reinterpret_cast<const char*>(e.ids.data()), e.ids.size() * sizeof(int32_t));
    out.append(reinterpret_cast<const char*>(e.loss_mask.data()), e.loss_mask.size());
  }
  return out;
}

// nullopt when the file is not a complete cache entry (it is then rebuilt).
std::optional<SourceTokens> deserialise(const std::string& bytes, uint32_t source) {
  size_t pos = 0;
  bool ok = true;
  auto take = [&](size_t n) -> const char* {
    if (!ok || bytes.size() - pos < n) {
      ok = false;
      return nullptr;
    }
    const char* p = bytes.data() + pos;
    pos += n;
    return p;
  };
  auto get = [&]() -> uint64_t {
    uint64_t v = 0;
    if (const char* p = take(8)) std::memcpy(&v, p, 8);
    return v;
  };
  const char* magic = take(sizeof kCacheMagic);
  if (!magic || std::memcmp(magic, kCacheMagic, sizeof kCacheMagic) != 0) return std::nullopt;
  SourceTokens s;
  s.report.records = get();
  s.report.truncated = get();
  s.report.dropped_too_long = get();
  s.report.dropped_no_loss = get();
  uint64_t reasons = get();
  for (uint64_t i = 0; ok && i < reasons; ++i) {
    uint64_t n = get();
    const char* p = take(n);
    uint64_t count = get();
    if (p) s.report.skipped[std::string(p, n)] = count;
  }
  uint64_t count = get();
  for (uint64_t i = 0; ok && i < count; ++i) {
    TokenizedExample e;
    e.source = source;
    e.line = get();
    uint64_t n = get();
    if (const char* p = take(n)) e.domain.assign(p, n);
    uint64_t tokens = get();
    if (tokens > bytes.size()) return std::nullopt;
    const char* ids = take(tokens * sizeof(int32_t));
    const char* mask = take(tokens);
    if (!ok) break;
    e.ids.resize(tokens);
    std::memcpy(e.ids.data(), ids, tokens * sizeof(int32_t));
    e.loss_mask.assign(reinterpret_cast<const uint8_t*>(mask), reinterpret_cast<const uint8_t*>(mask) + tokens);
    s.examples.push_back(std::move(e));
  }
  if (!ok || pos != bytes.size()) return std::nullopt;
  return s;
}

SourceTokens tokenize_source(const fs::path& path, uint32_t source, const DataConfig& config, const Tokenizer& tokenizer,
                             ChatFormat format) {
  SourceTokens out;
  ReadReport read;
  std::vector<SftRecord> records = read_sft_jsonl(path, config.on_error, read);
  out.report.records = read.records;
  out.report.skipped = read.skipped;
  std::vector<TokenizedChat> chats(records.size());
  Progress progress("tokenizing " + path.filename().string(), static_cast<int64_t>(records.size()), "examples");
  parallel_for(
      records.size(), static_cast<int>(config.threads),
      [&](size_t i, EncodeScratch& scratch) {
        try {
          if (!records[i].text.empty()) {
            // Plain text: BOS as the tokenizer adds it, the text, EOS; every token carries loss.
            TokenizedChat& c = chats[i];
            tokenizer.encode(records[i].text, true, c.ids, scratch);
            if (auto eos = tokenizer.eos_id()) c.ids.push_back(*eos);
            c.loss_mask.assign(c.ids.size(), 1);
          } else {
            chats[i] = tokenize_chat(tokenizer, format, records[i].messages, false,
                                     {config.train_on_all, config.response_span, records[i].prompt_assistant_turns}, scratch);
          }
        } catch (const Error& e) {
          fail(path.string(), ":", records[i].line, ": ", e.what());
        }
      },
      [&](size_t done) { progress.update(static_cast<int64_t>(done)); });
  progress.finish();
  for (size_t i = 0; i < records.size(); ++i) {
    TokenizedChat& chat = chats[i];
    if (static_cast<int64_t>(chat.ids.size()) > config.max_seq_len) {
      if (config.overflow == Overflow::drop) {
        out.report.dropped_too_long += 1;
        continue;
      }
      chat.ids.resize(static_cast<size_t>(config.max_seq_len));
      chat.loss_mask.resize(static_cast<size_t>(config.max_seq_len));
      out.report.truncated += 1;
    }
    // The first token is never predicted; an example needs a loss token after it.
    if (std::find(chat.loss_mask.begin() + 1, chat.loss_mask.end(), 1) == chat.loss_mask.end()) {
      out.report.dropped_no_loss += 1;
      continue;
    }
    out.examples.push_back({std::move(chat.ids), std::move(chat.loss_mask), records[i].domain, source, records[i].line});
  }
  return out;
}

std::string cache_key(const std::string& file_bytes, const DataConfig& config, const Tokenizer& tokenizer, ChatFormat format) {
  return Hasher()
      .add(file_bytes)
      .add(tokenizer.fingerprint())
      .add(std::string(chat_format_name(format)))
      .add(uint64_t{config.train_on_all})
      .add(std::string(response_span_name(config.response_span)))
      .add(static_cast<uint64_t>(config.max_seq_len))
      .add(uint64_t{config.overflow == Overflow::drop})
      .add(uint64_t{config.on_error == OnError::skip})
      .add(std::string(kCacheMagic, sizeof kCacheMagic))
      .hex();
}

}  // namespace

fs::path default_token_cache_dir() {
  const char* home = std::getenv("HOME");
  return fs::path(home ? home : "/tmp") / ".cache" / "dsalign" / "tokens";
}

SftData prepare_sft_data(const DataConfig& config, const Tokenizer& tokenizer, ChatFormat format, const fs::path& base_dir) {
  SftData data;
  // A cache directory the recipe names must be writable; the default one is only a convenience.
  if (!config.cache_dir.empty()) check_output_path(config.cache_dir, "data.cache_dir", OutputKind::directory);
  fs::path cache_dir = config.cache_dir.empty() ? default_token_cache_dir() : fs::path(config.cache_dir);
  std::vector<TokenizedExample> kept;
  for (uint32_t s = 0; s < config.sources.size(); ++s) {
    fs::path path = config.sources[s].path;
    if (path.is_relative()) path = base_dir / path;
    if (!is_existing_file(path)) fail(path.string(), ": data file not found (data.sources[", s, "].path)");
    std::string bytes = read_text_file(path);
    fs::path cache_file = cache_dir / (cache_key(bytes, config, tokenizer, format) + ".tokens");
    std::optional<SourceTokens> tokens;
    if (path_exists(cache_file)) tokens = deserialise(read_text_file(cache_file), s);
    bool hit = tokens.has_value();
    if (!tokens) {
      tokens = tokenize_source(path, s, config, tokenizer, format);
      try {  // a cache that cannot be written only costs time next run
        write_file_atomic(cache_file, serialise(*tokens));
      } catch (const std::exception& e) {
        std::fprintf(stderr, "warning: token cache %s not written: %s\n", cache_file.c_str(), first_line(e).c_str());
      }
    }
    SourceReport report = tokens->report;
    report.path = path.string();
    report.from_cache = hit;
    for (auto& e : tokens->examples) {
      if (!config.selects_domain(e.domain)) {
        report.filtered_by_domain += 1;
        continue;
      }
      report.kept += 1;
      kept.push_back(std::move(e));
    }
    data.sources.push_back(report);
  }
  if (kept.empty())
    fail("no training examples left after reading, length policy and domain filters (", data.summary(), ")");
  split_validation(std::move(kept), config.validation_fraction, config.seed, data.train, data.validation);
  return data;
}

std::string SftData::summary() const {
  std::ostringstream out;
  for (const auto& s : sources) {
    out << s.path << ": " << s.records << " records" << (s.from_cache ? " (token cache)" : "");
    size_t skipped = 0;
    for (const auto& [reason, n] : s.skipped) skipped += n;
    if (skipped) {
      out << ", skipped " << skipped << " (";
      bool first = true;
      for (const auto& [reason, n] : s.skipped) out << (first ? "" : ", ") << reason << " " << n, first = false;
      out << ")";
    }
    if (s.truncated) out << ", truncated " << s.truncated;
    if (s.dropped_too_long) out << ", dropped as too long " << s.dropped_too_long;
    if (s.dropped_no_loss) out << ", dropped without loss tokens " << s.dropped_no_loss;
    if (s.filtered_by_domain) out << ", filtered by domain " << s.filtered_by_domain;
    out << ", kept " << s.kept << "; ";
  }
  out << "train " << train.size() << ", validation " << validation.size();
  return out.str();
}

std::vector<size_t> epoch_order(const SftData& data, const DataConfig& config, int64_t epoch) {
  std::mt19937_64 rng(static_cast<uint64_t>(config.seed) * 1000003 + static_cast<uint64_t>(epoch) + 1);
  std::vector<std::vector<size_t>> by_source(config.sources.size());
  for (size_t i = 0; i < data.train.size(); ++i) by_source[data.train[i].source].push_back(i);
  std::vector<size_t> order;
  for (size_t s = 0; s < by_source.size(); ++s) {
    double weight = config.sources[s].weight;
    auto whole = static_cast<int64_t>(weight);
    for (int64_t k = 0; k < whole; ++k) order.insert(order.end(), by_source[s].begin(), by_source[s].end());
    double fraction = weight - static_cast<double>(whole);
    if (fraction > 0) {
      std::vector<size_t> pool = by_source[s];
      std::shuffle(pool.begin(), pool.end(), rng);
      pool.resize(static_cast<size_t>(std::llround(fraction * static_cast<double>(pool.size()))));
      order.insert(order.end(), pool.begin(), pool.end());
    }
  }
  std::shuffle(order.begin(), order.end(), rng);
  return order;
}

std::vector<PackedRow> pack_examples(const std::vector<const TokenizedExample*>& examples, int64_t max_seq_len, bool pad,
                                     int32_t pad_id) {
  std::vector<std::vector<const TokenizedExample*>> groups;
  groups.reserve(examples.size());
  for (const auto* e : examples) groups.push_back({e});
  return pack_groups(groups, max_seq_len, pad, pad_id);
}

std::vector<PackedRow> pack_groups(const std::vector<std::vector<const TokenizedExample*>>& groups, int64_t max_seq_len,
                                   bool pad, int32_t pad_id, size_t max_groups_per_row) {
  std::vector<PackedRow> rows;
  PackedRow row;
  int64_t document = 0;
  auto close = [&] {
    if (row.ids.empty()) return;
    if (pad) {
      while (static_cast<int64_t>(row.ids.size()) < max_seq_len) {
        row.ids.push_back(pad_id);
        row.labels.push_back(-100);
        row.positions.push_back(0);
        row.document_ids.push_back(-1);
      }
    }
    rows.push_back(std::move(row));
    row = PackedRow();
    document = 0;
  };
  for (size_t g = 0; g < groups.size(); ++g) {
    const auto& group = groups[g];
    int64_t n = 0;
    for (const auto* e : group) n += static_cast<int64_t>(e->ids.size());
    if (n > max_seq_len) fail("a packing unit of ", n, " tokens exceeds max_seq_len ", max_seq_len);
    if (static_cast<int64_t>(row.ids.size()) + n > max_seq_len || (max_groups_per_row && row.groups == max_groups_per_row))
      close();
    if (row.groups == 0) row.first_group = g;
    row.groups += 1;
    for (const auto* e : group) {
      for (size_t t = 0; t < e->ids.size(); ++t) {
        row.ids.push_back(e->ids[t]);
        row.labels.push_back(t > 0 && e->loss_mask[t] ? e->ids[t] : -100);
        row.positions.push_back(static_cast<int64_t>(t));
        row.document_ids.push_back(document);
      }
      row.real_tokens += static_cast<int64_t>(e->ids.size());
      ++document;
    }
  }
  close();
  return rows;
}

double packing_efficiency(const std::vector<PackedRow>& rows) {
  double real = 0, total = 0;
  for (const auto& r : rows) {
    real += static_cast<double>(r.real_tokens);
    total += static_cast<double>(r.ids.size());
  }
  return total > 0 ? real / total : 0.0;
}

}  // namespace dsalign
