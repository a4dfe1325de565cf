#include "eval/sandbox.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include "util/error.h"

namespace dsalign {
namespace {

constexpr size_t kOutputKept = 4096;
// As root, worker w of a dsalign process runs as kFirstUid - 64 * (pid % 128) - w: the process
// limit counts per uid, so sandboxes of two processes on one machine do not share one.
constexpr uid_t kFirstUid = 65533;
constexpr int64_t kUidsPerProcess = 64;

// What a sandbox's first child reports when it cannot set the sandbox up: the stage and errno.
enum Stage : int { kSetsid, kUnshare, kUidMap, kPrivateMounts, kTmpfs, kWriteProgram, kFork, kDropUid, kRlimits, kExec };
const char* stage_text(int stage) {
  switch (stage) {
    case kSetsid: return "start a new session";
    case kUnshare: return "create network, PID, mount and IPC namespaces (unshare)";
    case kUidMap: return "map its uid in a new user namespace";
    case kPrivateMounts: return "make its mounts private";
    case kTmpfs: return "mount a private tmpfs on /tmp";
    case kWriteProgram: return "write the program into its tmpfs";
    case kFork: return "fork the program's process";
    case kDropUid: return "drop to an unprivileged uid";
    case kRlimits: return "set resource limits";
    case kExec: return "execute python";
  }
  return "set up";
}

// Everything the children need, prepared before fork: after fork only system calls are made.
struct ChildPlan {
  std::string python, program;
  std::vector<std::string> argv_storage, env_storage;
  std::vector<char*> argv, envp;
  std::string uid_map, gid_map;  // for a user namespace (not root)
  bool root = false;
  uid_t uid = 0;
  rlimit cpu{}, memory{}, processes{}, file{}, files{}, core{};
};

[[noreturn]] void child_fail(int err_fd, int stage) {
  const int report[2] = {stage, errno};
  ssize_t ignored = write(err_fd, report, sizeof report);
  (void)ignored;
  _exit(125);
}

bool write_all(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

bool write_proc_file(const char* path, const std::string& text) {
  const int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = write_all(fd, text.data(), text.size());
  close(fd);
  return ok;
}

// The sandbox's first process: makes the namespaces and the tmpfs, then forks the program as the
// new PID namespace's init (when it exits the kernel kills everything it started) and exits
// with its status.
[[noreturn]] void run_sandbox_child(const ChildPlan& p, int out_fd, int err_fd) {
  if (setsid() < 0) child_fail(err_fd, kSetsid);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  const int flags = CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | (p.root ? 0 : CLONE_NEWUSER);
  if (unshare(flags) < 0) child_fail(err_fd, kUnshare);
  if (!p.root && (!write_proc_file("/proc/self/setgroups", "deny") || !write_proc_file("/proc/self/uid_map", p.uid_map) ||
                  !write_proc_file("/proc/self/gid_map", p.gid_map)))
    child_fail(err_fd, kUidMap);
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0) child_fail(err_fd, kPrivateMounts);
  if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=64m,mode=1777") < 0) child_fail(err_fd, kTmpfs);
  const int program_fd = open("/tmp/program.py", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (program_fd < 0 || !write_all(program_fd, p.program.data(), p.program.size())) child_fail(err_fd, kWriteProgram);
  close(program_fd);
  // SIGTERM from dsalign (time is up) makes this process kill the program, then reap it, so the
  // program's zombie goes to its real parent rather than to the machine's init.
  sigset_t wanted, previous;
  sigemptyset(&wanted);
  sigaddset(&wanted, SIGTERM);
  sigaddset(&wanted, SIGCHLD);
  sigprocmask(SIG_BLOCK, &wanted, &previous);
  const pid_t init = fork();
  if (init < 0) child_fail(err_fd, kFork);
  if (init == 0) {
    sigprocmask(SIG_SETMASK, &previous, nullptr);
    const int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) dup2(null_fd, 0);
    dup2(out_fd, 1);
    dup2(out_fd, 2);
    if (chdir("/tmp") < 0) child_fail(err_fd, kWriteProgram);
    if (p.root && (setgroups(0, nullptr) < 0 || setgid(p.uid) < 0 || setuid(p.uid) < 0)) child_fail(err_fd, kDropUid);
    if (setrlimit(RLIMIT_CPU, &p.cpu) < 0 || setrlimit(RLIMIT_AS, &p.memory) < 0 ||
        setrlimit(RLIMIT_NPROC, &p.processes) < 0 || setrlimit(RLIMIT_FSIZE, &p.file) < 0 ||
        setrlimit(RLIMIT_NOFILE, &p.files) < 0 || setrlimit(RLIMIT_CORE, &p.core) < 0)
      child_fail(err_fd, kRlimits);
    execve(p.python.c_str(), p.argv.data(), p.envp.data());
    child_fail(err_fd, kExec);
  }
  close(out_fd);
  close(err_fd);
  int status = 0;
  for (;;) {
    const pid_t done = waitpid(init, &status, WNOHANG);
    if (done == init || (done < 0 && errno != EINTR)) break;
    siginfo_t info{};
    if (sigwaitinfo(&wanted, &info) == SIGTERM) kill(init, SIGKILL);
  }
  _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

// Whether a process of another uid can execute `path`: the file and every directory above it
// are executable by others (as root the program runs as an unprivileged uid).
bool others_can_execute(const std::filesystem::path& path) {
  std::error_code ec;
  const std::filesystem::path real = std::filesystem::canonical(path, ec);
  if (ec) return false;
  for (std::filesystem::path p = real;; p = p.parent_path()) {
    struct stat st {};
    if (stat(p.c_str(), &st) != 0 || !(st.st_mode & S_IXOTH)) return false;
    if (p == p.parent_path()) return true;
  }
}

// `python` itself (a path) or the first on PATH that the program's uid can run.
std::string find_python(const std::string& python, bool root) {
  auto usable = [root](const std::string& candidate) {
    return access(candidate.c_str(), X_OK) == 0 && (!root || others_can_execute(candidate));
  };
  if (python.find('/') != std::string::npos) {
    if (access(python.c_str(), X_OK) != 0) fail("--python: '", python, "' is not an executable file");
    if (!usable(python))
      fail("--python: '", python, "' cannot be run by the sandbox's unprivileged uid (it or a directory above it is not executable by others)");
    return python;
  }
  const char* path = std::getenv("PATH");
  const std::string dirs = path ? path : "/usr/bin:/bin";
  bool found = false;
  for (size_t start = 0; start <= dirs.size();) {
    const size_t end = std::min(dirs.find(':', start), dirs.size());
    const std::string candidate = dirs.substr(start, end - start) + "/" + python;
    if (end > start && access(candidate.c_str(), X_OK) == 0) {
      found = true;
      if (usable(candidate)) return candidate;
    }
    start = end + 1;
  }
  if (found) fail("--python: every '", python, "' on PATH is in a directory the sandbox's unprivileged uid cannot enter; give one with --python /usr/bin/python3");
  fail("--python: '", python, "' is not on PATH");
}

// Processes the current user runs now (not root: RLIMIT_NPROC counts them all).
int64_t user_process_count() {
  int64_t count = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    struct stat st {};
    if (stat(entry.path().c_str(), &st) == 0 && st.st_uid == getuid()) ++count;
  }
  return count;
}

struct Running {
  pid_t pid = -1;
  int out_fd = -1, err_fd = -1;
  size_t index = 0;
  int64_t worker = 0;
  std::chrono::steady_clock::time_point start;
  bool killed = false;
};

void drain(int fd, std::string& output) {
  char buffer[4096];
  for (;;) {
    const ssize_t n = read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    output.append(buffer, static_cast<size_t>(n));
    if (output.size() > 2 * kOutputKept) output.erase(0, output.size() - kOutputKept);
  }
}

}  // namespace

const char* outcome_name(SandboxOutcome outcome) {
  switch (outcome) {
    case SandboxOutcome::passed: return "passed";
    case SandboxOutcome::failed: return "failed";
    case SandboxOutcome::timed_out: return "timed out";
  }
  return "?";
}

std::vector<SandboxResult> run_python_sandboxed(const std::string& python, const std::vector<std::string>& programs,
                                                const SandboxLimits& limits, int64_t workers,
                                                const std::function<void(int64_t)>& on_done) {
  if (workers < 1) fail("sandbox: workers must be at least 1, got ", workers);
  if (limits.wall_seconds <= 0 || limits.cpu_seconds < 1 || limits.memory_bytes < (int64_t{64} << 20) ||
      limits.processes < 1 || limits.file_bytes < 0 || limits.open_files < 8)
    fail("sandbox: limits must be positive (memory at least 64 MiB, open files at least 8)");
  ChildPlan plan;
  plan.root = geteuid() == 0;
  plan.python = find_python(python, plan.root);
  plan.argv_storage = {plan.python, "-I", "-B", "program.py"};
  plan.env_storage = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp", "LANG=C.UTF-8", "PYTHONIOENCODING=utf-8"};
  for (std::string& s : plan.argv_storage) plan.argv.push_back(s.data());
  plan.argv.push_back(nullptr);
  for (std::string& s : plan.env_storage) plan.envp.push_back(s.data());
  plan.envp.push_back(nullptr);
  plan.uid_map = "0 " + std::to_string(geteuid()) + " 1";
  plan.gid_map = "0 " + std::to_string(getegid()) + " 1";
  auto limit = [](int64_t soft, int64_t hard) { return rlimit{static_cast<rlim_t>(soft), static_cast<rlim_t>(hard)}; };
  plan.cpu = limit(limits.cpu_seconds, limits.cpu_seconds + 1);
  plan.memory = limit(limits.memory_bytes, limits.memory_bytes);
  const int64_t processes = plan.root ? limits.processes : user_process_count() + workers * limits.processes;
  plan.processes = limit(processes, processes);
  plan.file = limit(limits.file_bytes, limits.file_bytes);
  plan.files = limit(limits.open_files, limits.open_files);
  plan.core = limit(0, 0);

  std::vector<SandboxResult> results(programs.size());
  std::vector<std::string> outputs(programs.size());
  std::vector<Running> running;
  std::vector<bool> worker_busy(static_cast<size_t>(workers), false);
  size_t next = 0;
  int64_t finished = 0;
  auto kill_all = [&] {
    for (Running& r : running) {
      kill(-r.pid, SIGKILL);
      kill(r.pid, SIGKILL);
      waitpid(r.pid, nullptr, 0);
      close(r.out_fd);
      close(r.err_fd);
    }
    running.clear();
  };
  while (next < programs.size() || !running.empty()) {
    while (next < programs.size() && static_cast<int64_t>(running.size()) < workers) {
      Running r;
      r.index = next++;
      r.worker = std::find(worker_busy.begin(), worker_busy.end(), false) - worker_busy.begin();
      plan.program = programs[r.index];
      plan.uid = kFirstUid - static_cast<uid_t>(kUidsPerProcess * (getpid() % 128) + r.worker % kUidsPerProcess);
      int out[2], err[2];
      if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC | O_NONBLOCK) < 0) {
        kill_all();
        fail("sandbox: cannot create a pipe: ", std::strerror(errno));
      }
      fcntl(out[0], F_SETFL, O_NONBLOCK);
      r.start = std::chrono::steady_clock::now();
      r.pid = fork();
      if (r.pid < 0) {
        kill_all();
        fail("sandbox: cannot fork: ", std::strerror(errno));
      }
      if (r.pid == 0) run_sandbox_child(plan, out[1], err[1]);
      close(out[1]);
      close(err[1]);
      r.out_fd = out[0];
      r.err_fd = err[0];
      worker_busy[static_cast<size_t>(r.worker)] = true;
      running.push_back(r);
    }
    std::vector<pollfd> fds;
    for (const Running& r : running) fds.push_back({r.out_fd, POLLIN, 0});
    poll(fds.data(), fds.size(), 10);
    for (size_t i = 0; i < running.size();) {
      Running& r = running[i];
      drain(r.out_fd, outputs[r.index]);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - r.start).count();
      if (seconds > limits.wall_seconds && !r.killed) {
        // The sandbox's first process kills the program (its PID namespace's init, whose end
        // takes every process it started) and reaps it.
        kill(r.pid, SIGTERM);
        r.killed = true;
      }
      if (seconds > limits.wall_seconds + 5) {
        // It did not: kill them both (the program's zombie then goes to the machine's init).
        kill(-r.pid, SIGKILL);
        kill(r.pid, SIGKILL);
      }
      int status = 0;
      const pid_t done = waitpid(r.pid, &status, WNOHANG);
      if (done == 0) {
        ++i;
        continue;
      }
      kill(-r.pid, SIGKILL);
      drain(r.out_fd, outputs[r.index]);
      int report[2] = {-1, 0};
      const bool setup_failed = read(r.err_fd, report, sizeof report) == static_cast<ssize_t>(sizeof report);
      close(r.out_fd);
      close(r.err_fd);
      worker_busy[static_cast<size_t>(r.worker)] = false;
      const size_t index = r.index;
      const bool killed = r.killed;
      running.erase(running.begin() + static_cast<std::ptrdiff_t>(i));  // `r` is gone from here on
      if (setup_failed) {
        kill_all();
        fail("sandbox: cannot ", stage_text(report[0]), ": ", std::strerror(report[1]),
             ". Model-written code runs only when it can be isolated: run as root or where unprivileged user "
             "namespaces are allowed (sysctl kernel.unprivileged_userns_clone=1)");
      }
      SandboxResult& result = results[index];
      result.seconds = seconds;
      result.exit_code = done < 0 ? -1 : WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      const bool out_of_time = killed || result.exit_code == 128 + SIGXCPU;
      result.outcome = out_of_time ? SandboxOutcome::timed_out
                       : result.exit_code == 0 ? SandboxOutcome::passed
                                               : SandboxOutcome::failed;
      std::string& output = outputs[index];
      result.output = output.size() > kOutputKept ? output.substr(output.size() - kOutputKept) : output;
      if (on_done) on_done(++finished);
    }
  }
  return results;
}

}  // namespace dsalign
