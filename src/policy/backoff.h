// Backoff: exponential backoff with full jitter for retries (gRPC A6 "random(0, min(initial ×
// multiplier^(n-1), max))", the same shape as Envoy's fully jittered retry_back_off).
#pragma once

#include <chrono>

#include "base/clock.h"
#include "base/error.h"

namespace skiff::policy {

struct Backoff {
  base::Duration initial = std::chrono::milliseconds(25);
  base::Duration max = std::chrono::milliseconds(250);
  double multiplier = 2.0;

  // The cap for retry number |retry| (1 = the first retry): min(initial × multiplier^(retry-1),
  // max). |retry| 0 is treated as 1. Never overflows: the product saturates at |max|.
  base::Duration ceiling(unsigned retry) const;

  // The wait before retry number |retry|: |jitter01| × ceiling(retry), so uniform over
  // [0, ceiling) when |jitter01| is uniform over [0, 1). The caller injects the random number
  // (tests pass fixed values); values outside [0, 1) are clamped into it.
  base::Duration delay(unsigned retry, double jitter01) const;

  // OK when initial > 0, max >= initial and multiplier >= 1.
  base::Result<void> validate() const;
};

}  // namespace skiff::policy
