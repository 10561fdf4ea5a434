// Tests for policy::MethodBreakers: one breaker per method on a multi-method route, one for a
// single-method route, the shared overflow breaker once the table is full, and concurrent
// lookups of the same names agreeing on one breaker each.
#include "policy/method_breakers.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"

namespace skiff::policy {
namespace {

using std::chrono::seconds;

const CircuitBreakerParams kParams{2, seconds(10), 1};

void fail_twice(CircuitBreaker& breaker, base::TimePoint now) {
  for (int i = 0; i < 2; ++i) {
    BreakerTicket t = breaker.admit(now);
    ASSERT_TRUE(t.admitted());
    breaker.on_result(t, /*failure=*/true, now);
  }
}

TEST(MethodBreakers, SingleMethodRouteHasOneBreaker) {
  MethodBreakers breakers(kParams, 1);
  EXPECT_EQ(&breakers.for_method("/a.S/M"), &breakers.for_method("/a.S/Other"));
  std::vector<std::string> names;
  breakers.for_each(
      [&](std::string_view name, const CircuitBreaker&) { names.emplace_back(name); });
  EXPECT_EQ(names, std::vector<std::string>{""});
}

TEST(MethodBreakers, AFailingMethodDoesNotOpenItsNeighbours) {
  base::FakeClock clock;
  clock.advance(seconds(100));
  MethodBreakers breakers(kParams, kMaxBreakerMethods);
  CircuitBreaker& bad = breakers.for_method("/a.S/Bad");
  CircuitBreaker& good = breakers.for_method("/a.S/Good");
  ASSERT_NE(&bad, &good);
  EXPECT_EQ(&breakers.for_method("/a.S/Bad"), &bad) << "the same method finds its breaker again";
  fail_twice(bad, clock.now());
  EXPECT_EQ(bad.state(), BreakerState::kOpen);
  EXPECT_EQ(good.state(), BreakerState::kClosed);
  EXPECT_TRUE(good.admit(clock.now()).admitted());
  EXPECT_EQ(breakers.worst_state(), BreakerState::kOpen);
  EXPECT_EQ(breakers.times_opened(), 1u);
}

TEST(MethodBreakers, MethodsPastTheTableShareTheOverflowBreaker) {
  MethodBreakers breakers(kParams, 4);
  std::vector<CircuitBreaker*> own;
  for (int i = 0; i < 4; ++i) own.push_back(&breakers.for_method("/a.S/M" + std::to_string(i)));
  for (size_t i = 0; i < own.size(); ++i) {
    for (size_t j = i + 1; j < own.size(); ++j) EXPECT_NE(own[i], own[j]);
  }
  CircuitBreaker& extra1 = breakers.for_method("/a.S/Extra1");
  CircuitBreaker& extra2 = breakers.for_method("/a.S/Extra2");
  EXPECT_EQ(&extra1, &extra2);
  for (CircuitBreaker* b : own) EXPECT_NE(b, &extra1);
  // Known methods keep their own breakers once the table is full.
  EXPECT_EQ(&breakers.for_method("/a.S/M2"), own[2]);

  std::map<std::string, const CircuitBreaker*> listed;
  breakers.for_each(
      [&](std::string_view name, const CircuitBreaker& b) { listed[std::string(name)] = &b; });
  ASSERT_EQ(listed.size(), 5u);
  EXPECT_EQ(listed.at(std::string(MethodBreakers::kOverflowName)), &extra1);
  EXPECT_EQ(listed.at("/a.S/M0"), own[0]);
}

TEST(MethodBreakers, OverflowIsNotListedUntilTheTableIsFull) {
  MethodBreakers breakers(kParams, 4);
  breakers.for_method("/a.S/M");
  int listed = 0;
  breakers.for_each([&](std::string_view name, const CircuitBreaker&) {
    ++listed;
    EXPECT_EQ(name, "/a.S/M");
  });
  EXPECT_EQ(listed, 1);
}

TEST(MethodBreakers, ConcurrentLookupsAgreeOnOneBreakerPerMethod) {
  constexpr int kThreads = 8;
  constexpr int kMethods = 32;
  MethodBreakers breakers(kParams, kMaxBreakerMethods);
  std::vector<std::vector<CircuitBreaker*>> seen(kThreads, std::vector<CircuitBreaker*>(kMethods));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int m = 0; m < kMethods; ++m) {
        // Each thread walks the names in its own order, so claims race.
        const int method = (m * 7 + t * 5) % kMethods;
        seen[t][method] = &breakers.for_method("/a.S/M" + std::to_string(method));
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (int m = 0; m < kMethods; ++m) {
    for (int t = 1; t < kThreads; ++t) EXPECT_EQ(seen[t][m], seen[0][m]) << "method " << m;
    for (int other = 0; other < m; ++other) EXPECT_NE(seen[0][m], seen[0][other]);
  }
}

}  // namespace
}  // namespace skiff::policy
