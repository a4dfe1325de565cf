// The stable TensorBoard tag of each metrics.jsonl key: train/loss, train/lr, train/grad_norm,
// perf/tokens_per_s, perf/mfu, memory/peak_bytes, val/loss, dpo/rewards/margin,
// repetition/ratio, eval/<task>/<metric>, ... The report groups its charts by the same tags.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace dsalign {

// The tag of a scalar key; a key with no entry in the table keeps its own name.
std::string metric_tag(const std::string& key);

// The scalars of one metrics.jsonl record as (tag, value): numbers and booleans; arrays of
// numbers as <tag>/rank_<i>; "step", "time", strings, nulls and non-finite numbers are not scalars.
std::vector<std::pair<std::string, double>> metric_scalars(const nlohmann::json& record);

// What a run resumed from the checkpoint of `checkpoint_step` keeps of its logs (metrics.jsonl
// and TensorBoard alike): the records of earlier steps, and of the checkpoint's own step only its
// training record; that step's monitors and validation came after the checkpoint and the resumed
// run logs them again.
inline bool kept_on_resume(int64_t record_step, bool training_record, int64_t checkpoint_step) {
  return record_step < checkpoint_step || (record_step == checkpoint_step && training_record);
}

}  // namespace dsalign
