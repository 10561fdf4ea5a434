// Tests for policy::Backoff: the exponential ceiling, its cap, and full jitter bounds.
#include "policy/backoff.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace skiff::policy {
namespace {

using std::chrono::milliseconds;

TEST(Backoff, CeilingGrowsByMultiplierUntilMax) {
  Backoff b{milliseconds(25), milliseconds(250), 2.0};
  EXPECT_EQ(b.ceiling(1), milliseconds(25));
  EXPECT_EQ(b.ceiling(2), milliseconds(50));
  EXPECT_EQ(b.ceiling(3), milliseconds(100));
  EXPECT_EQ(b.ceiling(4), milliseconds(200));
  EXPECT_EQ(b.ceiling(5), milliseconds(250));
  EXPECT_EQ(b.ceiling(1000), milliseconds(250));  // no overflow for huge retry numbers
  EXPECT_EQ(b.ceiling(0), milliseconds(25));      // treated as the first retry
}

TEST(Backoff, MultiplierOneIsConstant) {
  Backoff b{milliseconds(100), milliseconds(100), 1.0};
  for (unsigned n = 1; n < 10; ++n) EXPECT_EQ(b.ceiling(n), milliseconds(100));
}

TEST(Backoff, FractionalMultiplier) {
  Backoff b{milliseconds(100), milliseconds(1000), 1.5};
  EXPECT_EQ(b.ceiling(2), milliseconds(150));
  EXPECT_EQ(b.ceiling(3), milliseconds(225));
}

TEST(Backoff, FullJitterSpansZeroToCeiling) {
  Backoff b{milliseconds(25), milliseconds(250), 2.0};
  EXPECT_EQ(b.delay(3, 0.0), base::Duration::zero());
  EXPECT_EQ(b.delay(3, 0.5), milliseconds(50));
  EXPECT_LT(b.delay(3, 0.999999), milliseconds(100));
  EXPECT_GT(b.delay(3, 0.999999), milliseconds(99));
}

TEST(Backoff, JitterOutsideUnitIntervalIsClamped) {
  Backoff b{milliseconds(25), milliseconds(250), 2.0};
  EXPECT_EQ(b.delay(1, -3.0), base::Duration::zero());
  EXPECT_LT(b.delay(1, 1.0), milliseconds(25));
  EXPECT_LT(b.delay(1, 7.0), milliseconds(25));
  EXPECT_EQ(b.delay(1, std::nan("")), base::Duration::zero());
}

TEST(Backoff, RandomJitterStaysInBoundsAndSpreads) {
  Backoff b{milliseconds(10), milliseconds(80), 2.0};
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (unsigned n = 1; n <= 6; ++n) {
    base::Duration lo = base::Duration::max(), hi = base::Duration::zero();
    for (int i = 0; i < 2000; ++i) {
      base::Duration d = b.delay(n, u(rng));
      ASSERT_GE(d, base::Duration::zero());
      ASSERT_LT(d, b.ceiling(n));
      lo = std::min(lo, d);
      hi = std::max(hi, d);
    }
    // Full jitter: the draws cover most of [0, ceiling).
    EXPECT_LT(lo, b.ceiling(n) / 10) << n;
    EXPECT_GT(hi, b.ceiling(n) * 9 / 10) << n;
  }
}

TEST(Backoff, Validate) {
  EXPECT_TRUE((Backoff{}.validate()).has_value());
  EXPECT_FALSE((Backoff{milliseconds(0), milliseconds(10), 2.0}.validate()).has_value());
  EXPECT_FALSE((Backoff{milliseconds(20), milliseconds(10), 2.0}.validate()).has_value());
  EXPECT_FALSE((Backoff{milliseconds(1), milliseconds(10), 0.5}.validate()).has_value());
  EXPECT_FALSE((Backoff{milliseconds(1), milliseconds(10), std::nan("")}.validate()).has_value());
}

}  // namespace
}  // namespace skiff::policy
