// A pipeline's models side by side: what its recipes' monitors measured of each stage's model
// (monitor.eval's metrics, monitor.repetition's ratio) and DPO's reward accuracy, with a first row
// for the model the first measured stage started from (its step-0 measurement, where at_start).
// What `dsalign report --text` prints under a pipeline, e.g. for the quickstart:
//
//   stage          heldout/exact_match  heldout/repetition_ratio  reward accuracy
//   base (before sft_stage1)  0         0.6                       –
//   sft_stage1     0.99                 0                         –
//   dpo            0.99                 0                         0.917
#pragma once
#include <string>

#include "report/run_metrics.h"

namespace dsalign {

// "" when no stage has a measurement.
std::string stage_table(const ReportInput& input);

}  // namespace dsalign
