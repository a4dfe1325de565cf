// How the process's C allocator (glibc malloc) treats large blocks, set once at start by the
// dsalign executable. By default glibc serves every block above a (dynamic, at most 32 MiB)
// threshold with its own mmap and returns it to the kernel on free, and trims the heap top
// eagerly; a CPU training step allocates and frees the same large buffers every step (logit
// chunks of up to 256 MiB, gradients, AdamW temporaries), so each step faults them in again page
// by page: on the quickstart's 2 cores that was a third of the wall time as system time (the
// shortened quickstart: 23 s of 113 s; 0.7 s of 80 s with these settings). Blocks below 1 GiB now
// come from the heap and freed memory stays with the process for the next step; peak memory is
// unchanged, but memory freed after a peak is not given back until exit.
#pragma once

namespace dsalign {

// Idempotent; a no-op where the C library is not glibc.
void keep_freed_memory_for_reuse();

}  // namespace dsalign
