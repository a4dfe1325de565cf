#include "data/data_config.h"

namespace dsalign {

bool DataConfig::selects_domain(const std::string& domain) const {
  auto contains = [&](const std::vector<std::string>& list) { return std::find(list.begin(), list.end(), domain) != list.end(); };
  if (!include_domains.empty() && !contains(include_domains)) return false;
  return !contains(exclude_domains);
}

DataConfig parse_data_config(YamlReader& r) {
  DataConfig c;
  for (YamlReader& s : r.children("sources")) {
    DataSource source;
    source.path = s.string("path", std::nullopt);
    source.weight = s.number("weight", 1.0);
    // Up to 1000 passes a epoch: a larger weight is a typo (and would not fit the epoch's order).
    if (!(source.weight > 0 && source.weight <= 1000)) s.error("weight", "must be in (0, 1000], got ", source.weight);
    s.finish();
    c.sources.push_back(source);
  }
  if (c.sources.empty()) r.error("sources", "needs at least one {path: file.jsonl}");
  c.include_domains = r.strings("include_domains");
  c.exclude_domains = r.strings("exclude_domains");
  c.max_seq_len = r.integer("max_seq_len", 4096);
  if (c.max_seq_len < 2) r.error("max_seq_len", "must be at least 2, got ", c.max_seq_len);
  c.overflow = r.choice("overflow", {"drop", "truncate"}, "drop") == "drop" ? Overflow::drop : Overflow::truncate;
  c.packing = r.boolean("packing", true);
  c.seed = r.integer("seed", 0);
  c.validation_fraction = r.number("validation_fraction", 0.0);
  if (c.validation_fraction < 0 || c.validation_fraction >= 1)
    r.error("validation_fraction", "must be in [0, 1), got ", c.validation_fraction);
  c.epochs = r.integer("epochs", 1);
  if (c.epochs < 1) r.error("epochs", "must be at least 1, got ", c.epochs);
  c.chat_template = r.choice("chat_template", {"auto", "deepseek-llm", "deepseek-coder"}, "auto");
  c.train_on_all = r.boolean("train_on_all", false);
  c.response_span = response_span_from_name(r.choice("response_span", {"rendered", "end_of_turn"}, "rendered"));
  c.on_error = r.choice("on_error", {"fail", "skip"}, "fail") == "fail" ? OnError::fail : OnError::skip;
  c.cache_dir = r.string("cache_dir", "");
  c.threads = r.integer("threads", 0);
  r.finish();
  return c;
}

}  // namespace dsalign
