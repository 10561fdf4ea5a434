// Tests for policy::KeyedTokenBuckets: per-key limits, fixed memory under 100k distinct keys,
// a limited key stays limited while others flood, and concurrent use of one key.
#include "policy/keyed_token_buckets.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"

namespace skiff::policy {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

class KeyedTest : public ::testing::Test {
 protected:
  KeyedTest() { clock_.advance(seconds(1000)); }
  int drain(KeyedTokenBuckets& b, std::string_view key) {
    int n = 0;
    while (b.try_acquire(key, clock_.now()).allowed) ++n;
    return n;
  }
  base::FakeClock clock_;
};

TEST_F(KeyedTest, EachKeyHasItsOwnBucket) {
  KeyedTokenBuckets b({10.0, 3, 64, 1});
  EXPECT_EQ(drain(b, "spiffe://mesh/ns/a/sa/x"), 3);
  EXPECT_EQ(drain(b, "spiffe://mesh/ns/a/sa/y"), 3);
  EXPECT_EQ(drain(b, ""), 3);  // no identity is one more key
  Admission a = b.try_acquire("spiffe://mesh/ns/a/sa/x", clock_.now());
  EXPECT_FALSE(a.allowed);
  EXPECT_EQ(a.retry_after, milliseconds(100));
  clock_.advance(milliseconds(100));
  EXPECT_EQ(drain(b, "spiffe://mesh/ns/a/sa/x"), 1);
  EXPECT_EQ(drain(b, "spiffe://mesh/ns/a/sa/y"), 1);
}

TEST_F(KeyedTest, CapacityIsFixedAndRoundedToAPowerOfTwo) {
  EXPECT_EQ(KeyedTokenBuckets({10.0, 1, 1000, 0}).capacity(), 1024u);
  EXPECT_EQ(KeyedTokenBuckets({10.0, 1, 1, 0}).capacity(), 4u);
}

TEST_F(KeyedTest, HundredThousandDistinctKeysKeepMemoryBoundedAndTheLimitedKeyLimited) {
  KeyedTokenBuckets b({1.0, 10, 1024, 12345});  // 1/s per key, burst 10
  const size_t capacity = b.capacity();
  const std::string victim = "tenant-heavy";
  ASSERT_EQ(drain(b, victim), 10);  // the heavy key is at its limit

  // 100k distinct keys, each sending one request, 1 ms apart (100 s of flood).
  int victim_admitted = 0;
  int flood_admitted = 0;
  for (int i = 0; i < 100000; ++i) {
    clock_.advance(milliseconds(1));
    if (b.try_acquire("flood-" + std::to_string(i), clock_.now()).allowed) ++flood_admitted;
    if (i % 10 == 0 && b.try_acquire(victim, clock_.now()).allowed) ++victim_admitted;
  }
  EXPECT_EQ(b.capacity(), capacity);  // nothing grew
  EXPECT_EQ(flood_admitted, 100000);  // each new key has a fresh bucket
  // 100 s at 1/s: the heavy key got its rate, no more (its bucket was never the fullest in
  // its set, so it was never evicted and refilled).
  EXPECT_LE(victim_admitted, 100 + 1);
  EXPECT_GE(victim_admitted, 99);
}

TEST_F(KeyedTest, IdleKeysAreEvictedWithoutLosingAnything) {
  KeyedTokenBuckets b({10.0, 2, 4, 0});  // one set of 4 ways
  for (int i = 0; i < 4; ++i) drain(b, "k" + std::to_string(i));
  clock_.advance(seconds(10));  // all full again
  // New keys replace them; the evicted were full, so they come back as they were.
  for (int i = 4; i < 8; ++i) EXPECT_EQ(drain(b, "k" + std::to_string(i)), 2);
  EXPECT_EQ(b.evictions(), 0u);  // none of the evicted buckets was in use
  EXPECT_EQ(drain(b, "k0"), 2);
}

TEST_F(KeyedTest, EvictingAKeyInUseIsCounted) {
  KeyedTokenBuckets b({1.0, 5, 4, 0});
  for (int i = 0; i < 4; ++i) drain(b, "k" + std::to_string(i));
  EXPECT_TRUE(b.try_acquire("new", clock_.now()).allowed);
  EXPECT_EQ(b.evictions(), 1u);
}

TEST_F(KeyedTest, SeedChangesPlacementNotBehaviour) {
  KeyedTokenBuckets a({10.0, 2, 64, 1});
  KeyedTokenBuckets b({10.0, 2, 64, 2});
  EXPECT_EQ(drain(a, "x"), 2);
  EXPECT_EQ(drain(b, "x"), 2);
}

TEST(KeyedTokenBucketsParams, Validate) {
  EXPECT_TRUE(KeyedTokenBucketsParams{}.validate().has_value());
  EXPECT_FALSE((KeyedTokenBucketsParams{2e6, 1, 64, 0}.validate()).has_value());
  EXPECT_FALSE((KeyedTokenBucketsParams{10.0, 0, 64, 0}.validate()).has_value());
  EXPECT_FALSE((KeyedTokenBucketsParams{10.0, 1, 0, 0}.validate()).has_value());
}

TEST(KeyedTokenBucketsConcurrency, OneKeyAdmitsNoMoreThanBurstPlusRateTimesTime) {
  constexpr double kRate = 2000.0;
  constexpr uint32_t kBurst = 20;
  KeyedTokenBuckets b({kRate, kBurst, 256, 99});
  const base::TimePoint t0 = base::TimePoint{} + seconds(10);
  constexpr int kSteps = 100000;
  const nanoseconds step(10000);  // 1 s in total
  std::atomic<int64_t> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      int64_t mine = 0;
      for (int i = 0; i < kSteps; ++i) {
        if (b.try_acquire("shared", t0 + step * i).allowed) ++mine;
        // Noise on other keys in the same table.
        (void)b.try_acquire("noise-" + std::to_string(t) + "-" + std::to_string(i % 500),
                            t0 + step * i);
      }
      admitted += mine;
    });
  }
  for (auto& t : threads) t.join();
  const double bound =
      kBurst + kRate * std::chrono::duration<double>(step * (kSteps - 1)).count() + 1;
  // Slack: a concurrent first insert of the key may create it twice (one extra burst), and an
  // eviction under noise may refill it once more; both bounded, documented in the header.
  EXPECT_LE(static_cast<double>(admitted.load()), bound + 2 * kBurst);
  EXPECT_GE(static_cast<double>(admitted.load()), 0.5 * bound);
}

}  // namespace
}  // namespace skiff::policy
