#include "util/yaml_reader.h"

namespace dsalign {

namespace {

void check_node(const YAML::Node& node, std::vector<YAML::Node>& ancestors, size_t& visited, size_t max_nodes,
                const std::string& where) {
  if (++visited > max_nodes)
    fail(where, ": more than ", max_nodes, " YAML nodes once aliases are expanded (nested aliases?)");
  for (const YAML::Node& a : ancestors)
    if (a.is(node)) fail(where, ": a YAML alias refers to a node that contains it (the tree would never end)");
  if (!node.IsMap() && !node.IsSequence()) return;
  if (ancestors.size() > 256) fail(where, ": YAML nested more than 256 levels deep");
  ancestors.push_back(node);
  for (const auto& item : node) {
    if (node.IsMap()) {
      check_node(item.first, ancestors, visited, max_nodes, where);
      check_node(item.second, ancestors, visited, max_nodes, where);
    } else {
      check_node(item, ancestors, visited, max_nodes, where);
    }
  }
  ancestors.pop_back();
}

}  // namespace

void check_yaml_tree(const YAML::Node& root, const std::string& where, size_t max_nodes) {
  std::vector<YAML::Node> ancestors;
  size_t visited = 0;
  check_node(root, ancestors, visited, max_nodes, where);
}

namespace {
bool missing(const YAML::Node& v) { return !v.IsDefined() || v.IsNull(); }
}  // namespace

YamlReader::YamlReader(const YAML::Node& node, std::string path, std::string file)
    : node_(node), path_(std::move(path)), file_(std::move(file)) {
  if (node_ && !node_.IsNull() && !node_.IsMap()) fail(file_, ": ", path_, ": expected a mapping of keys to values");
}

bool YamlReader::has(const std::string& key) const { return node_ && node_.IsMap() && node_[key] && !node_[key].IsNull(); }

YAML::Node YamlReader::get(const std::string& key) {
  known_.insert(key);
  if (!has(key)) return YAML::Node();
  return node_[key];
}

std::string YamlReader::string(const std::string& key, const std::optional<std::string>& fallback) {
  YAML::Node v = get(key);
  if (missing(v)) {
    if (fallback) return *fallback;
    error(key, "missing (expected a string)");
  }
  if (!v.IsScalar()) error(key, "expected a string");
  return v.as<std::string>();
}

template <typename T>
T YamlReader::scalar(const std::string& key, const std::optional<T>& fallback, const char* expected) {
  YAML::Node v = get(key);
  if (missing(v)) {
    if (fallback) return *fallback;
    error(key, "missing (expected ", expected, ")");
  }
  try {
    if (!v.IsScalar()) throw YAML::BadConversion(v.Mark());
    return v.as<T>();
  } catch (const YAML::BadConversion&) {
    error(key, "expected ", expected, ", got '", YAML::Dump(v), "'");
  }
}

int64_t YamlReader::integer(const std::string& key, const std::optional<int64_t>& fallback) {
  return scalar<int64_t>(key, fallback, "an integer");
}

double YamlReader::number(const std::string& key, const std::optional<double>& fallback) {
  return scalar<double>(key, fallback, "a number");
}

bool YamlReader::boolean(const std::string& key, const std::optional<bool>& fallback) {
  return scalar<bool>(key, fallback, "true or false");
}

std::vector<std::string> YamlReader::strings(const std::string& key) {
  YAML::Node v = get(key);
  if (missing(v)) return {};
  if (v.IsScalar()) return {v.as<std::string>()};
  if (!v.IsSequence()) error(key, "expected a list of strings");
  std::vector<std::string> out;
  for (const auto& item : v) {
    if (!item.IsScalar()) error(key, "expected a list of strings");
    out.push_back(item.as<std::string>());
  }
  return out;
}

std::string YamlReader::choice(const std::string& key, const std::vector<std::string>& choices, const std::string& fallback) {
  std::string value = string(key, fallback);
  for (const auto& c : choices)
    if (c == value) return value;
  std::string list;
  for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
  error(key, "'", value, "' is not one of: ", list);
}

YamlReader YamlReader::child(const std::string& key) { return YamlReader(get(key), key_path(key), file_); }

std::vector<YamlReader> YamlReader::children(const std::string& key) {
  YAML::Node v = get(key);
  std::vector<YamlReader> out;
  if (missing(v)) return out;
  if (!v.IsSequence()) error(key, "expected a list");
  for (size_t i = 0; i < v.size(); ++i) out.emplace_back(v[i], key_path(key) + "[" + std::to_string(i) + "]", file_);
  return out;
}

void YamlReader::finish() const {
  if (!node_ || !node_.IsMap()) return;
  for (const auto& item : node_) {
    std::string key = item.first.as<std::string>();
    if (known_.count(key)) continue;
    std::string nearest;
    size_t best = SIZE_MAX;
    for (const auto& k : known_) {
      size_t d = edit_distance(key, k);
      if (d < best) best = d, nearest = k;
    }
    if (!nearest.empty() && best <= std::max<size_t>(2, key.size() / 3))
      fail(file_, ": ", key_path(key), ": unknown key (did you mean '", key_path(nearest), "'?)");
    std::string list;
    for (const auto& k : known_) list += (list.empty() ? "" : ", ") + k;
    fail(file_, ": ", key_path(key), ": unknown key (known keys here: ", list, ")");
  }
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace dsalign
