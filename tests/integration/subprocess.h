// Subprocess: one child process a test started (skiff, or an upstream it will kill), with its
// stdout/stderr captured by a reader thread, waits bounded by deadlines, and kill-by-PID cleanup.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

namespace skiff::it {

using Millis = std::chrono::milliseconds;

// A waitpid() status.
struct ExitStatus {
  int raw = 0;

  bool exited() const;
  int code() const;  // exit code, or -1 if killed by a signal
  bool signaled() const;
  int signal() const;             // terminating signal, or 0
  std::string to_string() const;  // "exit 0", "signal 9 (Killed)"
};

class Subprocess {
 public:
  // Starts |argv|[0] (a path, not searched in PATH) with |argv|. stdin is /dev/null; stdout and
  // stderr are drained into memory by a thread so the pipes never fill. The child is sent
  // SIGKILL if the thread that spawned it dies (PR_SET_PDEATHSIG), so a crashed test leaves no
  // process behind: spawn from the test's own thread. Throws std::runtime_error on failure.
  Subprocess(std::string name, std::vector<std::string> argv);
  // Kills (SIGKILL) and reaps the child if it is still running. If the current test has failed,
  // prints the captured output (and |diagnostics|) to stderr.
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  const std::string& name() const { return name_; }
  pid_t pid() const { return pid_; }
  bool running() const;  // not reaped yet

  // Everything captured so far.
  std::string err() const;
  std::string out() const;

  // Waits until |done|(stderr so far) holds. Returns false on |timeout|, or once the child has
  // closed its stderr (normally: exited) without |done| holding.
  bool wait_for_stderr(const std::function<bool(const std::string&)>& done, Millis timeout) const;
  // The same over stderr and stdout: |done|(stderr, stdout).
  bool wait_for_output(const std::function<bool(const std::string&, const std::string&)>& done,
                       Millis timeout) const;

  // Waits up to |timeout| for the child to exit and reaps it; nullopt if it is still running.
  std::optional<ExitStatus> wait_exit(Millis timeout);
  // SIGTERM, then wait_exit(|timeout|). If it is still running: a test failure, SIGKILL, and
  // the SIGKILL status is returned.
  ExitStatus terminate(Millis timeout);
  // SIGKILL and reap. No-op once reaped.
  void kill();
  // The exit status once reaped.
  std::optional<ExitStatus> exit_status() const { return status_; }

  // VmRSS of the running child in KiB, from /proc/PID/status; -1 if unavailable.
  long rss_kb() const;

  // Printed along with the output when a test fails (e.g. the config skiff ran with).
  void set_diagnostics(std::string text) { diagnostics_ = std::move(text); }
  void dump(std::ostream& os) const;

 private:
  void read_loop();
  std::optional<ExitStatus> reap(bool block);

  std::string name_;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  int err_fd_ = -1;
  int out_fd_ = -1;
  int stop_fds_[2] = {-1, -1};
  std::optional<ExitStatus> status_;
  std::string diagnostics_;
  std::thread reader_;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::string err_;
  std::string out_;
  bool err_eof_ = false;
  bool reader_done_ = false;
};

// VmRSS of |pid| in KiB; -1 if it cannot be read.
long rss_kb_of(pid_t pid);

}  // namespace skiff::it
