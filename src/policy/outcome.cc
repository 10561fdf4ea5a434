// Outcome: names for codes and proxy failures.
#include "policy/outcome.h"

#include <array>

namespace skiff::policy {

std::string_view to_string(ProxyFailure failure) {
  switch (failure) {
    case ProxyFailure::kConnectFailure:
      return "connect-failure";
    case ProxyFailure::kReset:
      return "reset";
    case ProxyFailure::kPerTryTimeout:
      return "per-try-timeout";
    case ProxyFailure::kRefusedStream:
      return "refused-stream";
  }
  return "?";
}

std::string_view code_name(uint8_t code) {
  static constexpr std::array<std::string_view, kMaxCode + 1> kNames = {
      "OK",
      "CANCELLED",
      "UNKNOWN",
      "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED",
      "NOT_FOUND",
      "ALREADY_EXISTS",
      "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED",
      "FAILED_PRECONDITION",
      "ABORTED",
      "OUT_OF_RANGE",
      "UNIMPLEMENTED",
      "INTERNAL",
      "UNAVAILABLE",
      "DATA_LOSS",
      "UNAUTHENTICATED",
  };
  return code <= kMaxCode ? kNames[code] : "UNKNOWN";
}

}  // namespace skiff::policy
