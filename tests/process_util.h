// Helpers for tests that run the dsalign binary as a child process: start it, wait for it with a
// deadline (killing it past that), and find temporary files a run must not leave behind.
#pragma once
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace dsalign::testing {

struct CommandResult {
  int status = -1;  // the exit status; -1 when it did not exit normally
  std::string out;  // stdout and stderr together
};

// Runs `command` through the shell and waits for it.
inline CommandResult run_command(const std::string& command) {
  CommandResult r;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  char buf[4096];
  while (std::fgets(buf, sizeof buf, pipe)) r.out += buf;
  const int status = ::pclose(pipe);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// `command` under /bin/sh as a child of this process (so it can be signalled and waited for).
inline pid_t start_command(const std::string& command) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

// Waits up to `seconds` for pid to exit; its exit code (128 + signal when killed by one), or -1
// when it did not end in time (then it is killed).
inline int wait_for_exit(pid_t pid, double seconds) {
  for (int i = 0; i < static_cast<int>(seconds * 20); ++i) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  return -1;
}

// Names under `dir` (recursively) that are temporary: staging directories and files.
inline std::vector<std::string> temporaries(const std::filesystem::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.find(".tmp-") != std::string::npos || name.find(".partial") != std::string::npos ||
        name.find(".old-") != std::string::npos)
      out.push_back(e.path().string());
  }
  return out;
}

// Polls up to `seconds` for `ready`; whether it became true.
template <typename Ready>
bool wait_until(Ready ready, double seconds) {
  for (int i = 0; i < static_cast<int>(seconds * 10); ++i) {
    if (ready()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return ready();
}

}  // namespace dsalign::testing
