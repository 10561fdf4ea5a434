// Tests for policy::CircuitBreaker: closed -> open -> half-open -> closed/open transitions,
// probe accounting, stale results, and a concurrency smoke test.
#include "policy/circuit_breaker.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "base/clock.h"

namespace skiff::policy {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Kind = BreakerTicket::Kind;

class CircuitBreakerTest : public ::testing::Test {
 protected:
  CircuitBreakerTest() : breaker_({3, seconds(10), 2}) { clock_.advance(seconds(100)); }

  // One call through the breaker; returns its ticket kind.
  Kind call(bool failure) {
    BreakerTicket t = breaker_.admit(clock_.now());
    if (t.admitted()) breaker_.on_result(t, failure, clock_.now());
    return t.kind;
  }
  void trip() {
    for (int i = 0; i < 3; ++i) call(true);
    ASSERT_EQ(breaker_.state(), BreakerState::kOpen);
  }

  base::FakeClock clock_;
  CircuitBreaker breaker_;
};

TEST_F(CircuitBreakerTest, ClosedAdmitsAndCountsConsecutiveFailures) {
  EXPECT_EQ(breaker_.state(), BreakerState::kClosed);
  EXPECT_EQ(call(true), Kind::kAllowed);
  EXPECT_EQ(call(true), Kind::kAllowed);
  EXPECT_EQ(breaker_.consecutive_failures(), 2u);
  EXPECT_EQ(call(false), Kind::kAllowed);  // a success resets the run
  EXPECT_EQ(breaker_.consecutive_failures(), 0u);
  EXPECT_EQ(call(true), Kind::kAllowed);
  EXPECT_EQ(call(true), Kind::kAllowed);
  EXPECT_EQ(breaker_.state(), BreakerState::kClosed);
  EXPECT_EQ(call(true), Kind::kAllowed);  // the third in a row opens it
  EXPECT_EQ(breaker_.state(), BreakerState::kOpen);
  EXPECT_EQ(breaker_.times_opened(), 1u);
}

TEST_F(CircuitBreakerTest, OpenRejectsWithTimeUntilProbing) {
  trip();
  BreakerTicket t = breaker_.admit(clock_.now());
  EXPECT_EQ(t.kind, Kind::kRejected);
  EXPECT_EQ(t.retry_after, seconds(10));
  clock_.advance(seconds(4));
  EXPECT_EQ(breaker_.admit(clock_.now()).retry_after, seconds(6));
  clock_.advance(milliseconds(5999));
  EXPECT_EQ(breaker_.admit(clock_.now()).kind, Kind::kRejected);
}

TEST_F(CircuitBreakerTest, HalfOpenAfterOpenForLetsKProbesThrough) {
  trip();
  clock_.advance(seconds(10));
  BreakerTicket p1 = breaker_.admit(clock_.now());
  EXPECT_EQ(breaker_.state(), BreakerState::kHalfOpen);
  BreakerTicket p2 = breaker_.admit(clock_.now());
  BreakerTicket p3 = breaker_.admit(clock_.now());
  EXPECT_EQ(p1.kind, Kind::kProbe);
  EXPECT_EQ(p2.kind, Kind::kProbe);
  EXPECT_EQ(p3.kind, Kind::kRejected);  // K = 2 probes out already
}

TEST_F(CircuitBreakerTest, AllProbesSucceedingCloses) {
  trip();
  clock_.advance(seconds(10));
  BreakerTicket p1 = breaker_.admit(clock_.now());
  BreakerTicket p2 = breaker_.admit(clock_.now());
  breaker_.on_result(p1, false, clock_.now());
  EXPECT_EQ(breaker_.state(), BreakerState::kHalfOpen);  // one of two
  breaker_.on_result(p2, false, clock_.now());
  EXPECT_EQ(breaker_.state(), BreakerState::kClosed);
  EXPECT_EQ(breaker_.consecutive_failures(), 0u);
  EXPECT_EQ(call(false), Kind::kAllowed);
}

TEST_F(CircuitBreakerTest, ProbeFailureReopensForAnotherOpenFor) {
  trip();
  clock_.advance(seconds(10));
  BreakerTicket p1 = breaker_.admit(clock_.now());
  BreakerTicket p2 = breaker_.admit(clock_.now());
  breaker_.on_result(p1, false, clock_.now());
  clock_.advance(milliseconds(200));
  breaker_.on_result(p2, true, clock_.now());
  EXPECT_EQ(breaker_.state(), BreakerState::kOpen);
  EXPECT_EQ(breaker_.times_opened(), 2u);
  EXPECT_EQ(breaker_.admit(clock_.now()).retry_after, seconds(10));
  clock_.advance(seconds(10));
  EXPECT_EQ(breaker_.admit(clock_.now()).kind, Kind::kProbe);
}

TEST_F(CircuitBreakerTest, StaleResultsAreIgnored) {
  // Calls admitted while closed finish after the breaker opened: their results say nothing.
  BreakerTicket old_call = breaker_.admit(clock_.now());
  trip();
  breaker_.on_result(old_call, false, clock_.now());
  EXPECT_EQ(breaker_.state(), BreakerState::kOpen);
  clock_.advance(seconds(10));
  BreakerTicket probe = breaker_.admit(clock_.now());
  ASSERT_EQ(probe.kind, Kind::kProbe);
  breaker_.on_result(old_call, true, clock_.now());  // not a probe: ignored
  EXPECT_EQ(breaker_.state(), BreakerState::kHalfOpen);
  breaker_.on_result(probe, true, clock_.now());
  EXPECT_EQ(breaker_.state(), BreakerState::kOpen);
  // A probe of the previous round reporting late does not close the new round.
  clock_.advance(seconds(10));
  BreakerTicket fresh = breaker_.admit(clock_.now());
  breaker_.on_result(probe, false, clock_.now());
  breaker_.on_result(probe, false, clock_.now());
  EXPECT_EQ(breaker_.state(), BreakerState::kHalfOpen);
  breaker_.on_result(fresh, false, clock_.now());
  EXPECT_EQ(breaker_.state(), BreakerState::kHalfOpen);  // still one of two
}

TEST_F(CircuitBreakerTest, OldClosedRoundFailuresDoNotCountAfterReclosing) {
  BreakerTicket straggler = breaker_.admit(clock_.now());
  trip();
  clock_.advance(seconds(10));
  BreakerTicket p1 = breaker_.admit(clock_.now());
  BreakerTicket p2 = breaker_.admit(clock_.now());
  breaker_.on_result(p1, false, clock_.now());
  breaker_.on_result(p2, false, clock_.now());
  ASSERT_EQ(breaker_.state(), BreakerState::kClosed);
  breaker_.on_result(straggler, true, clock_.now());
  EXPECT_EQ(breaker_.consecutive_failures(), 0u);
}

TEST_F(CircuitBreakerTest, AbandonedProbeFreesItsSlot) {
  trip();
  clock_.advance(seconds(10));
  BreakerTicket p1 = breaker_.admit(clock_.now());
  BreakerTicket p2 = breaker_.admit(clock_.now());
  EXPECT_EQ(breaker_.admit(clock_.now()).kind, Kind::kRejected);
  breaker_.on_probe_abandoned(p1);
  BreakerTicket p3 = breaker_.admit(clock_.now());
  EXPECT_EQ(p3.kind, Kind::kProbe);
  breaker_.on_result(p2, false, clock_.now());
  breaker_.on_result(p3, false, clock_.now());
  EXPECT_EQ(breaker_.state(), BreakerState::kClosed);
  breaker_.on_probe_abandoned(BreakerTicket{});  // not a probe: no-op
}

TEST_F(CircuitBreakerTest, ProbesThatNeverReportAreWrittenOffAfterOpenFor) {
  trip();
  clock_.advance(seconds(10));
  (void)breaker_.admit(clock_.now());
  (void)breaker_.admit(clock_.now());
  EXPECT_EQ(breaker_.admit(clock_.now()).kind, Kind::kRejected);
  clock_.advance(seconds(10));  // no results for a whole open_for: new round of probes
  EXPECT_EQ(breaker_.admit(clock_.now()).kind, Kind::kProbe);
  EXPECT_EQ(breaker_.state(), BreakerState::kHalfOpen);
}

TEST_F(CircuitBreakerTest, SingleProbeDefault) {
  CircuitBreaker b;  // 5 failures, 10 s, 1 probe
  for (int i = 0; i < 5; ++i) {
    BreakerTicket t = b.admit(clock_.now());
    b.on_result(t, true, clock_.now());
  }
  ASSERT_EQ(b.state(), BreakerState::kOpen);
  clock_.advance(seconds(10));
  BreakerTicket probe = b.admit(clock_.now());
  EXPECT_EQ(probe.kind, Kind::kProbe);
  EXPECT_EQ(b.admit(clock_.now()).kind, Kind::kRejected);
  b.on_result(probe, false, clock_.now());
  EXPECT_EQ(b.state(), BreakerState::kClosed);
}

TEST_F(CircuitBreakerTest, Validate) {
  EXPECT_TRUE(CircuitBreakerParams{}.validate().has_value());
  EXPECT_FALSE((CircuitBreakerParams{0, seconds(1), 1}.validate()).has_value());
  EXPECT_FALSE((CircuitBreakerParams{1, seconds(0), 1}.validate()).has_value());
  EXPECT_FALSE((CircuitBreakerParams{1, seconds(1), 0}.validate()).has_value());
  EXPECT_EQ(to_string(BreakerState::kHalfOpen), "half-open");
}

TEST(CircuitBreakerConcurrency, OpensOnceAndAdmitsAtMostKProbes) {
  constexpr int kThreads = 4;
  constexpr uint32_t kFailures = 50;
  constexpr uint32_t kProbes = 3;
  CircuitBreaker breaker({kFailures, seconds(10), kProbes});
  const base::TimePoint t0 = base::TimePoint{} + seconds(100);

  // Every admitted call fails. Admissions in the closed state are bounded by N plus the calls
  // in flight when the N-th failure lands (at most one per thread).
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        BreakerTicket ticket = breaker.admit(t0);
        if (!ticket.admitted()) continue;
        ++allowed;
        breaker.on_result(ticket, true, t0);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(breaker.state(), BreakerState::kOpen);
  EXPECT_EQ(breaker.times_opened(), 1u);
  EXPECT_GE(allowed.load(), static_cast<int>(kFailures));
  EXPECT_LE(allowed.load(), static_cast<int>(kFailures) + kThreads);

  // Past open_for, everyone hammers admit() and nobody reports: exactly K probes get through.
  threads.clear();
  std::atomic<int> probes{0};
  const base::TimePoint t1 = t0 + seconds(10);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        if (breaker.admit(t1).kind == Kind::kProbe) ++probes;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(probes.load(), static_cast<int>(kProbes));
  EXPECT_EQ(breaker.state(), BreakerState::kHalfOpen);
}

}  // namespace
}  // namespace skiff::policy
