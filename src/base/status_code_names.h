// The gRPC status code names (doc/statuscodes.md), shared by grpc/ (wire format) and policy/
// (failure-code sets), which may not include each other.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace skiff::base {

inline constexpr std::array<std::string_view, 17> kStatusCodeNames = {
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

// "UNAVAILABLE" for 14; codes past the table read as "UNKNOWN", as gRPC clients treat them.
constexpr std::string_view status_code_name(uint32_t code) {
  return code < kStatusCodeNames.size() ? kStatusCodeNames[code] : kStatusCodeNames[2];
}

}  // namespace skiff::base
