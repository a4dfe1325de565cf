#include "report/stage_table.h"

#include <algorithm>
#include <map>
#include <optional>
#include <vector>

#include "report/html_report.h"

namespace dsalign {
namespace {

using Row = std::map<std::string, double>;  // column -> value

const char* kRepetition = "repetition ratio";
const char* kReward = "reward accuracy";

std::string stage_name(const RunMetrics& run) {
  const size_t slash = run.name.rfind('/');
  return slash == std::string::npos ? run.name : run.name.substr(slash + 1);
}

Row final_row(const RunSummary& s) {
  Row row(s.eval.begin(), s.eval.end());
  if (s.repetition_ratio) row[kRepetition] = *s.repetition_ratio;
  if (s.reward_accuracy) row[kReward] = *s.reward_accuracy;
  return row;
}

Row start_row(const RunSummary& s) {
  Row row(s.eval_at_start.begin(), s.eval_at_start.end());
  if (s.repetition_ratio_at_start) row[kRepetition] = *s.repetition_ratio_at_start;
  return row;
}

// Columns on a terminal: "–" is three bytes and one column.
size_t display_width(const std::string& text) {
  size_t shown = 0;
  for (unsigned char c : text) shown += (c & 0xC0) != 0x80;
  return shown;
}

std::string padded(const std::string& text, size_t width) {
  const size_t shown = display_width(text);
  return text + std::string(width > shown ? width - shown : 0, ' ');
}

}  // namespace

std::string stage_table(const ReportInput& input) {
  std::vector<std::pair<std::string, Row>> rows;
  for (const RunMetrics& run : input.runs) {
    if (rows.empty()) {
      Row start = start_row(run.summary);
      if (!start.empty()) rows.emplace_back("base (before " + stage_name(run) + ")", std::move(start));
    }
    Row row = final_row(run.summary);
    if (!row.empty()) rows.emplace_back(stage_name(run), std::move(row));
  }
  if (rows.empty()) return "";
  // Columns: the eval metrics in name order, then the repetition ratio and the reward accuracy.
  std::vector<std::string> columns;
  for (const auto& [label, row] : rows)
    for (const auto& [column, value] : row)
      if (column != kRepetition && column != kReward && std::find(columns.begin(), columns.end(), column) == columns.end())
        columns.push_back(column);
  std::sort(columns.begin(), columns.end());
  for (const char* last : {kRepetition, kReward})
    if (std::any_of(rows.begin(), rows.end(), [&](const auto& r) { return r.second.count(last) > 0; })) columns.push_back(last);

  std::vector<std::vector<std::string>> cells = {{"stage"}};
  cells[0].insert(cells[0].end(), columns.begin(), columns.end());
  for (const auto& [label, row] : rows) {
    std::vector<std::string> line = {label};
    for (const std::string& column : columns) {
      auto it = row.find(column);
      line.push_back(it == row.end() ? "–" : format_number(it->second));
    }
    cells.push_back(std::move(line));
  }
  std::vector<size_t> widths(cells[0].size(), 0);
  for (const auto& line : cells)
    for (size_t i = 0; i < line.size(); ++i) widths[i] = std::max(widths[i], display_width(line[i]));
  std::string out = "stage by stage (the recipes' monitors on each stage's final model; reward accuracy on held-out pairs)\n";
  for (const auto& line : cells) {
    std::string text = " ";
    for (size_t i = 0; i < line.size(); ++i) text += " " + padded(line[i], widths[i] + 2);
    while (!text.empty() && text.back() == ' ') text.pop_back();
    out += text + "\n";
  }
  return out;
}

}  // namespace dsalign
