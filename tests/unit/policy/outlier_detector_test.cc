// Tests for policy::OutlierDetector: ejection after N consecutive failures, base × count
// durations with a cap and decay, automatic return, the max_ejection_percent cap, and a
// concurrency test that the cap holds.
#include "policy/outlier_detector.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "base/clock.h"

namespace skiff::policy {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

OutlierDetectorParams params(uint32_t percent = 100) {
  OutlierDetectorParams p;
  p.consecutive_failures = 3;
  p.base_ejection_time = seconds(30);
  p.max_ejection_time = seconds(100);
  p.max_ejection_percent = percent;
  p.interval = seconds(10);
  return p;
}

class OutlierTest : public ::testing::Test {
 protected:
  OutlierTest() { clock_.advance(seconds(1000)); }
  OutlierEvent fail(OutlierDetector& d, size_t i, int times) {
    OutlierEvent last = OutlierEvent::kNone;
    for (int k = 0; k < times; ++k) last = d.on_result(i, true, clock_.now());
    return last;
  }
  base::FakeClock clock_;
};

TEST_F(OutlierTest, EjectsAfterConsecutiveFailures) {
  OutlierDetector d(params(), 4);
  EXPECT_EQ(fail(d, 1, 2), OutlierEvent::kNone);
  EXPECT_FALSE(d.is_ejected(1, clock_.now()));
  EXPECT_EQ(fail(d, 1, 1), OutlierEvent::kEjected);
  EXPECT_TRUE(d.is_ejected(1, clock_.now()));
  EXPECT_FALSE(d.is_ejected(0, clock_.now()));
  EXPECT_EQ(d.ejected_until(1), clock_.now() + seconds(30));
  EXPECT_EQ(d.times_ejected(1), 1u);
  EXPECT_EQ(d.ejected_count(clock_.now()), 1u);
}

TEST_F(OutlierTest, SuccessResetsTheRun) {
  OutlierDetector d(params(), 2);
  fail(d, 0, 2);
  d.on_result(0, false, clock_.now());
  EXPECT_EQ(fail(d, 0, 2), OutlierEvent::kNone);
  EXPECT_EQ(fail(d, 0, 1), OutlierEvent::kEjected);
}

TEST_F(OutlierTest, ReturnsAutomaticallyWhenTheTimePasses) {
  OutlierDetector d(params(), 2);
  fail(d, 0, 3);
  clock_.advance(milliseconds(29999));
  EXPECT_TRUE(d.is_ejected(0, clock_.now()));
  clock_.advance(milliseconds(1));
  EXPECT_FALSE(d.is_ejected(0, clock_.now()));
  EXPECT_EQ(d.ejected_count(clock_.now()), 0u);
}

TEST_F(OutlierTest, ResultsWhileEjectedAreIgnored) {
  OutlierDetector d(params(), 2);
  fail(d, 0, 3);
  EXPECT_EQ(fail(d, 0, 10), OutlierEvent::kNone);  // stragglers
  clock_.advance(seconds(30));
  EXPECT_EQ(fail(d, 0, 2), OutlierEvent::kNone);  // a fresh run is needed
  EXPECT_EQ(fail(d, 0, 1), OutlierEvent::kEjected);
}

TEST_F(OutlierTest, EjectionTimeGrowsWithCountUpToTheCap) {
  OutlierDetector d(params(), 2);
  // Re-eject as soon as it returns: no healthy interval, so no decay.
  const base::Duration want[] = {seconds(30), seconds(60), seconds(90), seconds(100), seconds(100)};
  for (base::Duration w : want) {
    ASSERT_EQ(fail(d, 0, 3), OutlierEvent::kEjected);
    EXPECT_EQ(d.ejected_until(0) - clock_.now(), w);
    clock_.advance(w);
  }
  EXPECT_EQ(d.times_ejected(0), 5u);
}

TEST_F(OutlierTest, MultiplierDecaysByOnePerHealthyInterval) {
  OutlierDetector d(params(), 2);
  fail(d, 0, 3);  // ×1, 30 s
  clock_.advance(seconds(30));
  fail(d, 0, 3);  // ×2, 60 s
  clock_.advance(seconds(60));
  clock_.advance(seconds(10));  // one healthy interval: ×2 -> ×1
  ASSERT_EQ(fail(d, 0, 3), OutlierEvent::kEjected);
  EXPECT_EQ(d.times_ejected(0), 2u);  // decayed to 1, then +1
  EXPECT_EQ(d.ejections(0), 3u);      // the counter for metrics never decays
  EXPECT_EQ(d.ejected_until(0) - clock_.now(), seconds(60));
  clock_.advance(seconds(60) + seconds(300));  // long healthy: back to ×1
  ASSERT_EQ(fail(d, 0, 3), OutlierEvent::kEjected);
  EXPECT_EQ(d.times_ejected(0), 1u);
  EXPECT_EQ(d.ejected_until(0) - clock_.now(), seconds(30));
}

TEST_F(OutlierTest, MaxEjectionPercentCapsEjections) {
  OutlierDetector d(params(20), 10);  // at most 2 of 10
  EXPECT_EQ(fail(d, 0, 3), OutlierEvent::kEjected);
  EXPECT_EQ(fail(d, 1, 3), OutlierEvent::kEjected);
  EXPECT_EQ(fail(d, 2, 3), OutlierEvent::kCapped);
  EXPECT_FALSE(d.is_ejected(2, clock_.now()));
  EXPECT_EQ(d.ejected_count(clock_.now()), 2u);
  // Capped endpoints start a new run; once a slot frees up they can be ejected.
  clock_.advance(seconds(30));
  EXPECT_EQ(fail(d, 2, 2), OutlierEvent::kNone);
  EXPECT_EQ(fail(d, 2, 1), OutlierEvent::kEjected);
}

TEST_F(OutlierTest, MaxEjectedRules) {
  OutlierDetectorParams p = params(10);
  EXPECT_EQ(p.max_ejected(0), 0u);
  EXPECT_EQ(p.max_ejected(1), 0u);  // never eject the only endpoint
  EXPECT_EQ(p.max_ejected(2), 1u);  // at least one in a small cluster
  EXPECT_EQ(p.max_ejected(3), 1u);
  EXPECT_EQ(p.max_ejected(10), 1u);
  EXPECT_EQ(p.max_ejected(25), 2u);
  EXPECT_EQ(p.max_ejected(100), 10u);
  p.max_ejection_percent = 90;
  EXPECT_EQ(p.max_ejected(2), 1u);  // one endpoint always stays below 100 %
  EXPECT_EQ(p.max_ejected(10), 9u);
  p.max_ejection_percent = 100;
  EXPECT_EQ(p.max_ejected(1), 1u);
  EXPECT_EQ(p.max_ejected(10), 10u);
  p.max_ejection_percent = 0;
  EXPECT_EQ(p.max_ejected(10), 0u);
}

TEST_F(OutlierTest, SingleEndpointIsNeverEjectedByDefault) {
  OutlierDetector d(OutlierDetectorParams{}, 1);
  EXPECT_EQ(fail(d, 0, 5), OutlierEvent::kCapped);
  EXPECT_FALSE(d.is_ejected(0, clock_.now()));
}

TEST(OutlierDetectorParams, Validate) {
  EXPECT_TRUE(OutlierDetectorParams{}.validate().has_value());
  OutlierDetectorParams p;
  p.max_ejection_percent = 101;
  EXPECT_FALSE(p.validate().has_value());
  p = {};
  p.max_ejection_time = seconds(1);
  EXPECT_FALSE(p.validate().has_value());
  p = {};
  p.consecutive_failures = 0;
  EXPECT_FALSE(p.validate().has_value());
}

TEST(OutlierDetectorConcurrency, CapHoldsUnderConcurrentFailures) {
  OutlierDetectorParams p;
  p.consecutive_failures = 5;
  p.max_ejection_percent = 30;
  constexpr size_t kEndpoints = 20;  // at most 6 ejected
  OutlierDetector d(p, kEndpoints);
  const base::TimePoint now = base::TimePoint{} + seconds(100);
  std::atomic<int> ejections{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20000; ++i) {
        size_t e = static_cast<size_t>(i * 7 + t) % kEndpoints;
        if (d.on_result(e, true, now) == OutlierEvent::kEjected) ++ejections;
        (void)d.is_ejected(e, now);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(d.ejected_count(now), p.max_ejected(kEndpoints));
  EXPECT_EQ(ejections.load(), static_cast<int>(p.max_ejected(kEndpoints)));
}

}  // namespace
}  // namespace skiff::policy
