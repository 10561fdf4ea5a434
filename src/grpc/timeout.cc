// grpc-timeout parsing and formatting (PROTOCOL-HTTP2.md: Timeout -> TimeoutValue TimeoutUnit).
#include "grpc/timeout.h"

#include <array>
#include <charconv>
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

// Finest first.
constexpr std::array<Unit, 6> kUnits = {{
    {'n', 1},
    {'u', 1'000},
    {'m', 1'000'000},
    {'S', 1'000'000'000},
    {'M', 60LL * 1'000'000'000},
    {'H', 3600LL * 1'000'000'000},
}};

// TimeoutValue then TimeoutUnit, without a temporary string.
std::string timeout_text(int64_t value, char unit) {
  char text[24];
  char* end = std::to_chars(text, text + sizeof text - 1, value).ptr;
  *end++ = unit;
  return std::string(text, end);
}

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
  // Round up to 3 significant digits: ceil(nanos / p) * p with p = 10^(digits - 3). Every
  // attempt with a deadline formats one, so p is found by compares (nanos / p >= 1000 exactly
  // when nanos / 1000 >= p) rather than a division per digit.
  const int64_t thousandths = nanos / 1000;
  int64_t p = 1;
  while (thousandths >= p) p *= 10;
  const int64_t q = nanos / p + (nanos % p != 0 ? 1 : 0);  // at most 1000
  // Only within a few percent of nanoseconds::max() (292 years) could q * p overflow: such a
  // value keeps full precision instead.
  const int64_t rounded = q <= std::numeric_limits<int64_t>::max() / p ? q * p : nanos;
  // The largest unit that holds it exactly (a unit longer than the value cannot)...
  for (auto unit = kUnits.rbegin(); unit != kUnits.rend(); ++unit) {
    if (unit->nanos <= rounded && rounded % unit->nanos == 0 &&
        rounded / unit->nanos <= kMaxValue) {
      return timeout_text(rounded / unit->nanos, unit->symbol);
    }
  }
  // ...or, when none does (minutes and hours are not powers of ten), the finest one that fits,
  // rounding up again (ceil written so it cannot overflow near int64 max).
  for (const Unit& unit : kUnits) {
    const int64_t value = rounded / unit.nanos + (rounded % unit.nanos != 0 ? 1 : 0);
    if (value <= kMaxValue) return timeout_text(value, unit.symbol);
  }
  // Unreachable: nanoseconds::max() is about 2562048H, which fits in 8 digits.
  return timeout_text(kMaxValue, 'H');
}

}  // namespace skiff::grpc
