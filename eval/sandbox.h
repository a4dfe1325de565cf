// Runs untrusted Python programs (model-written HumanEval completions with their tests), each in
// its own process tree, cut off from the machine:
//   - new network, PID, mount and IPC namespaces (a user namespace too when not root): no
//     network but a loopback that is down; every process the program starts dies with it;
//   - a private tmpfs (64 MiB) over /tmp, where the program runs, gone when it ends;
//   - as root, an unprivileged uid per worker and dsalign process (57342..65533), so the process
//     limit bites and nothing outside /tmp is writable;
//   - rlimits: CPU seconds, address space, processes, file size, open files, no core files;
//   - a wall-clock limit, after which the whole tree is killed.
// Where the namespaces cannot be made (a container without the privilege), nothing runs: an error
// says why. Output (stdout and stderr, the last 4 KiB) comes back through a pipe.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace dsalign {

struct SandboxLimits {
  double wall_seconds = 10;
  int64_t cpu_seconds = 10;
  int64_t memory_bytes = int64_t{1} << 30;  // address space
  int64_t processes = 16;                   // per sandbox (as root; otherwise added to the user's count)
  int64_t file_bytes = int64_t{16} << 20;
  int64_t open_files = 64;
};

enum class SandboxOutcome { passed, failed, timed_out };
const char* outcome_name(SandboxOutcome outcome);

struct SandboxResult {
  SandboxOutcome outcome = SandboxOutcome::failed;
  int exit_code = -1;  // the program's exit status, or 128 + signal
  std::string output;  // the last 4 KiB of stdout and stderr
  double seconds = 0;
};

// Runs `python -I -B program.py` for each program, up to `workers` at a time; results in order.
// `on_done(finished)` after each. Error (naming what failed and why) when a sandbox cannot be
// set up; a program that fails, crashes or runs out of time is a result, not an error.
std::vector<SandboxResult> run_python_sandboxed(const std::string& python, const std::vector<std::string>& programs,
                                                const SandboxLimits& limits, int64_t workers,
                                                const std::function<void(int64_t)>& on_done = {});

}  // namespace dsalign
