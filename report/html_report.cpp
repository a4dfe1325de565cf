#include "report/html_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>

#include "report/chart_js.h"

namespace dsalign {

namespace {

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

// A path's last two components, the whole path on hover: the table stays readable.
std::string short_paths(const std::string& paths) {
  std::string shown;
  size_t begin = 0;
  while (begin <= paths.size()) {
    size_t end = paths.find(", ", begin);
    if (end == std::string::npos) end = paths.size();
    const std::filesystem::path p(paths.substr(begin, end - begin));
    const std::string tail = p.has_parent_path() && p.parent_path().has_filename()
                                 ? (p.parent_path().filename() / p.filename()).string() : p.string();
    shown += (shown.empty() ? "" : ", ") + tail;
    begin = end + 2;
  }
  return "<span title=\"" + escape(paths) + "\">" + escape(shown) + "</span>";
}

std::string optional_text(const std::optional<double>& v, std::string (*format)(double)) {
  return v ? format(*v) : "–";
}

std::string summary_row(const RunMetrics& run) {
  const RunSummary& s = run.summary;
  std::string repetition = "–";
  if (s.repetition_ratio)
    repetition = s.first_repetition_ratio && *s.first_repetition_ratio != *s.repetition_ratio
                     ? format_number(*s.first_repetition_ratio) + " → " + format_number(*s.repetition_ratio)
                     : format_number(*s.repetition_ratio);
  std::string eval;
  for (const auto& [key, value] : s.eval) eval += (eval.empty() ? "" : "<br>") + escape(key) + " " + format_number(value);
  std::string wall = s.wall_seconds ? format_seconds(*s.wall_seconds) : "n/a (no times: older metrics)";
  return "<tr><td class=run>" + escape(run.name) + "</td><td>" + short_paths(s.model) + "</td><td>" + short_paths(s.data) +
         "</td><td>" + escape(s.strategy) + "</td><td>" + std::to_string(s.steps) + "</td><td>" +
         (s.tokens ? std::to_string(*s.tokens) : "–") + "</td><td>" + wall + "</td><td>" +
         optional_text(s.peak_memory_bytes, format_bytes) + "</td><td>" + optional_text(s.final_loss, format_number) +
         "</td><td>" + optional_text(s.final_val_loss, format_number) + "</td><td>" + repetition + "</td><td>" +
         optional_text(s.reward_accuracy, format_number) + "</td><td>" + (eval.empty() ? "–" : eval) + "</td></tr>\n";
}

std::string summary_table(const std::vector<ReportInput>& inputs) {
  std::string html =
      "<table class=summary><tr><th>run</th><th>model</th><th>data</th><th>strategy</th><th>steps</th><th>tokens</th>"
      "<th>wall time</th><th>peak memory</th><th>final loss</th><th>final val loss</th><th>repetition ratio</th>"
      "<th>reward accuracy</th><th>eval</th></tr>\n";
  for (const ReportInput& input : inputs)
    for (const RunMetrics& run : input.runs) html += summary_row(run);
  return html + "</table>\n";
}

std::string recipe_differences(const std::vector<ReportInput>& inputs) {
  std::vector<const RunMetrics*> runs;
  for (const ReportInput& input : inputs)
    for (const RunMetrics& run : input.runs) runs.push_back(&run);
  if (runs.size() < 2) return "<p>One run: nothing to compare.</p>\n";
  const std::vector<std::string> keys = differing_keys(runs);
  if (keys.empty()) return "<p>The runs' resolved recipes are the same.</p>\n";
  std::string html = "<table class=recipes><tr><th>key</th>";
  for (const RunMetrics* r : runs) html += "<th>" + escape(r->name) + "</th>";
  html += "</tr>\n";
  for (const std::string& key : keys) {
    html += "<tr><td class=key>" + escape(key) + "</td>";
    for (const RunMetrics* r : runs) {
      auto it = r->config.find(key);
      html += it == r->config.end() ? "<td class=missing>–</td>" : "<td>" + escape(it->second) + "</td>";
    }
    html += "</tr>\n";
  }
  return html + "</table>\n";
}

// Every run's series on the report's step axis, for the page's script.
nlohmann::json chart_data(const std::vector<ReportInput>& inputs) {
  nlohmann::json runs = nlohmann::json::array();
  std::set<std::string> tags;
  for (const ReportInput& input : inputs) {
    const std::vector<int64_t> offsets = stage_offsets(input);
    for (size_t i = 0; i < input.runs.size(); ++i) {
      nlohmann::json series = nlohmann::json::object();
      for (const auto& [tag, points] : input.runs[i].series) {
        nlohmann::json xy = nlohmann::json::array();
        for (const SeriesPoint& p : points)
          xy.push_back({{"x", p.step + offsets[i]}, {"y", std::isfinite(p.value) ? nlohmann::json(p.value) : nlohmann::json()}});
        series[tag] = xy;
        tags.insert(tag);
      }
      runs.push_back({{"name", input.runs[i].name}, {"series", series}});
    }
  }
  nlohmann::json primary = nlohmann::json::array(), more = nlohmann::json::array();
  for (const std::string& tag : primary_tags())
    if (tags.count(tag)) primary.push_back(tag);
  for (const std::string& tag : tags)
    if (tag.rfind("eval/", 0) == 0 && tag != "eval/seconds") primary.push_back(tag);
  for (const std::string& tag : tags)
    if (std::find(primary.begin(), primary.end(), tag) == primary.end()) more.push_back(tag);
  return {{"runs", runs}, {"primary", primary}, {"more", more}};
}

constexpr const char* kStyle = R"(
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 28px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; } th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.run, td.key { font-family: monospace; } td.missing { color: #999; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(460px, 1fr)); gap: 16px; }
.chart { border: 1px solid #ddd; border-radius: 4px; padding: 8px; } .chart h3 { font-size: 14px; margin: 0 0 4px; font-family: monospace; }
.chart label { font-size: 12px; color: #555; } .warnings li { color: #a40; }
)";

// Builds a chart per tag; records JS errors on the page so a browser test can read them.
constexpr const char* kScript = R"(
(function () {
  const errors = document.getElementById('js-errors');
  window.addEventListener('error', e => { errors.textContent += (e.message || String(e)) + '\n'; });
  const data = JSON.parse(document.getElementById('report-data').textContent);
  const colours = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f'];
  let rendered = 0;
  const bytes = v => { const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB']; let i = 0; while (Math.abs(v) >= 1024 && i < 4) { v /= 1024; i++; }
    return (i ? v.toFixed(2) : String(v)) + ' ' + u[i]; };
  function chart(container, tag) {
    const box = document.createElement('div');
    box.className = 'chart';
    box.dataset.tag = tag;
    const title = document.createElement('h3');
    title.textContent = tag;
    box.appendChild(title);
    const canvas = document.createElement('canvas');
    const wrap = document.createElement('div');
    wrap.style.position = 'relative';
    wrap.style.height = '260px';
    wrap.appendChild(canvas);
    const datasets = [];
    data.runs.forEach((run, i) => {
      if (run.series[tag]) datasets.push({ label: run.name, data: run.series[tag], borderColor: colours[i % colours.length],
        backgroundColor: colours[i % colours.length], borderWidth: 1.5, pointRadius: run.series[tag].length > 40 ? 0 : 2, spanGaps: true });
    });
    box.appendChild(wrap);
    container.appendChild(box);
    const c = new Chart(canvas, {
      type: 'line', data: { datasets },
      options: { animation: false, parsing: false, maintainAspectRatio: false,
        interaction: { mode: 'nearest', axis: 'x', intersect: false },
        plugins: { legend: { labels: { boxWidth: 12 } }, tooltip: { enabled: true } },
        scales: { x: { type: 'linear', title: { display: true, text: 'step' } }, y: { type: 'linear' } } }
    });
    if (tag.endsWith('bytes') || tag.includes('_bytes')) {  // memory and traffic in KiB / MiB / GiB
      c.options.scales.y.ticks = { callback: v => bytes(v) };
      c.options.plugins.tooltip.callbacks = { label: ctx => ctx.dataset.label + ': ' + bytes(ctx.parsed.y) };
      c.update();
    }
    if (tag.includes('loss')) {
      const label = document.createElement('label');
      const box2 = document.createElement('input');
      box2.type = 'checkbox';
      box2.className = 'log-scale';
      box2.addEventListener('change', () => { c.options.scales.y.type = box2.checked ? 'logarithmic' : 'linear'; c.update(); });
      label.appendChild(box2);
      label.appendChild(document.createTextNode(' log scale'));
      box.insertBefore(label, wrap);
    }
    rendered++;
  }
  const primary = document.getElementById('charts');
  data.primary.forEach(tag => chart(primary, tag));
  const more = document.getElementById('more-charts');
  let drawn = false;
  document.getElementById('more').addEventListener('toggle', () => { if (!drawn) { drawn = true; data.more.forEach(tag => chart(more, tag)); } });
  document.body.dataset.chartsRendered = String(rendered);
})();
)";

}  // namespace

const std::vector<std::string>& primary_tags() {
  static const std::vector<std::string> tags = {
      "train/loss", "val/loss", "repetition/ratio", "dpo/rewards/margin", "dpo/rewards/accuracy", "val/rewards/margin",
      "val/rewards/accuracy", "train/lr", "train/grad_norm", "perf/tokens_per_s", "perf/mfu", "memory/peak_bytes"};
  return tags;
}

std::vector<int64_t> stage_offsets(const ReportInput& input) {
  std::vector<int64_t> offsets;
  int64_t at = 0;
  for (const RunMetrics& run : input.runs) {
    offsets.push_back(input.pipeline ? at : 0);
    int64_t last = 0;
    for (const nlohmann::json& r : run.records) last = std::max(last, r.value("step", int64_t{0}));
    at = std::min<int64_t>(at + last, int64_t{1} << 60);  // steps are at most 2^53 (run_metrics)
  }
  return offsets;
}

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (std::abs(bytes) >= 1024 && u < 4) bytes /= 1024, ++u;
  char text[32];
  std::snprintf(text, sizeof text, u ? "%.2f %s" : "%.0f %s", bytes, units[u]);
  return text;
}

std::string format_seconds(double seconds) {
  char text[32];
  if (!(seconds >= 0 && seconds < 1e7)) std::snprintf(text, sizeof text, "%.3g s", seconds);  // nonsense times, printed as they are
  else if (seconds < 60) std::snprintf(text, sizeof text, "%.1f s", seconds);
  else if (seconds < 3600) std::snprintf(text, sizeof text, "%d min %02d s", static_cast<int>(seconds / 60), static_cast<int>(seconds) % 60);
  else std::snprintf(text, sizeof text, "%d h %02d min", static_cast<int>(seconds / 3600), static_cast<int>(seconds / 60) % 60);
  return text;
}

std::string format_number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.4g", value);
  return text;
}

std::string html_report(const std::vector<ReportInput>& inputs) {
  std::string names;
  for (const ReportInput& input : inputs) names += (names.empty() ? "" : ", ") + input.name;
  std::string warnings;
  for (const ReportInput& input : inputs)
    for (const RunMetrics& run : input.runs)
      for (const std::string& w : run.warnings) warnings += "<li>" + escape(w) + "</li>\n";
  // Inside <script>, "</script" or "<!--" could end or change the element: no '<', '>' or '&'
  // reaches the page raw (they occur only inside JSON strings, where \u escapes mean the same).
  // Names that are not UTF-8 (directory names are bytes) show U+FFFD.
  std::string data;
  for (char c : chart_data(inputs).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)) {
    if (c == '<') data += "\\u003c";
    else if (c == '>') data += "\\u003e";
    else if (c == '&') data += "\\u0026";
    else data += c;
  }
  std::string html = "<!DOCTYPE html>\n<html lang=en>\n<head>\n<meta charset=utf-8>\n<title>dsalign report: " +
                     escape(names) + "</title>\n<style>" + kStyle + "</style>\n";
  html += "<script>\n";
  html += chart_js();
  html += "\n</script>\n</head>\n<body>\n<h1>dsalign report: " + escape(names) + "</h1>\n";
  html += "<h2>Summary</h2>\n" + summary_table(inputs);
  if (!warnings.empty()) html += "<h2>Could not be read</h2>\n<ul class=warnings>\n" + warnings + "</ul>\n";
  html += "<h2>Curves</h2>\n<p>Hover a line for its values. A pipeline's stages follow one another on the step axis.</p>\n";
  html += "<div id=charts class=charts></div>\n";
  html += "<details id=more><summary>More metrics</summary><div id=more-charts class=charts></div></details>\n";
  html += "<h2>Recipe differences</h2>\n" + recipe_differences(inputs);
  html += "<pre id=js-errors></pre>\n";
  html += "<script type=\"application/json\" id=report-data>" + data + "</script>\n";
  html += "<script>" + std::string(kScript) + "</script>\n</body>\n</html>\n";
  return html;
}

}  // namespace dsalign
