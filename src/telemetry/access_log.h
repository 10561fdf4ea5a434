// AccessLog: one JSON line per sampled call, written to a file (or stdout) by a background thread.
// Workers only push a CallRecord; formatting and write(2) happen off the data plane.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "telemetry/background_queue.h"
#include "telemetry/call_record.h"

namespace skiff::telemetry {

struct AccessLogOptions {
  std::string path;          // "" or "-": stdout
  double sample_rate = 1.0;  // fraction of calls logged, in [0, 1]
  size_t max_queue = 10000;  // lines waiting; more are dropped
};

class AccessLog {
 public:
  // Opens |options.path| for append (created 0644) before any worker runs, so a bad path fails
  // startup instead of losing lines later. Fails on an unopenable path or a sample_rate outside
  // [0, 1].
  static base::Result<std::unique_ptr<AccessLog>> open(AccessLogOptions options);
  ~AccessLog();  // writes what is queued, then closes the file
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  // Any thread: a coin with probability sample_rate, from a per-thread generator. Callers check
  // it before building a record.
  bool sampled() const;
  // Any thread. Returns false (counted in dropped()) when the queue is full or stopped.
  bool submit(CallRecord record);
  // Writes what is queued, then joins the background thread. Idempotent.
  void stop();

  uint64_t written() const { return written_.load(std::memory_order_relaxed); }
  uint64_t dropped() const { return queue_.dropped(); }
  // Lines lost to a failed write(2) (disk full, EBADF, ...).
  uint64_t failed() const { return failed_.load(std::memory_order_relaxed); }

 private:
  AccessLog(AccessLogOptions options, int fd, bool owns_fd);
  void write_batch(std::vector<CallRecord>& batch);

  const AccessLogOptions options_;
  const int fd_;
  const bool owns_fd_;  // false for stdout
  std::atomic<uint64_t> written_{0};
  std::atomic<uint64_t> failed_{0};
  bool failing_ = false;               // background thread only: the last write failed
  std::string buffer_;                 // background thread only: one batch's lines
  BackgroundQueue<CallRecord> queue_;  // last: its thread uses the members above
};

// One access-log line: compact JSON ending in "\n" (pure; exposed for tests).
std::string to_json_line(const CallRecord& record);

}  // namespace skiff::telemetry
