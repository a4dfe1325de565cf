#include "report/chart_js.h"

#include <cstddef>

// The assembler copies the file in (CMake's DSALIGN_CHART_JS), so the build needs no generator.
__asm__(".section .rodata\n"
        ".global dsalign_chart_js_begin\n"
        "dsalign_chart_js_begin:\n"
        ".incbin \"" DSALIGN_CHART_JS "\"\n"
        ".global dsalign_chart_js_end\n"
        "dsalign_chart_js_end:\n"
        ".byte 0\n"
        ".previous\n");

extern "C" const char dsalign_chart_js_begin[];
extern "C" const char dsalign_chart_js_end[];

namespace dsalign {

std::string_view chart_js() {
  return {dsalign_chart_js_begin, static_cast<size_t>(dsalign_chart_js_end - dsalign_chart_js_begin)};
}

}  // namespace dsalign
