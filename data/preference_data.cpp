#include "data/preference_data.h"

#include <optional>
#include <random>
#include <sstream>

#include "data/batch_encode.h"
#include "data/validation_split.h"
#include "util/error.h"
#include "util/progress.h"
#include "util/files.h"

namespace dsalign {
namespace fs = std::filesystem;

size_t PairReport::dropped_count(const std::string& reason) const {
  auto it = dropped.find(reason);
  return it == dropped.end() ? 0 : it->second.size();
}

std::vector<TokenizedPair> read_preference_pairs(const fs::path& path, const DataConfig& config, const Tokenizer& tokenizer,
                                                 ChatFormat format, PairReport& report) {
  ReadReport read;
  std::vector<PreferenceRecord> records = read_preference_jsonl(path, config.on_error, read);
  report.path = path.string();
  report.records = read.records;
  report.skipped = read.skipped;
  std::vector<std::optional<TokenizedPair>> pairs(records.size());
  std::vector<const char*> dropped(records.size(), nullptr);
  std::vector<uint8_t> was_truncated(records.size(), 0);
  Progress progress("tokenizing " + path.filename().string(), static_cast<int64_t>(records.size()), "pairs");
  parallel_for(
      records.size(), static_cast<int>(config.threads),
      [&](size_t i, EncodeScratch& scratch) {
        const PreferenceRecord& r = records[i];
        size_t prompt_assistant_turns = 0;
        for (const auto& m : r.prompt) prompt_assistant_turns += m.role == "assistant";
        auto side = [&](const std::vector<ChatMessage>& response) {
          std::vector<ChatMessage> messages = r.prompt;
          messages.insert(messages.end(), response.begin(), response.end());
          return tokenize_chat(tokenizer, format, messages, false, {false, config.response_span, prompt_assistant_turns},
                              scratch);
        };
        TokenizedChat chosen = side(r.chosen), rejected = side(r.rejected);
        if (chosen.ids == rejected.ids) {
          dropped[i] = kIdenticalPair;
          return;
        }
        // The prompt is the prefix before the first loss token (the same on both sides).
        size_t prompt = 0;
        while (prompt < chosen.ids.size() && !chosen.loss_mask[prompt]) ++prompt;
        if (static_cast<int64_t>(prompt) + 1 >= config.max_seq_len) {
          dropped[i] = kPromptTooLong;
          return;
        }
        for (TokenizedChat* c : {&chosen, &rejected}) {
          if (static_cast<int64_t>(c->ids.size()) <= config.max_seq_len) continue;
          if (config.overflow == Overflow::drop) {
            dropped[i] = kPairTooLong;
            return;
          }
          c->ids.resize(static_cast<size_t>(config.max_seq_len));
          c->loss_mask.resize(static_cast<size_t>(config.max_seq_len));
          was_truncated[i] = 1;
        }
        TokenizedPair pair;
        pair.chosen = {std::move(chosen.ids), std::move(chosen.loss_mask), r.domain, 0, r.line};
        pair.rejected = {std::move(rejected.ids), std::move(rejected.loss_mask), r.domain, 0, r.line};
        pair.prompt_tokens = prompt;
        pairs[i] = std::move(pair);
      },
      [&](size_t done) { progress.update(static_cast<int64_t>(done)); });
  progress.finish();
  std::vector<TokenizedPair> out;
  for (size_t i = 0; i < records.size(); ++i) {
    if (dropped[i]) {
      report.dropped[dropped[i]].push_back(records[i].line);
      continue;
    }
    report.truncated += was_truncated[i];
    out.push_back(std::move(*pairs[i]));
  }
  return out;
}

PreferenceData prepare_preference_data(const DataConfig& config, const Tokenizer& tokenizer, ChatFormat format) {
  if (config.train_on_all) fail("data.train_on_all: preference pairs train only on their responses; remove the key");
  PreferenceData data;
  std::vector<TokenizedPair> kept;
  for (uint32_t s = 0; s < config.sources.size(); ++s) {
    const DataSource& source = config.sources[s];
    if (source.weight != 1.0)
      fail("data.sources[", s, "].weight: ", source.weight, " (DPO sees every pair once per epoch; use data.epochs instead)");
    if (!is_existing_file(source.path)) fail(source.path, ": data file not found (data.sources[", s, "].path)");
    PairReport report;
    std::vector<TokenizedPair> pairs = read_preference_pairs(source.path, config, tokenizer, format, report);
    for (auto& p : pairs) {
      if (!config.selects_domain(p.chosen.domain)) {
        report.filtered_by_domain += 1;
        continue;
      }
      p.chosen.source = p.rejected.source = s;
      report.kept += 1;
      kept.push_back(std::move(p));
    }
    data.sources.push_back(std::move(report));
  }
  if (kept.empty()) fail("no preference pairs left after reading, length policy and domain filters (", data.summary(), ")");
  split_validation(std::move(kept), config.validation_fraction, config.seed, data.train, data.validation);
  return data;
}

std::string PreferenceData::summary() const {
  std::ostringstream out;
  for (const auto& s : sources) {
    out << s.path << ": " << s.records << " records";
    for (const auto& [reason, n] : s.skipped) out << ", skipped " << n << " (" << reason << ")";
    for (const auto& [reason, lines] : s.dropped) {
      out << ", dropped " << lines.size() << " (" << reason << ": line";
      const size_t shown = std::min<size_t>(lines.size(), 5);
      out << (lines.size() > 1 ? "s " : " ");
      for (size_t i = 0; i < shown; ++i) out << (i ? ", " : "") << lines[i];
      if (lines.size() > shown) out << ", ...";
      out << ")";
    }
    if (s.truncated) out << ", truncated " << s.truncated;
    if (s.filtered_by_domain) out << ", filtered by domain " << s.filtered_by_domain;
    out << ", kept " << s.kept << "; ";
  }
  out << "train " << train.size() << " pairs, validation " << validation.size();
  return out.str();
}

std::vector<size_t> pair_order(size_t n, int64_t seed, int64_t epoch) {
  std::mt19937_64 rng(static_cast<uint64_t>(seed) * 1000003 + static_cast<uint64_t>(epoch) + 1);
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  return order;
}

}  // namespace dsalign
