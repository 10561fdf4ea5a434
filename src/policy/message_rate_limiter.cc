// MessageRateLimiter: single-threaded GCRA.
#include "policy/message_rate_limiter.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

namespace skiff::policy {

MessageRateLimiter::MessageRateLimiter(const TokenBucketParams& params)
    : interval_ns_(std::max<int64_t>(1, std::llround(1e9 / params.rate))),
      tolerance_ns_(interval_ns_ * static_cast<int64_t>(std::max<uint32_t>(params.burst, 1))),
      tat_ns_(std::numeric_limits<int64_t>::min() / 4) {}

Admission MessageRateLimiter::try_acquire(base::TimePoint now) {
  const int64_t t =
      std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
  const GcraStep step = gcra_step(tat_ns_, t, interval_ns_, tolerance_ns_);
  if (!step.allowed) {
    ++rejected_;
    return {false, std::chrono::nanoseconds(step.wait)};
  }
  tat_ns_ = step.tat;
  ++admitted_;
  return {true, {}};
}

}  // namespace skiff::policy
