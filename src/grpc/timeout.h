// The grpc-timeout header: parse (1..8 ASCII digits, then one of H M S m u n) and format.
#pragma once

#include <chrono>
#include <expected>
#include <string>
#include <string_view>

namespace skiff::grpc {

enum class TimeoutError {
  kEmpty,          // no digits: an empty value, or a unit alone
  kTooManyDigits,  // more than 8 digits
  kBadDigit,       // something other than 0-9 before the unit: a sign, '.', a space
  kBadUnit,        // the last character is not H, M, S, m, u or n (a missing unit included)
};

std::string_view to_string(TimeoutError e);

// Parses a grpc-timeout value. "0n" is valid and gives zero. Values too large for
// std::chrono::nanoseconds (above about 2562047H) saturate to nanoseconds::max() instead of
// overflowing.
[[nodiscard]] std::expected<std::chrono::nanoseconds, TimeoutError> parse_timeout(
    std::string_view value);

// Formats |d| for the wire, rounded up to 3 significant digits in the largest unit (n, u, m, S,
// M, H) that holds the result exactly in 8 digits: 29.99999 s gives "30S", 250 ms "250m". The
// upstream never gets less than |d| and at most 1% more (gRPC lets an encoder round up; skiff
// enforces the exact deadline itself). Few, short values are cheap to encode and let HPACK
// index the header instead of Huffman-coding a new value for every call. d <= 0 gives "0n".
std::string format_timeout(std::chrono::nanoseconds d);

}  // namespace skiff::grpc
