// Tests for policy::HedgingPolicy: when copies go out, how each response is classified, and
// A6's pushback, throttling, deadline and max_attempts rules, with a FakeClock.
#include "policy/hedging_policy.h"

#include <gtest/gtest.h>

#include "base/clock.h"

namespace skiff::policy {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using TimingKind = HedgeTiming::Kind;

class HedgingTest : public ::testing::Test {
 protected:
  HedgingTest() {
    clock_.advance(seconds(10));
    policy_.hedging_delay = milliseconds(100);
    policy_.max_attempts = 3;
    policy_.non_fatal = FailureCodes().add(kCodeUnavailable).add(ProxyFailure::kReset);
  }
  HedgeTiming next() { return policy_.next_hedge(state_, gate_, clock_.now()); }
  void send() {
    ASSERT_EQ(next().kind, TimingKind::kSendNow);
    policy_.on_sent(state_, clock_.now());
  }
  HedgeAction respond(Outcome outcome, Pushback pushback = {}) {
    HedgeResponse r;
    r.outcome = outcome;
    r.pushback = pushback;
    return policy_.on_response(state_, r, gate_, clock_.now());
  }

  base::FakeClock clock_;
  HedgingPolicy policy_;
  HedgeState state_;
  HedgeGate gate_;
};

TEST_F(HedgingTest, FirstCopyGoesAtOnceEvenWhenThrottled) {
  gate_.throttled = true;
  EXPECT_EQ(next(), (HedgeTiming{TimingKind::kSendNow, clock_.now()}));
}

TEST_F(HedgingTest, CopiesFollowEveryHedgingDelayUpToMaxAttempts) {
  const auto t0 = clock_.now();
  send();
  EXPECT_EQ(next(), (HedgeTiming{TimingKind::kWaitUntil, t0 + milliseconds(100)}));
  clock_.advance(milliseconds(99));
  EXPECT_EQ(next().kind, TimingKind::kWaitUntil);
  clock_.advance(milliseconds(1));
  send();  // second copy at 100 ms
  EXPECT_EQ(next(), (HedgeTiming{TimingKind::kWaitUntil, t0 + milliseconds(200)}));
  clock_.advance(milliseconds(100));
  send();  // third at 200 ms
  EXPECT_EQ(state_.sent, 3u);
  EXPECT_EQ(state_.outstanding, 3u);
  EXPECT_EQ(next().kind, TimingKind::kNoMore);
}

TEST_F(HedgingTest, ZeroDelaySendsAllCopiesAtOnce) {
  policy_.hedging_delay = base::Duration::zero();
  send();
  send();
  send();
  EXPECT_EQ(next().kind, TimingKind::kNoMore);
}

TEST_F(HedgingTest, SuccessCommits) {
  send();
  clock_.advance(milliseconds(100));
  send();
  EXPECT_EQ(respond(Outcome::ok()), HedgeAction::kCommit);
  EXPECT_TRUE(state_.stopped);
  EXPECT_EQ(next().kind, TimingKind::kNoMore);
  EXPECT_EQ(state_.outstanding, 1u);  // the proxy cancels it
  HedgingPolicy::on_cancelled(state_);
  EXPECT_EQ(state_.outstanding, 0u);
}

TEST_F(HedgingTest, ResponseHeadersCommitWhateverTheStatusWillBe) {
  send();
  HedgeResponse r;
  r.headers = true;
  r.outcome = Outcome::status(kCodeUnavailable);  // status unknown yet; headers decide
  EXPECT_EQ(policy_.on_response(state_, r, gate_, clock_.now()), HedgeAction::kCommit);
}

TEST_F(HedgingTest, FatalStatusEndsTheCall) {
  send();
  clock_.advance(milliseconds(100));
  send();
  EXPECT_EQ(respond(Outcome::status(kCodeInvalidArgument)), HedgeAction::kFatal);
  EXPECT_EQ(next().kind, TimingKind::kNoMore);
  // A proxy failure not in non_fatal is fatal too.
  state_ = {};
  send();
  EXPECT_EQ(respond(Outcome::failure(ProxyFailure::kConnectFailure)), HedgeAction::kFatal);
}

TEST_F(HedgingTest, NonFatalSendsTheNextCopyAtOnce) {
  const auto t0 = clock_.now();
  send();
  clock_.advance(milliseconds(30));
  EXPECT_EQ(respond(Outcome::status(kCodeUnavailable)), HedgeAction::kSendNext);
  send();  // at 30 ms instead of 100 ms
  // Later copies resume hedging_delay after this one.
  EXPECT_EQ(next(), (HedgeTiming{TimingKind::kWaitUntil, t0 + milliseconds(130)}));
}

TEST_F(HedgingTest, NonFatalWaitsForOthersWhenNoCopyIsLeft) {
  policy_.max_attempts = 2;
  send();
  clock_.advance(milliseconds(100));
  send();
  EXPECT_EQ(respond(Outcome::status(kCodeUnavailable)), HedgeAction::kWaitForOthers);
  EXPECT_EQ(state_.outstanding, 1u);
  // The last one fails too: nothing outstanding, nothing to send.
  EXPECT_EQ(respond(Outcome::failure(ProxyFailure::kReset)), HedgeAction::kGiveUp);
}

TEST_F(HedgingTest, PushbackStopEndsCopies) {
  send();
  clock_.advance(milliseconds(100));
  send();
  EXPECT_EQ(respond(Outcome::status(kCodeUnavailable), Pushback::stop()),
            HedgeAction::kWaitForOthers);
  EXPECT_EQ(next().kind, TimingKind::kNoMore);
  EXPECT_EQ(respond(Outcome::status(kCodeUnavailable)), HedgeAction::kGiveUp);
}

TEST_F(HedgingTest, PushbackDelaySchedulesTheNextCopy) {
  const auto t0 = clock_.now();
  send();
  clock_.advance(milliseconds(10));
  // The only copy answered with "retry in 500 ms": nothing outstanding, one copy scheduled.
  EXPECT_EQ(respond(Outcome::status(kCodeUnavailable), Pushback::retry_after(milliseconds(500))),
            HedgeAction::kWaitForOthers);
  EXPECT_EQ(state_.outstanding, 0u);
  EXPECT_EQ(next(), (HedgeTiming{TimingKind::kWaitUntil, t0 + milliseconds(510)}));
  clock_.advance(milliseconds(500));
  send();
  // Subsequent copies resume at n + hedging_delay.
  EXPECT_EQ(next(), (HedgeTiming{TimingKind::kWaitUntil, t0 + milliseconds(610)}));
}

TEST_F(HedgingTest, LocalRejectionEndsCopies) {
  send();
  HedgeResponse r;
  r.outcome = Outcome::status(kCodeUnavailable);
  r.local_rejection = true;
  EXPECT_EQ(policy_.on_response(state_, r, gate_, clock_.now()), HedgeAction::kGiveUp);
}

TEST_F(HedgingTest, ThrottlingIsCheckedWhenACopyIsDue) {
  send();
  gate_.throttled = true;
  // Not due yet: the timer is still armed (the budget may recover).
  EXPECT_EQ(next().kind, TimingKind::kWaitUntil);
  clock_.advance(milliseconds(100));
  EXPECT_EQ(next().kind, TimingKind::kNoMore);
  gate_.throttled = false;
  EXPECT_EQ(next().kind, TimingKind::kSendNow);
  // A non-fatal response while throttled does not send the next copy.
  gate_.throttled = true;
  EXPECT_EQ(respond(Outcome::status(kCodeUnavailable)), HedgeAction::kGiveUp);
}

TEST_F(HedgingTest, NoCopyAfterBufferOverflow) {
  send();
  gate_.buffer_overflowed = true;
  EXPECT_EQ(next().kind, TimingKind::kNoMore);
}

TEST_F(HedgingTest, NoCopyThatWouldStartAtOrAfterTheDeadline) {
  gate_.deadline = Deadline::at(clock_.now() + milliseconds(150));
  send();
  EXPECT_EQ(next().kind, TimingKind::kWaitUntil);  // 100 ms < 150 ms
  clock_.advance(milliseconds(100));
  send();
  EXPECT_EQ(next().kind, TimingKind::kNoMore);  // 200 ms is past the deadline
}

TEST_F(HedgingTest, MaxAttemptsCappedAtFive) {
  policy_.max_attempts = 8;
  policy_.hedging_delay = base::Duration::zero();
  for (int i = 0; i < 5; ++i) send();
  EXPECT_EQ(next().kind, TimingKind::kNoMore);
  EXPECT_FALSE(policy_.validate().has_value());
}

TEST_F(HedgingTest, CostsBudget) {
  HedgeResponse r;
  EXPECT_FALSE(policy_.costs_budget(r));
  r.outcome = Outcome::status(kCodeUnavailable);
  EXPECT_TRUE(policy_.costs_budget(r));
  r.outcome = Outcome::status(kCodeNotFound);
  EXPECT_FALSE(policy_.costs_budget(r));
  r.pushback = Pushback::stop();
  EXPECT_TRUE(policy_.costs_budget(r));
}

TEST_F(HedgingTest, Validate) {
  EXPECT_TRUE(policy_.validate().has_value());
  policy_.max_attempts = 0;
  EXPECT_FALSE(policy_.validate().has_value());
  policy_.max_attempts = 2;
  policy_.hedging_delay = -milliseconds(1);
  EXPECT_FALSE(policy_.validate().has_value());
  EXPECT_EQ(to_string(HedgeAction::kWaitForOthers), "wait for others");
}

}  // namespace
}  // namespace skiff::policy
