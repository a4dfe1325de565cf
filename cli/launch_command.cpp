// dsalign launch: N ranks of a dsalign command on this node, with torchrun's environment.
#include <unistd.h>

#include <climits>
#include <cstring>
#include <iostream>

#include "cli/commands.h"
#include "dist/launcher.h"
#include "util/error.h"

namespace dsalign::cli {

namespace {

constexpr const char* kUsage =
    "usage: dsalign launch --nproc-per-node N [--master-port P] <dsalign command> [its arguments]\n\n"
    "Starts N processes of `dsalign <command> ...` on this machine, one per rank, with torchrun's\n"
    "environment (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1, MASTER_PORT: a\n"
    "free port unless --master-port). Each rank's stderr lines are prefixed with \"[rank k]\"; SIGINT and\n"
    "SIGTERM are forwarded. When a rank fails, the others are stopped (SIGTERM, then SIGKILL after\n"
    "--grace seconds) and launch exits non-zero naming the rank and its last error line. Unless\n"
    "OMP_NUM_THREADS is set, each rank gets cores / N threads (as torchrun does).\n"
    "Equivalent: torchrun --no-python --nproc-per-node N dsalign <command> ...\n\n"
    "options:\n"
    "  --nproc-per-node N   ranks to start (on GPUs: one per GPU; rank k uses cuda:k)\n"
    "  --master-port P      port of the c10d store that rank 0 serves (default: a free one)\n"
    "  --grace S            seconds between SIGTERM and SIGKILL when stopping ranks (default 10)\n"
    "  -h, --help           show this help\n";

int parse_int(const std::string& flag, const std::string& value, int min, int max) {
  char* end = nullptr;
  long v = std::strtol(value.c_str(), &end, 10);
  if (value.empty() || *end || v < min || v > max) fail(flag, " ", value, ": expected an integer in ", min, "..", max);
  return static_cast<int>(v);
}

std::string self_executable() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) fail("launch: cannot find the dsalign executable (/proc/self/exe: ", std::strerror(errno), ")");
  return std::string(buf, static_cast<size_t>(n));
}

}  // namespace

int launch_command(const Args& args) {
  LaunchOptions o;
  bool have_nproc = false;
  size_t i = 0;
  // Our options come first; everything from the first non-option on is the dsalign command.
  for (; i < args.size() && args[i].rfind("-", 0) == 0; ++i) {
    std::string flag = args[i], value;
    if (flag == "-h" || flag == "--help") {
      std::cout << kUsage;
      return 0;
    }
    if (size_t eq = flag.find('='); eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      fail(flag, ": needs a value (see dsalign launch --help)");
    }
    if (flag == "--nproc-per-node" || flag == "--nproc_per_node") {
      o.nproc = parse_int(flag, value, 1, 1024);
      have_nproc = true;
    } else if (flag == "--master-port" || flag == "--master_port") {
      o.master_port = parse_int(flag, value, 1, 65535);
    } else if (flag == "--grace") {
      o.grace_seconds = parse_int(flag, value, 0, 3600);
    } else {
      fail("unknown option ", flag, " (see dsalign launch --help)");
    }
  }
  if (!have_nproc) fail("--nproc-per-node is required (see dsalign launch --help)");
  if (i == args.size()) fail("no dsalign command to launch (e.g. dsalign launch --nproc-per-node 2 sft recipe.yaml)");
  if (args[i] == "launch") fail("launch cannot launch itself");
  o.program = self_executable();
  o.args.assign(args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
  LaunchResult result = launch_ranks(o);
  if (result.exit_code != 0) {
    std::cerr << "dsalign launch: " << result.message() << "\n";
    return result.exit_code;
  }
  return 0;
}

}  // namespace dsalign::cli
