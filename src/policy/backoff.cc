// Backoff: the capped exponential and its jitter.
#include "policy/backoff.h"

#include <algorithm>
#include <cmath>

namespace skiff::policy {

base::Duration Backoff::ceiling(unsigned retry) const {
  // Multiply in double nanoseconds and stop at |max|: at most a few dozen steps before the cap
  // for any multiplier > 1, and exactly one step when multiplier == 1.
  const double cap = static_cast<double>(max.count());
  double ns = static_cast<double>(initial.count());
  for (unsigned i = 1; i < retry && ns < cap; ++i) ns *= multiplier;
  if (!(ns < cap)) return max;  // also catches NaN from a nonsense multiplier
  return std::max(base::Duration::zero(), base::Duration(static_cast<base::Duration::rep>(ns)));
}

base::Duration Backoff::delay(unsigned retry, double jitter01) const {
  if (!(jitter01 >= 0.0)) jitter01 = 0.0;  // negative or NaN
  if (jitter01 >= 1.0) jitter01 = std::nextafter(1.0, 0.0);
  double ns = static_cast<double>(ceiling(retry).count()) * jitter01;
  return base::Duration(static_cast<base::Duration::rep>(ns));
}

base::Result<void> Backoff::validate() const {
  if (initial <= base::Duration::zero()) return base::fail("backoff.initial must be > 0");
  if (max < initial) return base::fail("backoff.max must be >= backoff.initial");
  if (!(multiplier >= 1.0) || !std::isfinite(multiplier)) {
    return base::fail("backoff.multiplier must be >= 1");
  }
  return {};
}

}  // namespace skiff::policy
