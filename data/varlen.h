// The padding-free layout varlen flash attention takes (issue 12's CUDA attention path): the real
// tokens of a micro-batch's rows as one flat stream, each document a contiguous sequence, with
// int32 cumulative sequence lengths and the longest sequence. Built once per micro-batch on the
// host (so no layer syncs with the device to find them), from the rows' document ids: tokens
// attend only within their document, padding (document id -1) is dropped.
#pragma once
#include <cstdint>
#include <vector>

#include "data/sft_data.h"

namespace dsalign {

struct VarlenLayout {
  std::vector<int64_t> token_index;  // for each flat token, row * T + t in the padded [B, T] batch
  std::vector<int32_t> cu_seqlens;   // documents + 1 entries: 0, end of document 0, ...
  int32_t max_seqlen = 0;
  int64_t tokens() const { return static_cast<int64_t>(token_index.size()); }
};

// Rows [begin, end) of `rows` as collate() lays them out with width T (the longest row). Documents
// are runs of equal document id within a row; an id that reappears after another is an error.
VarlenLayout varlen_layout(const std::vector<PackedRow>& rows, size_t begin, size_t end);

}  // namespace dsalign
