// RetryBudget: clamped compare-exchange loops over milli-tokens.
#include "policy/retry_budget.h"

#include <algorithm>
#include <cmath>

namespace skiff::policy {
namespace {

constexpr int32_t kMilli = 1000;

int32_t ratio_to_milli(double ratio) {
  if (!(ratio > 0.0)) return 0;
  return static_cast<int32_t>(std::lround(std::min(ratio, 1000.0) * kMilli));
}

}  // namespace

base::Result<void> RetryBudgetParams::validate() const {
  if (max_tokens < 1 || max_tokens > 1000) {
    return base::fail("retry_throttling.max_tokens must be 1..1000");
  }
  if (!(token_ratio > 0.0) || token_ratio > 1000.0 || ratio_to_milli(token_ratio) == 0) {
    return base::fail("retry_throttling.token_ratio must be >= 0.001 and <= 1000");
  }
  return {};
}

RetryBudget::RetryBudget(const RetryBudgetParams& params)
    : max_milli_(static_cast<int32_t>(std::min<uint32_t>(params.max_tokens, 1000)) * kMilli),
      ratio_milli_(ratio_to_milli(params.token_ratio)),
      threshold_milli_(max_milli_ / 2),
      milli_tokens_(max_milli_) {}

void RetryBudget::on_success() {
  int32_t current = milli_tokens_.load(std::memory_order_relaxed);
  while (current < max_milli_) {
    const int32_t next = std::min(max_milli_, current + ratio_milli_);
    if (milli_tokens_.compare_exchange_weak(current, next, std::memory_order_relaxed)) return;
  }
}

bool RetryBudget::on_failure() {
  int32_t current = milli_tokens_.load(std::memory_order_relaxed);
  int32_t next = std::max(0, current - kMilli);
  while (current > 0 &&
         !milli_tokens_.compare_exchange_weak(current, next, std::memory_order_relaxed)) {
    next = std::max(0, current - kMilli);
  }
  if (current <= 0) next = 0;
  return next > threshold_milli_;
}

bool RetryBudget::retry_allowed() const {
  return milli_tokens_.load(std::memory_order_relaxed) > threshold_milli_;
}

double RetryBudget::tokens() const {
  return static_cast<double>(milli_tokens_.load(std::memory_order_relaxed)) / kMilli;
}

}  // namespace skiff::policy
