// Shard arithmetic, pure and tested on its own: which rows of an optimizer step each rank
// trains on, and how many micro-batches every rank must run so that all ranks issue the same
// collectives in the same order.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace dsalign {

// Rows [begin, end) of a step dealt round-robin: rank r gets begin + r, begin + r + world, ...
// Deterministic, the same on every rank, and every row goes to exactly one rank.
std::vector<size_t> rank_rows(size_t begin, size_t end, int64_t world_size, int64_t rank);

// Micro-batches every rank runs in a step of `rows` rows: enough for the rank with the most rows.
// A rank with fewer rows runs micro-batches that carry no loss (so collectives stay in step).
int64_t micro_batches_per_rank(size_t rows, int64_t world_size, int64_t micro_batch_size);

// A parameter's rows (dim 0) split into world_size ranges of ceil(rows / world_size): rank r owns
// [begin, end); the last ranges may be short or empty. Collectives move `per_rank` rows from every
// rank (short ranges padded), as FSDP2 pads dim 0 to a multiple of the world size.
struct RowShard {
  int64_t begin = 0, end = 0, per_rank = 0;
  int64_t rows() const { return end - begin; }
};
RowShard row_shard(int64_t rows, int64_t world_size, int64_t rank);

}  // namespace dsalign
