// TokenBucket: GCRA over one atomic.
#include "policy/token_bucket.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

namespace skiff::policy {
namespace {

int64_t to_ns(base::TimePoint t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

int64_t interval_ns(double rate) { return std::max<int64_t>(1, std::llround(1e9 / rate)); }

}  // namespace

base::Result<void> TokenBucketParams::validate() const {
  if (!(rate >= 0.001) || !(rate <= 1e9)) return base::fail("rate_limit.rps must be 0.001..1e9");
  if (burst < 1) return base::fail("rate_limit.burst must be >= 1");
  // tolerance = burst × interval must stay far from int64 overflow.
  if (static_cast<double>(burst) * 1e9 / rate > 1e17) {
    return base::fail(
        "rate_limit.burst / rate_limit.rps is too large (more than ~3 years of tokens)");
  }
  return {};
}

TokenBucket::TokenBucket(const TokenBucketParams& params)
    : interval_ns_(interval_ns(params.rate)),
      tolerance_ns_(interval_ns_ * static_cast<int64_t>(std::max<uint32_t>(params.burst, 1))),
      // Far in the past: the bucket starts full.
      tat_ns_(std::numeric_limits<int64_t>::min() / 4) {}

Admission TokenBucket::try_acquire(base::TimePoint now) {
  const int64_t t = to_ns(now);
  int64_t tat = tat_ns_.load(std::memory_order_relaxed);
  for (;;) {
    const GcraStep step = gcra_step(tat, t, interval_ns_, tolerance_ns_);
    if (!step.allowed) return {false, std::chrono::nanoseconds(step.wait)};
    if (tat_ns_.compare_exchange_weak(tat, step.tat, std::memory_order_relaxed)) {
      return {true, {}};
    }
    // |tat| now holds the value another thread wrote; recompute against it.
  }
}

double TokenBucket::available(base::TimePoint now) const {
  const int64_t t = to_ns(now);
  const int64_t tat = std::max(tat_ns_.load(std::memory_order_relaxed), t);
  return static_cast<double>(tolerance_ns_ - (tat - t)) / static_cast<double>(interval_ns_);
}

}  // namespace skiff::policy
