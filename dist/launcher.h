// `dsalign launch`: a single-node launcher in the binary (no Python). Starts N ranks of a program
// with torchrun's environment, prefixes each rank's stderr lines with "[rank k] ", forwards
// SIGINT / SIGTERM, and when any rank fails (non-zero exit or a signal) stops the others (SIGTERM,
// then SIGKILL after a grace period) and reports which rank failed and its last error line.
#pragma once
#include <string>
#include <vector>

namespace dsalign {

struct LaunchOptions {
  int nproc = 1;
  std::string program;             // absolute path of the executable
  std::vector<std::string> args;   // its arguments (argv[1..])
  int master_port = 0;             // 0: a free port from the OS
  double grace_seconds = 10;       // after a failure, SIGTERM then SIGKILL this much later
};

struct LaunchResult {
  int exit_code = 0;       // 0 when every rank succeeded
  int failed_rank = -1;    // the first rank that failed
  std::string failure;     // "exited with code 3" / "killed by signal 9"
  std::string last_line;   // the failed rank's last non-empty stderr line
  std::string message() const;  // one line for the user
};

// Runs the ranks to the end; writes their prefixed stderr to this process's stderr.
LaunchResult launch_ranks(const LaunchOptions& options);

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
int free_tcp_port();

}  // namespace dsalign
