// Reading a YAML mapping into typed fields, once, with errors that name the key path: a wrong
// type names the expected type, an unknown key names the nearest known one. Used by every
// recipe section.
#pragma once
#include <yaml-cpp/yaml.h>

#include <optional>
#include <set>
#include <string>
#include <vector>

namespace dsalign {

// An Error naming `where` when the tree's aliases make it loop (an anchor used inside itself)
// or expand past `max_nodes` nodes (nested aliases multiply): every later walk of the tree,
// emitting it included, then terminates.
void check_yaml_tree(const YAML::Node& root, const std::string& where, size_t max_nodes = 100000);

class YamlReader {
 public:
  // `node` must be a mapping (or null: every key then takes its default). `path` is its key path
  // ("data", "data.sources[0]") and `file` the recipe it came from, for messages.
  YamlReader(const YAML::Node& node, std::string path, std::string file);

  std::string string(const std::string& key, const std::optional<std::string>& fallback);
  int64_t integer(const std::string& key, const std::optional<int64_t>& fallback);
  double number(const std::string& key, const std::optional<double>& fallback);
  bool boolean(const std::string& key, const std::optional<bool>& fallback);
  std::vector<std::string> strings(const std::string& key);  // a list of strings, or a single one; default empty
  // One of `choices`; the error lists them.
  std::string choice(const std::string& key, const std::vector<std::string>& choices, const std::string& fallback);
  // A child mapping / list of mappings (each a reader of its own).
  YamlReader child(const std::string& key);
  std::vector<YamlReader> children(const std::string& key);
  bool has(const std::string& key) const;

  // Call after reading every field: an unread key is an error naming the nearest read one.
  void finish() const;

  const std::string& path() const { return path_; }
  const std::string& file() const { return file_; }
  std::string key_path(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

  template <typename... Parts>
  [[noreturn]] void error(const std::string& key, const Parts&... parts) const;

 private:
  YAML::Node get(const std::string& key);
  template <typename T>
  T scalar(const std::string& key, const std::optional<T>& fallback, const char* expected);
  YAML::Node node_;
  std::string path_, file_;
  std::set<std::string> known_;
};

// Levenshtein distance, for "did you mean".
size_t edit_distance(const std::string& a, const std::string& b);

}  // namespace dsalign

#include "util/error.h"

template <typename... Parts>
void dsalign::YamlReader::error(const std::string& key, const Parts&... parts) const {
  fail(file_, ": ", key_path(key), ": ", parts...);
}
