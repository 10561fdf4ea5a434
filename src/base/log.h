// Logging: SKIFF_LOG(level) << ... formats only when the level is enabled (spdlog underneath).
#pragma once

#include <spdlog/spdlog.h>

#include <atomic>
#include <sstream>
#include <string_view>

namespace skiff::base {

enum class LogLevel { kTrace, kDebug, kInfo, kWarn, kError, kOff };

// Parses "trace|debug|info|warn|error|off"; returns false on anything else.
bool parse_log_level(std::string_view text, LogLevel* out);
// Sends logs to stderr (stdout stays free for command output) at |level|. Call once, early.
void init_logging(LogLevel level);
void set_log_level(LogLevel level);

namespace detail {
// The level set_log_level() last set (spdlog starts at info), mirrored here so a disabled
// SKIFF_LOG costs a load and a compare: a call into spdlog's shared library per check showed in
// the profile, as the call path has several trace and debug lines.
inline std::atomic<int> min_log_level{static_cast<int>(LogLevel::kInfo)};
}  // namespace detail

inline bool log_enabled(LogLevel level) {
  return static_cast<int>(level) >= detail::min_log_level.load(std::memory_order_relaxed);
}

// One log line; the message is built with operator<< and emitted in the destructor.
class LogLine {
 public:
  explicit LogLine(LogLevel level) : level_(level) {}
  ~LogLine();
  LogLine(const LogLine&) = delete;
  LogLine& operator=(const LogLine&) = delete;

  template <typename T>
  LogLine& operator<<(const T& value) {
    stream_ << value;
    return *this;
  }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};

}  // namespace skiff::base

// Usage: SKIFF_LOG(kDebug) << "stream " << id << " closed";
#define SKIFF_LOG(level)                                           \
  if (!::skiff::base::log_enabled(::skiff::base::LogLevel::level)) \
    ;                                                              \
  else                                                             \
    ::skiff::base::LogLine(::skiff::base::LogLevel::level)
