// grpc-timeout parsing and formatting (PROTOCOL-HTTP2.md: Timeout -> TimeoutValue TimeoutUnit).
#include "grpc/timeout.h"

#include <array>
#include <cstdint>
#include <limits>

namespace skiff::grpc {
namespace {

constexpr size_t kMaxDigits = 8;
constexpr int64_t kMaxValue = 99'999'999;  // the largest 8-digit TimeoutValue

struct Unit {
  char symbol;
  int64_t nanos;
};

// Finest first: format_timeout takes the first unit whose value fits.
constexpr std::array<Unit, 6> kUnits = {{
    {'n', 1},
    {'u', 1'000},
    {'m', 1'000'000},
    {'S', 1'000'000'000},
    {'M', 60LL * 1'000'000'000},
    {'H', 3600LL * 1'000'000'000},
}};

const Unit* find_unit(char symbol) {
  for (const Unit& unit : kUnits) {
    if (unit.symbol == symbol) return &unit;
  }
  return nullptr;
}

}  // namespace

std::string_view to_string(TimeoutError e) {
  switch (e) {
    case TimeoutError::kEmpty:
      return "grpc-timeout has no digits";
    case TimeoutError::kTooManyDigits:
      return "grpc-timeout has more than 8 digits";
    case TimeoutError::kBadDigit:
      return "grpc-timeout value is not ASCII digits";
    case TimeoutError::kBadUnit:
      return "grpc-timeout unit is not one of H M S m u n";
  }
  return "grpc-timeout is malformed";
}

std::expected<std::chrono::nanoseconds, TimeoutError> parse_timeout(std::string_view value) {
  if (value.empty()) return std::unexpected(TimeoutError::kEmpty);
  const Unit* unit = find_unit(value.back());
  if (unit == nullptr) return std::unexpected(TimeoutError::kBadUnit);
  const std::string_view digits = value.substr(0, value.size() - 1);
  if (digits.empty()) return std::unexpected(TimeoutError::kEmpty);
  for (char c : digits) {
    if (c < '0' || c > '9') return std::unexpected(TimeoutError::kBadDigit);
  }
  if (digits.size() > kMaxDigits) return std::unexpected(TimeoutError::kTooManyDigits);

  int64_t count = 0;  // at most 99999999: cannot overflow
  for (char c : digits) count = count * 10 + (c - '0');

  constexpr int64_t kMaxNanos = std::chrono::nanoseconds::max().count();
  if (count > kMaxNanos / unit->nanos) return std::chrono::nanoseconds::max();
  return std::chrono::nanoseconds(count * unit->nanos);
}

std::string format_timeout(std::chrono::nanoseconds d) {
  if (d.count() <= 0) return "0n";
  const int64_t nanos = d.count();
  for (const Unit& unit : kUnits) {
    // Round up: ceil(nanos / unit) written so it cannot overflow near int64 max.
    const int64_t value = nanos / unit.nanos + (nanos % unit.nanos != 0 ? 1 : 0);
    if (value <= kMaxValue) return std::to_string(value) + unit.symbol;
  }
  // Unreachable: nanoseconds::max() is about 2562048H, which fits in 8 digits.
  return std::to_string(kMaxValue) + 'H';
}

}  // namespace skiff::grpc
