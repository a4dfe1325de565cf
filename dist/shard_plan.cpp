#include "dist/shard_plan.h"

#include <algorithm>

#include "util/error.h"

namespace dsalign {

std::vector<size_t> rank_rows(size_t begin, size_t end, int64_t world_size, int64_t rank) {
  if (world_size < 1 || rank < 0 || rank >= world_size) fail("rank_rows: rank ", rank, " of ", world_size);
  std::vector<size_t> out;
  for (size_t i = begin + static_cast<size_t>(rank); i < end; i += static_cast<size_t>(world_size)) out.push_back(i);
  return out;
}

int64_t micro_batches_per_rank(size_t rows, int64_t world_size, int64_t micro_batch_size) {
  const int64_t most = (static_cast<int64_t>(rows) + world_size - 1) / world_size;
  return (most + micro_batch_size - 1) / micro_batch_size;
}

RowShard row_shard(int64_t rows, int64_t world_size, int64_t rank) {
  if (world_size < 1 || rank < 0 || rank >= world_size) fail("row_shard: rank ", rank, " of ", world_size);
  RowShard s;
  s.per_rank = (rows + world_size - 1) / world_size;
  s.begin = std::min(rows, rank * s.per_rank);
  s.end = std::min(rows, s.begin + s.per_rank);
  return s;
}

}  // namespace dsalign
