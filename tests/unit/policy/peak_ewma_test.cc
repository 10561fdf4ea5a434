// Tests for policy::PeakEwma and pick_peak_ewma: peak sensitivity, time-decayed averaging,
// idle decay, the RESOURCE_EXHAUSTED penalty, and cost-based P2C choices.
#include "policy/peak_ewma.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "base/clock.h"

namespace skiff::policy {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr double kMs = 1e6;  // nanoseconds per millisecond
constexpr uint64_t choose(uint32_t a, uint32_t b) { return uint64_t{b} << 32 | a; }

class PeakEwmaTest : public ::testing::Test {
 protected:
  PeakEwmaTest() { clock_.advance(seconds(100)); }
  base::FakeClock clock_;
  PeakEwmaParams params_;  // decay 10 s, default 30 ms, penalty 5 s
};

TEST_F(PeakEwmaTest, DefaultRttBeforeAnyResponse) {
  PeakEwma e;
  EXPECT_FALSE(e.has_observation());
  EXPECT_DOUBLE_EQ(e.estimate_ns(0, params_, clock_.now()), 30 * kMs);
  EXPECT_DOUBLE_EQ(e.cost(2, params_, clock_.now()), 90 * kMs);
}

TEST_F(PeakEwmaTest, FirstObservationAndPeak) {
  PeakEwma e;
  e.observe(milliseconds(20), false, params_, clock_.now());
  EXPECT_DOUBLE_EQ(e.estimate_ns(1, params_, clock_.now()), 20 * kMs);
  clock_.advance(milliseconds(1));
  e.observe(milliseconds(200), false, params_, clock_.now());  // slower: jumps at once
  EXPECT_DOUBLE_EQ(e.estimate_ns(1, params_, clock_.now()), 200 * kMs);
}

TEST_F(PeakEwmaTest, FasterResponsesPullDownByElapsedTimeWeight) {
  PeakEwma e;
  e.observe(milliseconds(100), false, params_, clock_.now());
  clock_.advance(seconds(10));  // one time constant: old weight e^-1
  e.observe(milliseconds(10), false, params_, clock_.now());
  const double w = std::exp(-1.0);
  EXPECT_NEAR(e.estimate_ns(1, params_, clock_.now()), 100 * kMs * w + 10 * kMs * (1 - w), 1.0);
  // A response right after another barely moves it.
  PeakEwma f;
  f.observe(milliseconds(100), false, params_, clock_.now());
  clock_.advance(milliseconds(1));
  f.observe(milliseconds(10), false, params_, clock_.now());
  EXPECT_GT(f.estimate_ns(1, params_, clock_.now()), 99 * kMs);
}

TEST_F(PeakEwmaTest, IdleEstimateDecaysButBusyDoesNot) {
  PeakEwma e;
  e.observe(milliseconds(100), false, params_, clock_.now());
  clock_.advance(seconds(20));
  EXPECT_NEAR(e.estimate_ns(0, params_, clock_.now()), 100 * kMs * std::exp(-2.0), 1.0);
  // An endpoint with requests in flight and no answers must not look faster as time passes.
  EXPECT_DOUBLE_EQ(e.estimate_ns(3, params_, clock_.now()), 100 * kMs);
}

TEST_F(PeakEwmaTest, ResourceExhaustedIsPenalised) {
  PeakEwma e;
  e.observe(milliseconds(1), true, params_, clock_.now());  // a fast rejection
  EXPECT_DOUBLE_EQ(e.estimate_ns(1, params_, clock_.now()), 5000 * kMs);
  PeakEwmaParams no_penalty = params_;
  no_penalty.resource_exhausted_penalty = base::Duration::zero();
  PeakEwma f;
  f.observe(milliseconds(1), true, no_penalty, clock_.now());
  EXPECT_DOUBLE_EQ(f.estimate_ns(1, no_penalty, clock_.now()), 1 * kMs);
}

TEST_F(PeakEwmaTest, PickPrefersLowerLatencyTimesLoad) {
  std::vector<EwmaEndpoint> eps(3);
  eps[0].latency.observe(milliseconds(50), false, params_, clock_.now());
  eps[1].latency.observe(milliseconds(10), false, params_, clock_.now());
  eps[2].latency.observe(milliseconds(10), false, params_, clock_.now());
  eps[0].load.active_requests = 1;                                              // cost 100 ms
  eps[1].load.active_requests = 1;                                              // cost 20 ms
  eps[2].load.active_requests = 9;                                              // cost 100 ms
  EXPECT_EQ(pick_peak_ewma(eps, params_, {}, choose(0, 0), clock_.now()), 1u);  // 0 vs 1
  EXPECT_EQ(pick_peak_ewma(eps, params_, {}, choose(1, 1), clock_.now()), 1u);  // 1 vs 2
  EXPECT_EQ(pick_peak_ewma(eps, params_, {}, choose(2, 0), clock_.now()), 2u);  // tie: first
}

TEST_F(PeakEwmaTest, RateLimitedFastEndpointLosesToASlowerHealthyOne) {
  std::vector<EwmaEndpoint> eps(2);
  eps[0].latency.observe(milliseconds(1), true, params_, clock_.now());    // fast 429s
  eps[1].latency.observe(milliseconds(40), false, params_, clock_.now());  // real work
  for (uint64_t r = 0; r < 8; ++r) {
    EXPECT_EQ(pick_peak_ewma(eps, params_, {}, r, clock_.now()), 1u);
  }
}

TEST_F(PeakEwmaTest, PickSkipsUnavailableAndAvoided) {
  std::vector<EwmaEndpoint> eps(3);
  eps[0].load.unavailable_until = clock_.now() + seconds(1);
  std::vector<size_t> used = {1};
  for (uint64_t r = 0; r < 8; ++r) {
    EXPECT_EQ(pick_peak_ewma(eps, params_, {nullptr, used}, r, clock_.now()), 2u);
  }
  eps[2].load.unavailable_until = clock_.now() + seconds(1);
  EXPECT_EQ(pick_peak_ewma(eps, params_, {nullptr, used}, 0, clock_.now()), 1u);
  eps[1].load.unavailable_until = clock_.now() + seconds(1);
  EXPECT_EQ(pick_peak_ewma(eps, params_, {}, 0, clock_.now()), std::nullopt);
}

TEST(PeakEwmaParams, Validate) {
  EXPECT_TRUE(PeakEwmaParams{}.validate().has_value());
  PeakEwmaParams p;
  p.decay = base::Duration::zero();
  EXPECT_FALSE(p.validate().has_value());
  p = {};
  p.default_rtt = base::Duration::zero();
  EXPECT_FALSE(p.validate().has_value());
  p = {};
  p.resource_exhausted_penalty = -milliseconds(1);
  EXPECT_FALSE(p.validate().has_value());
}

}  // namespace
}  // namespace skiff::policy
