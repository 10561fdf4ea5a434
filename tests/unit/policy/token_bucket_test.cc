// Tests for policy::TokenBucket (GCRA): starts full, burst, refill by elapsed time, retry_after,
// fractional rates, and a concurrency test of the admission bound.
#include "policy/token_bucket.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "base/clock.h"

namespace skiff::policy {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

class TokenBucketTest : public ::testing::Test {
 protected:
  TokenBucketTest() { clock_.advance(seconds(1000)); }
  int drain(TokenBucket& b) {
    int n = 0;
    while (b.try_acquire(clock_.now()).allowed) ++n;
    return n;
  }
  base::FakeClock clock_;
};

TEST_F(TokenBucketTest, StartsFullWithBurstTokens) {
  TokenBucket b({10.0, 5});
  EXPECT_DOUBLE_EQ(b.available(clock_.now()), 5.0);
  EXPECT_EQ(drain(b), 5);
  EXPECT_DOUBLE_EQ(b.available(clock_.now()), 0.0);
}

TEST_F(TokenBucketTest, RejectionSaysWhenTheNextTokenArrives) {
  TokenBucket b({10.0, 2});  // a token every 100 ms
  drain(b);
  Admission a = b.try_acquire(clock_.now());
  EXPECT_FALSE(a.allowed);
  EXPECT_EQ(a.retry_after, milliseconds(100));
  clock_.advance(milliseconds(30));
  EXPECT_EQ(b.try_acquire(clock_.now()).retry_after, milliseconds(70));
  clock_.advance(milliseconds(70));
  EXPECT_TRUE(b.try_acquire(clock_.now()).allowed);
  EXPECT_FALSE(b.try_acquire(clock_.now()).allowed);
}

TEST_F(TokenBucketTest, RefillsByElapsedTimeUpToBurst) {
  TokenBucket b({10.0, 5});
  drain(b);
  clock_.advance(milliseconds(250));  // 2.5 tokens
  EXPECT_EQ(drain(b), 2);
  clock_.advance(seconds(60));  // far more than burst
  EXPECT_DOUBLE_EQ(b.available(clock_.now()), 5.0);
  EXPECT_EQ(drain(b), 5);
}

TEST_F(TokenBucketTest, SteadyRateOverTime) {
  TokenBucket b({1000.0, 100});
  int admitted = drain(b);  // the burst
  for (int ms = 0; ms < 10000; ++ms) {
    clock_.advance(milliseconds(1));
    admitted += drain(b);
  }
  EXPECT_EQ(admitted, 100 + 10000);  // burst + rate × 10 s
}

TEST_F(TokenBucketTest, FractionalRate) {
  TokenBucket b({0.5, 1});  // one every 2 s
  EXPECT_TRUE(b.try_acquire(clock_.now()).allowed);
  Admission a = b.try_acquire(clock_.now());
  EXPECT_FALSE(a.allowed);
  EXPECT_EQ(a.retry_after, seconds(2));
  clock_.advance(milliseconds(1999));
  EXPECT_FALSE(b.try_acquire(clock_.now()).allowed);
  clock_.advance(milliseconds(1));
  EXPECT_TRUE(b.try_acquire(clock_.now()).allowed);
}

TEST_F(TokenBucketTest, RejectionsDoNotConsume) {
  TokenBucket b({10.0, 1});
  drain(b);
  for (int i = 0; i < 1000; ++i) EXPECT_FALSE(b.try_acquire(clock_.now()).allowed);
  clock_.advance(milliseconds(100));
  EXPECT_TRUE(b.try_acquire(clock_.now()).allowed);
}

TEST(GcraStep, MatchesTokenBucketArithmetic) {
  // interval 10, burst 3 (tolerance 30): three at t=0, then one per 10.
  int64_t tat = 0;
  for (int i = 0; i < 3; ++i) {
    GcraStep s = gcra_step(tat, 0, 10, 30);
    ASSERT_TRUE(s.allowed);
    tat = s.tat;
  }
  GcraStep s = gcra_step(tat, 0, 10, 30);
  EXPECT_FALSE(s.allowed);
  EXPECT_EQ(s.wait, 10);
  EXPECT_EQ(s.tat, tat);
  EXPECT_TRUE(gcra_step(tat, 10, 10, 30).allowed);
}

TEST(TokenBucketParams, Validate) {
  EXPECT_TRUE(TokenBucketParams{}.validate().has_value());
  EXPECT_FALSE((TokenBucketParams{0.0, 1}.validate()).has_value());
  EXPECT_FALSE((TokenBucketParams{10.0, 0}.validate()).has_value());
  EXPECT_FALSE((TokenBucketParams{0.001, 4000000000u}.validate()).has_value());
}

TEST(TokenBucketConcurrency, AdmitsNoMoreThanBurstPlusRateTimesTime) {
  // Four threads sweep the same 2 s of time concurrently (each with its own monotone |now|,
  // interleaved arbitrarily with the others).
  constexpr double kRate = 5000.0;
  constexpr uint32_t kBurst = 50;
  TokenBucket b({kRate, kBurst});
  const base::TimePoint t0 = base::TimePoint{} + seconds(10);
  constexpr int kSteps = 200000;
  const nanoseconds step(10000);  // 10 µs: 2 s in total
  std::atomic<int64_t> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      int64_t mine = 0;
      for (int i = 0; i < kSteps; ++i) {
        if (b.try_acquire(t0 + step * i).allowed) ++mine;
      }
      admitted += mine;
    });
  }
  for (auto& t : threads) t.join();
  const double seconds_swept = std::chrono::duration<double>(step * (kSteps - 1)).count();
  const double bound = kBurst + kRate * seconds_swept + 1;
  EXPECT_LE(static_cast<double>(admitted.load()), bound);
  // Demand (4 × 100k/s) far exceeds the rate, so the bucket should run close to its bound.
  EXPECT_GE(static_cast<double>(admitted.load()), 0.9 * bound);
}

}  // namespace
}  // namespace skiff::policy
