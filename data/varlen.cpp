#include "data/varlen.h"

#include <algorithm>
#include <set>

#include "util/error.h"

namespace dsalign {

VarlenLayout varlen_layout(const std::vector<PackedRow>& rows, size_t begin, size_t end) {
  size_t width = 0;
  for (size_t r = begin; r < end; ++r) width = std::max(width, rows[r].ids.size());
  VarlenLayout out;
  out.cu_seqlens.push_back(0);
  auto close = [&](int64_t length) {
    if (length == 0) return;
    if (out.cu_seqlens.back() + length > INT32_MAX) fail("varlen layout: more than 2^31 tokens in a micro-batch");
    out.cu_seqlens.push_back(out.cu_seqlens.back() + static_cast<int32_t>(length));
    out.max_seqlen = std::max(out.max_seqlen, static_cast<int32_t>(length));
  };
  for (size_t r = begin; r < end; ++r) {
    const PackedRow& row = rows[r];
    std::set<int64_t> seen;
    int64_t current = -1, length = 0;
    for (size_t t = 0; t < row.document_ids.size(); ++t) {
      const int64_t document = row.document_ids[t];
      if (document != current) {
        close(length);
        length = 0;
        current = document;
        if (document >= 0 && !seen.insert(document).second)
          fail("varlen layout: row ", r, " returns to document ", document, " at token ", t, " (documents must be contiguous)");
      }
      if (document < 0) continue;  // padding
      out.token_index.push_back(static_cast<int64_t>((r - begin) * width + t));
      ++length;
    }
    close(length);
  }
  return out;
}

}  // namespace dsalign
