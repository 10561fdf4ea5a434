// RetryBudget: gRPC A6 retry throttling for one cluster, shared by all workers. A token count
// starts at max_tokens; every failed attempt (a retryable code, or pushback "stop") takes 1,
// every OK attempt adds token_ratio; retries and extra hedges are allowed only while the count
// is above max_tokens / 2. Under a 100%-failing upstream this stops retries after about
// max_tokens / 2 of them, and under partial failure retries stay near token_ratio × successes.
#pragma once

#include <atomic>
#include <cstdint>

#include "base/error.h"

namespace skiff::policy {

struct RetryBudgetParams {
  uint32_t max_tokens = 10;  // A6 maxTokens, 1..1000
  double token_ratio = 0.1;  // A6 tokenRatio, > 0; kept to 3 decimal places as in gRPC

  base::Result<void> validate() const;
};

// Lock-free. The count is kept in thousandths of a token (A6 allows three decimals in
// tokenRatio) in one std::atomic<int32_t>, changed only by compare-exchange loops that clamp to
// [0, max_tokens].
//
// Memory order: relaxed everywhere. The count publishes no other data: no thread reads
// anything else because of the value it saw, so acquire/release would order nothing. Atomicity
// alone keeps it exact: all read-modify-writes of one atomic form a single modification order,
// so no update is lost. A worker may act on a value a few updates stale, which only shifts when
// throttling starts by those few attempts, well inside what A6's threshold is meant to do.
//
// Cost on the hot path: on_success() when the budget is full is one relaxed load (no write, so
// the cache line stays shared across workers); writes happen only while failures are occurring.
class RetryBudget {
 public:
  explicit RetryBudget(const RetryBudgetParams& params = {});
  RetryBudget(const RetryBudget&) = delete;
  RetryBudget& operator=(const RetryBudget&) = delete;

  // An OK attempt: + token_ratio, capped at max_tokens.
  void on_success();
  // A failed attempt: − 1, floored at 0. Returns retry_allowed() after the update, so the
  // proxy records and asks in one step.
  bool on_failure();
  // True while tokens > max_tokens / 2.
  bool retry_allowed() const;

  // Current count in tokens (for /clusters and tests).
  double tokens() const;
  int32_t milli_tokens() const { return milli_tokens_.load(std::memory_order_relaxed); }

 private:
  const int32_t max_milli_;
  const int32_t ratio_milli_;
  const int32_t threshold_milli_;
  std::atomic<int32_t> milli_tokens_;
};

}  // namespace skiff::policy
