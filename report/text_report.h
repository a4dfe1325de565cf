// `dsalign report --text`: the report's summary and a sparkline per main metric, for a terminal.
#pragma once
#include <string>
#include <vector>

#include "report/run_metrics.h"

namespace dsalign {

std::string text_report(const std::vector<ReportInput>& inputs);

// "▁▂▄█" from values scaled between their minimum and maximum, resampled to at most `width`.
std::string sparkline(const std::vector<double>& values, size_t width);

}  // namespace dsalign
