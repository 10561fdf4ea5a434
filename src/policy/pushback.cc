// Pushback: grpc-retry-pushback-ms parsing.
#include "policy/pushback.h"

#include <chrono>
#include <limits>

namespace skiff::policy {

Pushback Pushback::parse(std::string_view value) {
  bool negative = false;
  if (!value.empty() && value.front() == '-') {
    negative = true;
    value.remove_prefix(1);
  }
  if (value.empty()) return stop();
  int64_t n = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return stop();
    n = n * 10 + (c - '0');
    if (n > int64_t{std::numeric_limits<int32_t>::max()} + 1) return stop();  // beyond int32
  }
  if (negative) return stop();  // any valid negative value, including "-2147483648"
  if (n > std::numeric_limits<int32_t>::max()) return stop();
  return retry_after(std::chrono::milliseconds(n));
}

}  // namespace skiff::policy
