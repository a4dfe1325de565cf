// `dsalign report`'s page: one self-contained HTML file (Chart.js inline, no network) with a
// summary per run, a line chart per metric with every run overlaid (a pipeline's stages one
// after another on one step axis), hover values, a log-scale toggle for losses, the
// differences between the runs' resolved recipes, and whatever could not be read.
#pragma once
#include <string>
#include <vector>

#include "report/run_metrics.h"

namespace dsalign {

std::string html_report(const std::vector<ReportInput>& inputs);

// The tags charted first, in this order; the others follow under "more metrics".
const std::vector<std::string>& primary_tags();

// The step at which each run starts on the report's axis: 0, except for a pipeline's stages,
// each of which starts where the one before ended.
std::vector<int64_t> stage_offsets(const ReportInput& input);

// Shared formatting of the summary's figures.
std::string format_bytes(double bytes);
std::string format_seconds(double seconds);
std::string format_number(double value);

}  // namespace dsalign
