// Tests for policy::RetryBudget: A6 token arithmetic, the threshold, the load bound under
// total and partial failure (simulated calls), and a concurrency smoke test.
#include "policy/retry_budget.h"

#include <gtest/gtest.h>

#include <random>
#include <thread>
#include <vector>

#include "policy/retry_policy.h"

namespace skiff::policy {
namespace {

TEST(RetryBudget, StartsFull) {
  RetryBudget b({10, 0.1});
  EXPECT_DOUBLE_EQ(b.tokens(), 10.0);
  EXPECT_TRUE(b.retry_allowed());
}

TEST(RetryBudget, FailureTakesOneAndRetriesStopAtHalf) {
  RetryBudget b({10, 0.1});
  EXPECT_TRUE(b.on_failure());   // 9
  EXPECT_TRUE(b.on_failure());   // 8
  EXPECT_TRUE(b.on_failure());   // 7
  EXPECT_TRUE(b.on_failure());   // 6
  EXPECT_FALSE(b.on_failure());  // 5: not above max/2
  EXPECT_DOUBLE_EQ(b.tokens(), 5.0);
  EXPECT_FALSE(b.retry_allowed());
}

TEST(RetryBudget, FloorAtZeroAndCapAtMax) {
  RetryBudget b({3, 0.5});
  for (int i = 0; i < 10; ++i) b.on_failure();
  EXPECT_EQ(b.milli_tokens(), 0);
  for (int i = 0; i < 100; ++i) b.on_success();
  EXPECT_EQ(b.milli_tokens(), 3000);
}

TEST(RetryBudget, SuccessAddsTokenRatioToRecover) {
  RetryBudget b({10, 0.1});
  for (int i = 0; i < 5; ++i) b.on_failure();  // 5.0
  EXPECT_FALSE(b.retry_allowed());
  for (int i = 0; i < 10; ++i) b.on_success();  // 6.0
  EXPECT_DOUBLE_EQ(b.tokens(), 6.0);
  EXPECT_TRUE(b.retry_allowed());
  // Exactly the threshold is not enough: 5.5 -> fail -> 4.5 ... build 5.0 from 4.0 + 10 × 0.1.
  for (int i = 0; i < 2; ++i) b.on_failure();   // 4.0
  for (int i = 0; i < 10; ++i) b.on_success();  // 5.0
  EXPECT_EQ(b.milli_tokens(), 5000);
  EXPECT_FALSE(b.retry_allowed());
  b.on_success();
  EXPECT_TRUE(b.retry_allowed());
}

TEST(RetryBudget, OddMaxTokensThresholdIsHalf) {
  RetryBudget b({5, 1.0});  // threshold 2.5
  b.on_failure();           // 4
  b.on_failure();           // 3
  EXPECT_TRUE(b.retry_allowed());
  EXPECT_FALSE(b.on_failure());  // 2
}

TEST(RetryBudget, RatioKeepsThreeDecimals) {
  RetryBudget b({10, 0.0015});  // rounds to 0.002
  b.on_failure();
  b.on_success();
  EXPECT_EQ(b.milli_tokens(), 9002);
}

TEST(RetryBudget, Validate) {
  EXPECT_TRUE(RetryBudgetParams{}.validate().has_value());
  EXPECT_FALSE((RetryBudgetParams{0, 0.1}.validate()).has_value());
  EXPECT_FALSE((RetryBudgetParams{1001, 0.1}.validate()).has_value());
  EXPECT_FALSE((RetryBudgetParams{10, 0.0}.validate()).has_value());
  EXPECT_FALSE((RetryBudgetParams{10, 0.0001}.validate()).has_value());
  EXPECT_TRUE((RetryBudgetParams{1000, 1000.0}.validate()).has_value());
}

// Drives |calls| calls through RetryPolicy + RetryBudget the way proxy::Call will: record the
// outcome, then decide. Each attempt fails with probability |p_fail| (deterministic RNG).
struct Simulation {
  uint64_t calls = 0, attempts = 0, retries = 0, successes = 0, throttled = 0;
};
Simulation simulate(uint64_t calls, double p_fail, RetryBudgetParams params,
                    unsigned max_attempts) {
  RetryBudget budget(params);
  RetryPolicy policy;
  policy.max_attempts = max_attempts;
  std::mt19937_64 rng(7);
  std::bernoulli_distribution fails(p_fail);
  base::TimePoint now{};
  Simulation sim;
  for (uint64_t c = 0; c < calls; ++c) {
    ++sim.calls;
    RetryState state;
    for (;;) {
      ++sim.attempts;
      RetryInput in;
      in.outcome = fails(rng) ? Outcome::status(kCodeUnavailable) : Outcome::ok();
      in.state = state;
      if (in.outcome.is_ok()) {
        budget.on_success();
        ++sim.successes;
      } else if (policy.costs_budget(in)) {
        in.throttled = !budget.on_failure();
      }
      RetryDecision d = policy.decide(in, now);
      if (d == RetryDecision::give_up(RetryStop::kThrottled)) ++sim.throttled;
      if (d.kind != RetryDecision::Kind::kRetryAfter) break;
      ++sim.retries;
      state.on_retry(d);
    }
  }
  return sim;
}

TEST(RetryBudget, TotalFailureAddsAtMostHalfTheTokensInRetries) {
  // 100% failure, up to 5 attempts per call: without a budget that is 4 retries per call (5x
  // load). With A6 throttling the retries stop after max_tokens/2 of them, for good.
  for (uint32_t max_tokens : {10u, 100u, 1000u}) {
    Simulation sim = simulate(100000, 1.0, {max_tokens, 0.1}, 5);
    EXPECT_LE(sim.retries, max_tokens / 2) << max_tokens;
    // Each call's last failed attempt also costs a token without a retry, so slightly fewer.
    EXPECT_GE(sim.retries, max_tokens / 2 * 4 / 5 - 1) << max_tokens;
    // Extra load from retries, as a fraction of calls.
    EXPECT_LE(static_cast<double>(sim.retries) / sim.calls, 0.005 + 1e-12) << max_tokens;
  }
}

TEST(RetryBudget, PartialFailureRetriesAreBoundedBySuccessesTimesRatio) {
  // Retries need tokens above the threshold; each failed attempt costs one and each success
  // earns token_ratio, so over a long run retries <= max_tokens/2 + token_ratio × successes.
  for (double p : {0.3, 0.6, 0.9}) {
    RetryBudgetParams params{10, 0.1};
    Simulation sim = simulate(50000, p, params, 5);
    const double bound = params.max_tokens / 2.0 + params.token_ratio * sim.successes + 1;
    EXPECT_LE(static_cast<double>(sim.retries), bound) << p;
    EXPECT_GT(sim.retries, 0u) << p;
    EXPECT_GT(sim.throttled, 0u) << p;
  }
}

TEST(RetryBudget, HealthyUpstreamKeepsRetrying) {
  // 1% failure: the budget stays above the threshold, so every failure is retried.
  Simulation sim = simulate(50000, 0.01, {10, 0.1}, 3);
  EXPECT_EQ(sim.throttled, 0u);
  EXPECT_GT(sim.retries, 400u);
}

TEST(RetryBudget, ConcurrentUpdatesAreNotLost) {
  RetryBudget b({1000, 0.5});
  constexpr int kThreads = 4;
  constexpr int kFailuresEach = 100;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&b] {
      for (int i = 0; i < kFailuresEach; ++i) b.on_failure();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(b.milli_tokens(), (1000 - kThreads * kFailuresEach) * 1000);

  threads.clear();
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&b] {
      for (int i = 0; i < 100; ++i) b.on_success();  // +0.5 each: 4 × 50 = 200 tokens
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(b.milli_tokens(), 800 * 1000);

  // Mixed hammering: the count stays within [0, max] throughout.
  threads.clear();
  std::atomic<bool> out_of_range{false};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&b, &out_of_range, t] {
      for (int i = 0; i < 20000; ++i) {
        if ((i + t) % 3 == 0) {
          b.on_failure();
        } else {
          b.on_success();
        }
        int32_t v = b.milli_tokens();
        if (v < 0 || v > 1000 * 1000) out_of_range = true;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_FALSE(out_of_range.load());
}

}  // namespace
}  // namespace skiff::policy
