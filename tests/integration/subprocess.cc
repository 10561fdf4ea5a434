// Subprocess: spawn, capture, bounded waits and kill-by-PID for the tests' child processes.
#include "subprocess.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <iostream>
#include <stdexcept>

namespace skiff::it {
namespace {

// Each captured stream keeps at most this much; older output is dropped (the readiness lines
// that matter are parsed as soon as they arrive).
constexpr size_t kMaxCapturedBytes = 16 << 20;

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

void append_bounded(std::string& buf, const char* data, size_t n) {
  buf.append(data, n);
  if (buf.size() > kMaxCapturedBytes) {
    buf.erase(0, buf.size() - kMaxCapturedBytes / 2);
    buf.insert(0, "[... earlier output dropped ...]\n");
  }
}

struct SpawnArgs {
  const char* path;
  char* const* argv;
  int devnull;
  int out_w;
  int err_w;
};

// Runs in the vfork()ed child, which shares the parent's memory until execv: only
// async-signal-safe calls, no allocation. vfork (like posix_spawn) runs no pthread_atfork
// handlers, which matters with gRPC's threads in this process.
[[noreturn]] void exec_child(const SpawnArgs* a) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  ::dup2(a->devnull, 0);
  ::dup2(a->out_w, 1);
  ::dup2(a->err_w, 2);
  ::execv(a->path, a->argv);
  ::_exit(127);
}

pid_t spawn(const SpawnArgs& a) {
  pid_t pid = ::vfork();
  if (pid == 0) exec_child(&a);
  return pid;
}

}  // namespace

bool ExitStatus::exited() const { return WIFEXITED(raw); }
int ExitStatus::code() const { return WIFEXITED(raw) ? WEXITSTATUS(raw) : -1; }
bool ExitStatus::signaled() const { return WIFSIGNALED(raw); }
int ExitStatus::signal() const { return WIFSIGNALED(raw) ? WTERMSIG(raw) : 0; }

std::string ExitStatus::to_string() const {
  if (exited()) return "exit " + std::to_string(code());
  if (signaled()) return "signal " + std::to_string(signal()) + " (" + ::strsignal(signal()) + ")";
  return "wait status " + std::to_string(raw);
}

long rss_kb_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("VmRSS:")) return std::stol(line.substr(6));
  }
  return -1;
}

Subprocess::Subprocess(std::string name, std::vector<std::string> argv) : name_(std::move(name)) {
  if (argv.empty()) throw std::runtime_error("Subprocess: empty argv");
  int out_pipe[2];
  int err_pipe[2];
  // O_CLOEXEC: a child spawned concurrently from another test thread must not inherit these.
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0 ||
      ::pipe2(stop_fds_, O_CLOEXEC) != 0) {
    throw std::runtime_error("Subprocess: pipe2: " + std::string(::strerror(errno)));
  }
  int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);

  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  SpawnArgs args{argv[0].c_str(), cargv.data(), devnull, out_pipe[1], err_pipe[1]};
  pid_ = spawn(args);
  const int spawn_errno = errno;
  ::close(devnull);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  out_fd_ = out_pipe[0];
  err_fd_ = err_pipe[0];
  if (pid_ < 0) {
    close_fd(out_fd_);
    close_fd(err_fd_);
    close_fd(stop_fds_[0]);
    close_fd(stop_fds_[1]);
    throw std::runtime_error("Subprocess: vfork: " + std::string(::strerror(spawn_errno)));
  }
  pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));  // -1: fall back to polling
  reader_ = std::thread([this] { read_loop(); });
}

Subprocess::~Subprocess() {
  kill();
  {
    // The child is gone: let the reader drain what is left in the pipes (EOF follows), unless
    // a grandchild keeps them open.
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, Millis(2000), [&] { return reader_done_; });
  }
  if (stop_fds_[1] >= 0) {
    char c = 0;
    [[maybe_unused]] ssize_t n = ::write(stop_fds_[1], &c, 1);
  }
  if (reader_.joinable()) reader_.join();
  if (::testing::Test::HasFailure()) dump(std::cerr);
  close_fd(out_fd_);
  close_fd(err_fd_);
  close_fd(stop_fds_[0]);
  close_fd(stop_fds_[1]);
  close_fd(pidfd_);
}

void Subprocess::read_loop() {
  char buf[16384];
  bool out_open = true;
  bool err_open = true;
  while (out_open || err_open) {
    pollfd fds[3] = {{out_open ? out_fd_ : -1, POLLIN, 0},
                     {err_open ? err_fd_ : -1, POLLIN, 0},
                     {stop_fds_[0], POLLIN, 0}};
    if (::poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[2].revents != 0) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].revents == 0) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      std::lock_guard lock(mu_);
      if (n <= 0) {
        (i == 0 ? out_open : err_open) = false;
        if (i == 1) err_eof_ = true;
      } else {
        append_bounded(i == 0 ? out_ : err_, buf, static_cast<size_t>(n));
      }
      cv_.notify_all();
    }
  }
  std::lock_guard lock(mu_);
  err_eof_ = true;
  reader_done_ = true;
  cv_.notify_all();
}

bool Subprocess::running() const { return !status_.has_value(); }

std::string Subprocess::err() const {
  std::lock_guard lock(mu_);
  return err_;
}

std::string Subprocess::out() const {
  std::lock_guard lock(mu_);
  return out_;
}

bool Subprocess::wait_for_stderr(const std::function<bool(const std::string&)>& done,
                                 Millis timeout) const {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return done(err_) || err_eof_; });
  return done(err_);
}

bool Subprocess::wait_for_output(
    const std::function<bool(const std::string&, const std::string&)>& done, Millis timeout) const {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return done(err_, out_) || err_eof_; });
  return done(err_, out_);
}

std::optional<ExitStatus> Subprocess::reap(bool block) {
  if (status_) return status_;
  int raw = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &raw, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) status_ = ExitStatus{raw};
  return status_;
}

std::optional<ExitStatus> Subprocess::wait_exit(Millis timeout) {
  if (status_) return status_;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  if (pidfd_ >= 0) {
    // The pidfd becomes readable when the child exits: no polling loop needed.
    for (;;) {
      auto left = std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
      pollfd p{pidfd_, POLLIN, 0};
      int n = ::poll(&p, 1, static_cast<int>(std::max<Millis::rep>(left.count(), 0)));
      if (n > 0) return reap(true);
      if (n == 0 || errno != EINTR) return reap(false);
    }
  }
  // No pidfd (old kernel or sandbox): poll waitpid.
  for (;;) {
    if (auto s = reap(false)) return s;
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(Millis(5));
  }
}

ExitStatus Subprocess::terminate(Millis timeout) {
  if (status_) return *status_;
  ::kill(pid_, SIGTERM);
  if (auto s = wait_exit(timeout)) return *s;
  ADD_FAILURE() << name_ << " (pid " << pid_ << ") still running " << timeout.count()
                << " ms after SIGTERM; sending SIGKILL";
  kill();
  return *status_;
}

void Subprocess::kill() {
  if (status_) return;
  ::kill(pid_, SIGKILL);
  reap(true);
}

long Subprocess::rss_kb() const { return status_ ? -1 : rss_kb_of(pid_); }

void Subprocess::dump(std::ostream& os) const {
  std::lock_guard lock(mu_);
  os << "======== " << name_ << " (pid " << pid_ << ", "
     << (status_ ? status_->to_string() : std::string("running")) << ") ========\n";
  if (!diagnostics_.empty()) os << diagnostics_ << (diagnostics_.ends_with('\n') ? "" : "\n");
  if (!out_.empty()) os << "---- stdout ----\n" << out_ << (out_.ends_with('\n') ? "" : "\n");
  os << "---- stderr ----\n" << err_ << (err_.ends_with('\n') ? "" : "\n");
  os << "======== end of " << name_ << " ========" << std::endl;
}

}  // namespace skiff::it
