// AccessLog: JSON lines, formatted and written by the BackgroundQueue's thread.
#include "telemetry/access_log.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <system_error>
#include <thread>
#include <utility>

#include "base/log.h"
#include "base/splitmix.h"

namespace skiff::telemetry {

namespace {

using Json = nlohmann::ordered_json;

constexpr size_t kMaxBatch = 256;  // lines per write(2)
// How long a line may wait for a batch: short enough for `tail -f`, long enough to batch.
constexpr std::chrono::milliseconds kFlushInterval{200};

// "2026-11-22T10:04:05.123Z"
std::string rfc3339_millis(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  sys_time<milliseconds> ms = floor<milliseconds>(t);
  sys_days day = floor<days>(ms);
  year_month_day ymd{day};
  hh_mm_ss<milliseconds> hms{ms - day};
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ",
                static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()), static_cast<int>(hms.hours().count()),
                static_cast<int>(hms.minutes().count()), static_cast<int>(hms.seconds().count()),
                static_cast<int>(hms.subseconds().count()));
  return buf;
}

// A per-thread generator, seeded without std::random_device (which may throw).
uint64_t next_random() {
  thread_local uint64_t state = [] {
    int local = 0;
    return static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
           reinterpret_cast<uintptr_t>(&local) ^
           std::hash<std::thread::id>{}(std::this_thread::get_id());
  }();
  return base::splitmix64_next(state);
}

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

}  // namespace

std::string to_json_line(const CallRecord& r) {
  Json line = Json::object();
  line["time"] = rfc3339_millis(r.start);
  line["listener"] = r.listener;
  line["method"] = r.path;
  line["authority"] = r.authority;
  if (!r.peer_identity.empty()) line["peer"] = r.peer_identity;
  line["downstream"] = r.downstream_address;
  if (r.grpc_status) {
    line["grpc_status"] = *r.grpc_status;
  } else {
    line["grpc_status"] = nullptr;  // no status: the caller cancelled
  }
  if (!r.grpc_message.empty()) line["grpc_message"] = r.grpc_message;
  line["duration_ms"] = std::round(static_cast<double>(r.duration.count()) / 1e3) / 1e3;
  line["request_bytes"] = r.request_bytes;
  line["response_bytes"] = r.response_bytes;
  line["request_messages"] = r.request_messages;
  line["response_messages"] = r.response_messages;
  line["cluster"] = r.upstream_cluster;
  if (!r.upstream_endpoint.empty()) line["upstream"] = r.upstream_endpoint;
  line["upstream_address"] = r.upstream_address;
  line["attempts"] = r.attempts;
  if (!r.trace_id.empty()) line["trace_id"] = r.trace_id;
  line["span_id"] = r.span_id;
  line["request_id"] = r.request_id;
  // Headers come from the network: replace invalid UTF-8 rather than throw.
  std::string text = line.dump(-1, ' ', false, Json::error_handler_t::replace);
  text += '\n';
  return text;
}

base::Result<std::unique_ptr<AccessLog>> AccessLog::open(AccessLogOptions options) {
  if (!(options.sample_rate >= 0.0 && options.sample_rate <= 1.0)) {  // also rejects NaN
    std::ostringstream message;
    message << "access log: sample_rate " << options.sample_rate << " is outside [0, 1]";
    return base::fail(message.str());
  }
  if (options.path.empty() || options.path == "-") {
    return std::unique_ptr<AccessLog>(new AccessLog(std::move(options), STDOUT_FILENO, false));
  }
  int fd;
  do {
    fd = ::open(options.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    return base::fail("access log '" + options.path + "': " + errno_text(errno));
  }
  return std::unique_ptr<AccessLog>(new AccessLog(std::move(options), fd, true));
}

AccessLog::AccessLog(AccessLogOptions options, int fd, bool owns_fd)
    : options_(std::move(options)),
      fd_(fd),
      owns_fd_(owns_fd),
      queue_("skiff-accesslog", options_.max_queue, kMaxBatch, kFlushInterval,
             [this](std::vector<CallRecord>& batch) { write_batch(batch); }) {}

AccessLog::~AccessLog() {
  stop();
  if (owns_fd_) ::close(fd_);
}

bool AccessLog::sampled() const {
  double rate = options_.sample_rate;
  if (rate >= 1.0) return true;
  if (rate <= 0.0) return false;
  // 53 random bits as a double in [0, 1).
  return static_cast<double>(next_random() >> 11) * 0x1.0p-53 < rate;
}

bool AccessLog::submit(CallRecord record) { return queue_.push(std::move(record)); }

void AccessLog::stop() { queue_.stop(); }

void AccessLog::write_batch(std::vector<CallRecord>& batch) {
  buffer_.clear();
  for (const CallRecord& record : batch) buffer_ += to_json_line(record);

  // One write(2) loop per batch. O_APPEND keeps each write's bytes together even if another
  // process appends to the same file.
  const char* data = buffer_.data();
  size_t left = buffer_.size();
  int error = 0;
  while (left > 0) {
    ssize_t n = ::write(fd_, data, left);
    if (n >= 0) {
      data += n;
      left -= static_cast<size_t>(n);
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      // A non-blocking stdout (a pipe shared with a libuv process): this thread may wait.
      pollfd pfd{fd_, POLLOUT, 0};
      ::poll(&pfd, 1, 1000);
    } else {
      error = errno;
      break;
    }
  }

  if (error == 0) {
    written_.fetch_add(batch.size(), std::memory_order_relaxed);
    if (failing_) {
      SKIFF_LOG(kInfo) << "access log: writing to '" << options_.path << "' again";
    }
    failing_ = false;
    return;
  }
  failed_.fetch_add(batch.size(), std::memory_order_relaxed);
  // Warn once per run of failures, not per batch; failed() counts every lost line.
  if (!failing_) {
    SKIFF_LOG(kWarn) << "access log: write to '" << (owns_fd_ ? options_.path : "stdout")
                     << "' failed: " << errno_text(error) << " (dropping lines until it succeeds)";
  }
  failing_ = true;
}

}  // namespace skiff::telemetry
