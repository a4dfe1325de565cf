// Chart.js 3 (MIT licence), from Debian's libjs-chart.js, built into the binary so that a
// report page carries it inline and opens without a network or the package.
#pragma once
#include <string_view>

namespace dsalign {

std::string_view chart_js();

}  // namespace dsalign
