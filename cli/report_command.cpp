// dsalign report <run> [<run> ...]: one HTML page (or a terminal summary) comparing runs.
#include <cstdio>
#include <iostream>

#include "cli/args.h"
#include "cli/commands.h"
#include "report/html_report.h"
#include "report/run_metrics.h"
#include "report/text_report.h"
#include "util/error.h"
#include "util/files.h"

namespace dsalign::cli {

int report_command(const Args& args) {
  po::options_description options("options");
  std::vector<std::string> runs;
  std::string out = "report.html";
  options.add_options()
      ("run", po::value(&runs)->required()->multitoken(), "run directories (with metrics.jsonl) or pipeline directories")
      ("out", po::value(&out)->default_value(out), "the HTML page to write")
      ("text", po::bool_switch(), "print the summary and sparklines here instead (and write --out only when given)");
  po::positional_options_description positional;
  positional.add("run", -1);
  po::variables_map vm;
  if (!parse(args, "dsalign report <run> [<run> ...] [--out report.html] [--text]\n\n"
                   "One self-contained HTML page (no network needed to open it) comparing training runs: a\n"
                   "summary per run (model, data, strategy, steps, tokens, wall time, peak memory, final losses,\n"
                   "repetition ratio, reward accuracy, eval results), a chart per metric with every run overlaid\n"
                   "(a pipeline directory's stages one after another on the step axis; hover for values; log\n"
                   "scale for losses) and the differences between the runs' resolved recipes. A torn last line\n"
                   "of metrics.jsonl (a killed run) is skipped with a warning.",
             options, positional, vm))
    return 0;
  const bool text = vm["text"].as<bool>();
  const bool write_html = !text || !vm["out"].defaulted();
  if (write_html) check_output_path(out, "--out", OutputKind::file);
  std::vector<ReportInput> inputs;
  for (const std::string& run : runs) inputs.push_back(read_report_input(run));
  if (!text)  // the terminal summary lists them itself
    for (const ReportInput& input : inputs)
      for (const RunMetrics& r : input.runs)
        for (const std::string& w : r.warnings) std::cerr << "dsalign report: warning: " << w << "\n";
  if (text) std::cout << text_report(inputs);
  if (write_html) {
    write_file_atomic(out, html_report(inputs));
    size_t count = 0;
    for (const ReportInput& input : inputs) count += input.runs.size();
    std::fprintf(stderr, "report: %zu run%s -> %s\n", count, count == 1 ? "" : "s", out.c_str());
  }
  return 0;
}

}  // namespace dsalign::cli
