// TokenBucket: a rate limit (rate per second, burst) shared by all workers without a lock.
// Implemented as GCRA (the generic cell rate algorithm, also linkerd's local rate limiter):
// the whole state is one "theoretical arrival time" (TAT) in a std::atomic<int64_t>, so
// refilling by elapsed time and taking a token are one compare-exchange. It behaves exactly like
// a token bucket of capacity |burst| refilled at |rate| that starts full.
#pragma once

#include <atomic>
#include <cstdint>

#include "base/clock.h"
#include "base/error.h"

namespace skiff::policy {

struct TokenBucketParams {
  double rate = 100.0;  // tokens per second (requests per second), > 0
  uint32_t burst = 1;   // bucket capacity: requests admitted at once after an idle period, >= 1

  base::Result<void> validate() const;
};

struct Admission {
  bool allowed = false;
  base::Duration retry_after{};  // when rejected: time until a token is available (for
                                 // grpc-retry-pushback-ms, rounded up to milliseconds)
};

// One GCRA step in integer time units (nanoseconds for TokenBucket, microseconds for
// KeyedTokenBuckets). |interval| = time per token, |tolerance| = burst × interval. Taking a
// token moves the TAT to max(tat, now) + interval; that is allowed while the new TAT is at most
// now + tolerance (at most |burst| tokens "borrowed" from the future).
struct GcraStep {
  bool allowed;
  int64_t tat;   // the new TAT when allowed; the old one otherwise
  int64_t wait;  // when rejected: units until the request would be allowed
};
constexpr GcraStep gcra_step(int64_t tat, int64_t now, int64_t interval, int64_t tolerance) {
  const int64_t next = (tat > now ? tat : now) + interval;
  if (next - now > tolerance) return {false, tat, next - now - tolerance};
  return {true, next, 0};
}

// Lock-free: try_acquire() is a load plus one compare-exchange when the token is granted (a
// rejection writes nothing, so a flood of rejected requests does not bounce the cache line).
// Memory order: relaxed; the TAT publishes no other data and its compare-exchanges are totally
// ordered, which is all the admission bound below needs.
//
// Bound: however many threads call it, with any interleaving of their |now| values, the number
// admitted between times t0 and t1 is at most burst + rate × (t1 − t0) (+1 for rounding the
// interval to whole nanoseconds).
class TokenBucket {
 public:
  explicit TokenBucket(const TokenBucketParams& params);
  TokenBucket(const TokenBucket&) = delete;
  TokenBucket& operator=(const TokenBucket&) = delete;

  Admission try_acquire(base::TimePoint now);

  // Tokens available at |now| (for /clusters and tests); not synchronised with try_acquire.
  double available(base::TimePoint now) const;

 private:
  const int64_t interval_ns_;
  const int64_t tolerance_ns_;
  std::atomic<int64_t> tat_ns_;
};

}  // namespace skiff::policy
