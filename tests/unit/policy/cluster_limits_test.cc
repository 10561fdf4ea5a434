// Tests for policy::ClusterLimits: Envoy-like defaults, acquire/release, the retry budget
// variant, Lease, and a concurrency test that the maximum is never exceeded.
#include "policy/cluster_limits.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace skiff::policy {
namespace {

using R = ClusterResource;

TEST(ClusterLimits, EnvoyDefaults) {
  ClusterLimits limits;
  EXPECT_EQ(limits.limit(R::kConnections), 1024u);
  EXPECT_EQ(limits.limit(R::kPendingRequests), 1024u);
  EXPECT_EQ(limits.limit(R::kRequests), 1024u);
  EXPECT_EQ(limits.limit(R::kRetries), 3u);
}

TEST(ClusterLimits, AcquireUpToTheMaximumThenOverflow) {
  ClusterLimitsParams p;
  p.max_requests = 2;
  ClusterLimits limits(p);
  EXPECT_TRUE(limits.try_acquire(R::kRequests));
  EXPECT_TRUE(limits.try_acquire(R::kRequests));
  EXPECT_FALSE(limits.try_acquire(R::kRequests));
  EXPECT_EQ(limits.active(R::kRequests), 2u);  // the failed attempt left no trace
  EXPECT_EQ(limits.remaining(R::kRequests), 0u);
  limits.release(R::kRequests);
  EXPECT_EQ(limits.remaining(R::kRequests), 1u);
  EXPECT_TRUE(limits.try_acquire(R::kRequests));
  // Resources are independent.
  EXPECT_TRUE(limits.try_acquire(R::kConnections));
  EXPECT_EQ(limits.active(R::kConnections), 1u);
}

TEST(ClusterLimits, RetriesStaticMaximum) {
  ClusterLimits limits;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limits.try_acquire(R::kRetries));
  EXPECT_FALSE(limits.try_acquire(R::kRetries));
}

TEST(ClusterLimits, RetryBudgetScalesWithActiveAndPending) {
  ClusterLimitsParams p;
  p.retry_budget = RetryConcurrencyBudget{20.0, 3};
  ClusterLimits limits(p);
  EXPECT_EQ(limits.limit(R::kRetries), 3u);  // the floor
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(limits.try_acquire(R::kRequests));
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(limits.try_acquire(R::kPendingRequests));
  EXPECT_EQ(limits.limit(R::kRetries), 10u);  // 20 % of 50
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(limits.try_acquire(R::kRetries));
  EXPECT_FALSE(limits.try_acquire(R::kRetries));
}

TEST(ClusterLimits, LeaseReleasesOnDestructionAndMove) {
  ClusterLimitsParams p;
  p.max_requests = 1;
  ClusterLimits limits(p);
  {
    ClusterLimits::Lease a = limits.acquire(R::kRequests);
    EXPECT_TRUE(a);
    EXPECT_FALSE(limits.acquire(R::kRequests));  // overflow: empty lease
    ClusterLimits::Lease b = std::move(a);
    EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move): checking the moved-from state
    EXPECT_TRUE(b);
    EXPECT_EQ(limits.active(R::kRequests), 1u);
  }
  EXPECT_EQ(limits.active(R::kRequests), 0u);
  ClusterLimits::Lease c = limits.acquire(R::kRequests);
  c.reset();
  c.reset();  // idempotent
  EXPECT_EQ(limits.active(R::kRequests), 0u);
  ClusterLimits::Lease d = limits.acquire(R::kRequests);
  d = ClusterLimits::Lease();  // move-assign releases the old unit
  EXPECT_EQ(limits.active(R::kRequests), 0u);
}

TEST(ClusterLimits, Validate) {
  EXPECT_TRUE(ClusterLimitsParams{}.validate().has_value());
  ClusterLimitsParams p;
  p.max_requests = 0;
  EXPECT_FALSE(p.validate().has_value());
  p = {};
  p.retry_budget = RetryConcurrencyBudget{150.0, 3};
  EXPECT_FALSE(p.validate().has_value());
  EXPECT_EQ(to_string(R::kPendingRequests), "pending_requests");
}

TEST(ClusterLimitsConcurrency, NeverMoreHoldersThanTheMaximum) {
  constexpr uint32_t kMax = 8;
  ClusterLimitsParams p;
  p.max_requests = kMax;
  ClusterLimits limits(p);
  std::atomic<int> holders{0};
  std::atomic<int> peak{0};
  std::atomic<int> granted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        if (!limits.try_acquire(R::kRequests)) continue;
        ++granted;
        int now = ++holders;
        int seen = peak.load();
        while (now > seen && !peak.compare_exchange_weak(seen, now)) {
        }
        --holders;
        limits.release(R::kRequests);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(peak.load(), static_cast<int>(kMax));
  EXPECT_GT(granted.load(), 0);
  EXPECT_EQ(limits.active(R::kRequests), 0u);
}

}  // namespace
}  // namespace skiff::policy
