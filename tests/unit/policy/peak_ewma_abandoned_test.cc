// Tests for PeakEwma::observe_abandoned: an attempt that ended without a response (timeout,
// reset, cancel) raises the estimate when it lasted longer, and never lowers it.
#include <gtest/gtest.h>

#include <cmath>

#include "base/clock.h"
#include "policy/peak_ewma.h"

namespace skiff::policy {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr double kMs = 1e6;  // nanoseconds per millisecond

class PeakEwmaAbandonedTest : public ::testing::Test {
 protected:
  PeakEwmaAbandonedTest() { clock_.advance(seconds(100)); }
  base::FakeClock clock_;
  PeakEwmaParams params_;  // decay 10 s, default 30 ms, penalty 5 s
};

TEST_F(PeakEwmaAbandonedTest, SlowerThanTheEstimateRaisesItAtOnce) {
  PeakEwma e;
  e.observe(milliseconds(20), false, params_, clock_.now());
  clock_.advance(milliseconds(500));
  EXPECT_TRUE(e.observe_abandoned(milliseconds(500), 1, params_, clock_.now()));
  EXPECT_DOUBLE_EQ(e.estimate_ns(1, params_, clock_.now()), 500 * kMs);
}

TEST_F(PeakEwmaAbandonedTest, FasterThanTheEstimateIsIgnored) {
  PeakEwma e;
  e.observe(milliseconds(200), false, params_, clock_.now());
  clock_.advance(milliseconds(5));
  // A client that cancels after 5 ms says nothing about how fast the endpoint is.
  EXPECT_FALSE(e.observe_abandoned(milliseconds(5), 1, params_, clock_.now()));
  EXPECT_DOUBLE_EQ(e.estimate_ns(1, params_, clock_.now()), 200 * kMs);
}

TEST_F(PeakEwmaAbandonedTest, BeforeAnyResponseComparesWithDefaultRtt) {
  PeakEwma e;
  EXPECT_FALSE(e.observe_abandoned(milliseconds(10), 1, params_, clock_.now()));  // < 30 ms
  EXPECT_FALSE(e.has_observation());
  EXPECT_TRUE(e.observe_abandoned(milliseconds(1000), 1, params_, clock_.now()));
  EXPECT_TRUE(e.has_observation());
  EXPECT_DOUBLE_EQ(e.estimate_ns(1, params_, clock_.now()), 1000 * kMs);
}

TEST_F(PeakEwmaAbandonedTest, IdleEstimateDecaysBeforeTheComparison) {
  PeakEwma e;
  e.observe(milliseconds(100), false, params_, clock_.now());
  clock_.advance(seconds(10));  // idle for one time constant: ~36.8 ms
  EXPECT_TRUE(e.observe_abandoned(milliseconds(50), 0, params_, clock_.now()));
  // Taken as an ordinary sample: blended with the old value by the elapsed time's weight.
  const double w = std::exp(-1.0);
  EXPECT_NEAR(e.estimate_ns(1, params_, clock_.now()), (100 * w + 50 * (1 - w)) * kMs, 1.0);
  EXPECT_FALSE(e.observe_abandoned(milliseconds(50), 1, params_, clock_.now()));
}

}  // namespace
}  // namespace skiff::policy
