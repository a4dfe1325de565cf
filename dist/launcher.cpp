#include "dist/launcher.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

#include "util/error.h"

namespace dsalign {
namespace {

// The signal handler writes the signal number here; the poll loop reads it (self-pipe).
int g_signal_pipe[2] = {-1, -1};

void on_signal(int sig) {
  const char c = static_cast<char>(sig);
  [[maybe_unused]] ssize_t n = ::write(g_signal_pipe[1], &c, 1);
}

struct Rank {
  pid_t pid = -1;
  int err_fd = -1;       // read end of its stderr pipe
  std::string partial;   // an unfinished line
  std::string last_line;
  bool running = true;
  int status = 0;
};

void write_all(int fd, const std::string& s) {
  size_t done = 0;
  while (done < s.size()) {
    ssize_t n = ::write(fd, s.data() + done, s.size() - done);
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

// Prefixes every complete line with "[rank k] " and remembers the last non-empty one.
void emit_lines(Rank& r, int k, bool flush) {
  size_t start = 0;
  for (;;) {
    size_t end = r.partial.find('\n', start);
    if (end == std::string::npos) break;
    std::string line = r.partial.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) r.last_line = line;
    write_all(STDERR_FILENO, "[rank " + std::to_string(k) + "] " + line + "\n");
    start = end + 1;
  }
  r.partial.erase(0, start);
  if (flush && !r.partial.empty()) {
    r.last_line = r.partial;
    write_all(STDERR_FILENO, "[rank " + std::to_string(k) + "] " + r.partial + "\n");
    r.partial.clear();
  }
}

pid_t start_rank(const LaunchOptions& o, int k, int port, int err_write) {
  pid_t pid = ::fork();
  if (pid < 0) fail("launch: cannot start rank ", k, " (fork: ", std::strerror(errno), ")");
  if (pid > 0) return pid;
  // The child: its own process group (so stopping a rank stops whatever it started), dies with
  // the launcher, stderr into the pipe, torchrun's variables, exec.
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  ::dup2(err_write, STDERR_FILENO);
  const std::string world = std::to_string(o.nproc), rank = std::to_string(k);
  ::setenv("RANK", rank.c_str(), 1);
  ::setenv("LOCAL_RANK", rank.c_str(), 1);
  ::setenv("WORLD_SIZE", world.c_str(), 1);
  ::setenv("LOCAL_WORLD_SIZE", world.c_str(), 1);
  ::setenv("MASTER_ADDR", "127.0.0.1", 1);
  ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
  ::unsetenv("TORCHELASTIC_USE_AGENT_STORE");
  // As torchrun does: ranks sharing the cores do not each start a thread per core.
  if (o.nproc > 1 && !::getenv("OMP_NUM_THREADS")) {
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    ::setenv("OMP_NUM_THREADS", std::to_string(std::max(1u, cores / static_cast<unsigned>(o.nproc))).c_str(), 1);
  }
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(o.program.c_str()));
  for (const auto& a : o.args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  ::execv(o.program.c_str(), argv.data());
  const std::string msg = "cannot run " + o.program + ": " + std::strerror(errno) + "\n";
  write_all(STDERR_FILENO, msg);
  ::_exit(127);
}

std::string describe(int status) {
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by signal ") + std::to_string(WTERMSIG(status)) + " (" +
                                  ::strsignal(WTERMSIG(status)) + ")";
  return "stopped";
}

bool failed(int status) { return !(WIFEXITED(status) && WEXITSTATUS(status) == 0); }

}  // namespace

std::string LaunchResult::message() const {
  if (failed_rank < 0) return "all ranks finished";
  std::string m = "rank " + std::to_string(failed_rank) + " " + failure;
  if (!last_line.empty()) m += ": " + last_line;
  return m;
}

int free_tcp_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) fail("launch: cannot open a socket to find a free port (", std::strerror(errno), ")");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    fail("launch: cannot find a free port (", std::strerror(errno), ")");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

LaunchResult launch_ranks(const LaunchOptions& o) {
  if (o.nproc < 1) fail("launch: --nproc-per-node must be at least 1 (got ", o.nproc, ")");
  const int port = o.master_port > 0 ? o.master_port : free_tcp_port();
  if (::pipe2(g_signal_pipe, O_CLOEXEC) != 0) fail("launch: pipe: ", std::strerror(errno));
  struct sigaction sa{}, old_int{}, old_term{};
  sa.sa_handler = on_signal;
  ::sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, &old_int);
  ::sigaction(SIGTERM, &sa, &old_term);

  std::vector<Rank> ranks(static_cast<size_t>(o.nproc));
  for (int k = 0; k < o.nproc; ++k) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) fail("launch: pipe: ", std::strerror(errno));
    ranks[k].pid = start_rank(o, k, port, fds[1]);
    ::close(fds[1]);
    ranks[k].err_fd = fds[0];
  }

  LaunchResult result;
  int received_signal = 0;
  bool stopping = false;
  auto stop_deadline = std::chrono::steady_clock::time_point::max();
  auto signal_all = [&](int sig) {
    for (auto& r : ranks)
      if (r.running) ::kill(-r.pid, sig);
  };
  size_t running = ranks.size();
  while (running > 0) {
    std::vector<pollfd> fds = {{g_signal_pipe[0], POLLIN, 0}};
    std::vector<int> which = {-1};
    for (int k = 0; k < o.nproc; ++k)
      if (ranks[k].err_fd >= 0) fds.push_back({ranks[k].err_fd, POLLIN, 0}), which.push_back(k);
    ::poll(fds.data(), fds.size(), 100);
    for (size_t i = 0; i < fds.size(); ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      if (which[i] < 0) {
        char c;
        if (::read(g_signal_pipe[0], &c, 1) == 1) {
          received_signal = c;
          signal_all(c);  // forward SIGINT / SIGTERM; the ranks stop as they do alone
          if (!stopping) stopping = true, stop_deadline = std::chrono::steady_clock::now() +
                                                         std::chrono::milliseconds(static_cast<int64_t>(o.grace_seconds * 1000));
        }
        continue;
      }
      Rank& r = ranks[which[i]];
      char buf[4096];
      ssize_t n = ::read(r.err_fd, buf, sizeof buf);
      if (n > 0) {
        r.partial.append(buf, static_cast<size_t>(n));
        emit_lines(r, which[i], false);
      } else if (n == 0 || errno != EINTR) {
        emit_lines(r, which[i], true);
        ::close(r.err_fd);
        r.err_fd = -1;
      }
    }
    for (int k = 0; k < o.nproc; ++k) {
      Rank& r = ranks[k];
      if (!r.running) continue;
      int status = 0;
      if (::waitpid(r.pid, &status, WNOHANG) != r.pid) continue;
      r.running = false;
      r.status = status;
      --running;
      if (failed(status) && result.failed_rank < 0 && !received_signal) {
        result.failed_rank = k;
        result.failure = describe(status);
        if (!stopping) {
          stopping = true;
          signal_all(SIGTERM);
          stop_deadline = std::chrono::steady_clock::now() +
                          std::chrono::milliseconds(static_cast<int64_t>(o.grace_seconds * 1000));
        }
      }
    }
    if (stopping && running > 0 && std::chrono::steady_clock::now() > stop_deadline) {
      signal_all(SIGKILL);
      stop_deadline = std::chrono::steady_clock::time_point::max();
    }
  }
  // What the ranks wrote before they ended, then their process groups (anything they left behind).
  for (int k = 0; k < o.nproc; ++k) {
    Rank& r = ranks[k];
    ::kill(-r.pid, SIGKILL);
    if (r.err_fd < 0) continue;
    ::fcntl(r.err_fd, F_SETFL, ::fcntl(r.err_fd, F_GETFL) | O_NONBLOCK);
    char buf[4096];
    for (ssize_t n; (n = ::read(r.err_fd, buf, sizeof buf)) > 0;) r.partial.append(buf, static_cast<size_t>(n));
    emit_lines(r, k, true);
    ::close(r.err_fd);
    r.err_fd = -1;
  }
  // The failed rank's last line, now that its pipe is drained.
  if (result.failed_rank >= 0) {
    result.last_line = ranks[result.failed_rank].last_line;
    result.exit_code = 1;
  } else if (received_signal) {
    result.exit_code = 128 + received_signal;
    result.failure = std::string("stopped by signal ") + std::to_string(received_signal);
  }
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  ::close(g_signal_pipe[0]);
  ::close(g_signal_pipe[1]);
  return result;
}

}  // namespace dsalign
