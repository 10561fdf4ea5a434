// Logging backend: maps skiff levels onto spdlog's default (stderr) logger.
#include "base/log.h"

#include <spdlog/sinks/stdout_sinks.h>

namespace skiff::base {
namespace {

spdlog::level::level_enum to_spdlog(LogLevel level) {
  switch (level) {
    case LogLevel::kTrace:
      return spdlog::level::trace;
    case LogLevel::kDebug:
      return spdlog::level::debug;
    case LogLevel::kInfo:
      return spdlog::level::info;
    case LogLevel::kWarn:
      return spdlog::level::warn;
    case LogLevel::kError:
      return spdlog::level::err;
    case LogLevel::kOff:
      return spdlog::level::off;
  }
  return spdlog::level::info;
}

}  // namespace

bool parse_log_level(std::string_view text, LogLevel* out) {
  static constexpr std::pair<std::string_view, LogLevel> kNames[] = {
      {"trace", LogLevel::kTrace}, {"debug", LogLevel::kDebug}, {"info", LogLevel::kInfo},
      {"warn", LogLevel::kWarn},   {"error", LogLevel::kError}, {"off", LogLevel::kOff}};
  for (const auto& [name, level] : kNames) {
    if (name == text) {
      *out = level;
      return true;
    }
  }
  return false;
}

void init_logging(LogLevel level) {
  auto logger = spdlog::stderr_logger_mt("skiff");
  // Flushed per line: the log is how operators and tests see readiness and drain.
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(std::move(logger));
  set_log_level(level);
}

void set_log_level(LogLevel level) {
  spdlog::set_level(to_spdlog(level));
  detail::min_log_level.store(static_cast<int>(level), std::memory_order_relaxed);
}

LogLine::~LogLine() { spdlog::log(to_spdlog(level_), "{}", stream_.str()); }

}  // namespace skiff::base
