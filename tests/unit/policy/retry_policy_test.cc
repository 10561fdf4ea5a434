// Tests for policy::RetryPolicy::decide: every branch, in the order the header documents, plus
// RetryState bookkeeping and a whole call driven with a FakeClock.
#include "policy/retry_policy.h"

#include <gtest/gtest.h>

#include "base/clock.h"

namespace skiff::policy {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Kind = RetryDecision::Kind;

const Outcome kUnavailable = Outcome::status(kCodeUnavailable);
const Outcome kRefused = Outcome::failure(ProxyFailure::kRefusedStream);

class RetryPolicyTest : public ::testing::Test {
 protected:
  RetryPolicyTest() {
    clock_.advance(seconds(100));
    policy_.max_attempts = 3;
    policy_.backoff = Backoff{milliseconds(25), milliseconds(250), 2.0};
  }
  RetryInput failed(Outcome outcome = kUnavailable) {
    RetryInput in;
    in.outcome = outcome;
    in.jitter01 = 0.5;
    return in;
  }
  RetryDecision decide(const RetryInput& in) { return policy_.decide(in, clock_.now()); }

  base::FakeClock clock_;
  RetryPolicy policy_;
};

TEST_F(RetryPolicyTest, OkCommits) {
  EXPECT_EQ(decide(failed(Outcome::ok())), RetryDecision::commit());
}

TEST_F(RetryPolicyTest, CodeNotInRetryOnCommits) {
  EXPECT_EQ(decide(failed(Outcome::status(kCodeInvalidArgument))).kind, Kind::kCommit);
  EXPECT_EQ(decide(failed(Outcome::status(kCodeResourceExhausted))).kind, Kind::kCommit);
  policy_.retry_on = FailureCodes().add(kCodeResourceExhausted);
  EXPECT_EQ(decide(failed(Outcome::status(kCodeResourceExhausted))).kind, Kind::kRetryAfter);
  EXPECT_EQ(decide(failed(kUnavailable)).kind, Kind::kCommit);
  EXPECT_EQ(decide(failed(Outcome::failure(ProxyFailure::kReset))).kind, Kind::kCommit);
}

TEST_F(RetryPolicyTest, DefaultRetryOnIsTheFailureSetPlusRefusedStream) {
  RetryPolicy p;
  EXPECT_EQ(p.max_attempts, 2u);
  EXPECT_EQ(p.retry_on, FailureCodes::defaults().add(ProxyFailure::kRefusedStream));
}

TEST_F(RetryPolicyTest, RetryableFailureRetriesAfterJitteredBackoff) {
  RetryDecision d = decide(failed());
  EXPECT_EQ(d.kind, Kind::kRetryAfter);
  EXPECT_EQ(d.delay, base::Duration(milliseconds(25)) / 2);  // jitter 0.5 of the first ceiling
  EXPECT_FALSE(d.transparent);
  EXPECT_FALSE(d.pushback);

  RetryInput second = failed();
  second.state.attempts = 2;
  second.state.backoff_step = 1;
  EXPECT_EQ(decide(second).delay, milliseconds(25));  // 0.5 × 50 ms
}

TEST_F(RetryPolicyTest, ProxyFailuresRetryByDefault) {
  for (auto f :
       {ProxyFailure::kConnectFailure, ProxyFailure::kReset, ProxyFailure::kPerTryTimeout}) {
    EXPECT_EQ(decide(failed(Outcome::failure(f))).kind, Kind::kRetryAfter) << to_string(f);
  }
}

TEST_F(RetryPolicyTest, OwnRejectionIsNeverRetried) {
  RetryInput in = failed();
  in.local_rejection = true;
  EXPECT_EQ(decide(in), RetryDecision::give_up(RetryStop::kLocalRejection));
  // Not even a REFUSED_STREAM that would be transparent.
  in.outcome = kRefused;
  EXPECT_EQ(decide(in), RetryDecision::give_up(RetryStop::kLocalRejection));
}

TEST_F(RetryPolicyTest, CommittedIsNeverRetried) {
  RetryInput in = failed();
  in.committed = true;
  EXPECT_EQ(decide(in), RetryDecision::give_up(RetryStop::kCommitted));
  in.outcome = Outcome::failure(ProxyFailure::kReset);
  EXPECT_EQ(decide(in), RetryDecision::give_up(RetryStop::kCommitted));
  in.outcome = kRefused;
  EXPECT_EQ(decide(in), RetryDecision::give_up(RetryStop::kCommitted));
}

TEST_F(RetryPolicyTest, OverflowedBufferIsNeverRetried) {
  RetryInput in = failed();
  in.buffer_overflowed = true;
  EXPECT_EQ(decide(in), RetryDecision::give_up(RetryStop::kBufferOverflow));
  in.outcome = kRefused;  // the request cannot be replayed, even transparently
  EXPECT_EQ(decide(in), RetryDecision::give_up(RetryStop::kBufferOverflow));
}

TEST_F(RetryPolicyTest, RefusedStreamRetriesOnceTransparently) {
  RetryInput in = failed(kRefused);
  in.state.attempts = 3;           // attempts exhausted: does not matter
  in.throttled = true;             // budget spent: does not matter
  in.pushback = Pushback::stop();  // nor does pushback: the app never saw the request
  RetryDecision d = decide(in);
  EXPECT_EQ(d, RetryDecision::retry_after(base::Duration::zero(), /*transparent=*/true));

  RetryState state = in.state;
  state.on_retry(d);
  EXPECT_EQ(state.transparent_retries, 1u);
  EXPECT_EQ(state.attempts, 3u);      // not counted
  EXPECT_EQ(state.backoff_step, 0u);  // no backoff consumed
}

TEST_F(RetryPolicyTest, TransparentRetryEvenWithRetriesDisabled) {
  policy_ = RetryPolicy::disabled();
  EXPECT_EQ(decide(failed(kRefused)).kind, Kind::kRetryAfter);
  EXPECT_EQ(decide(failed(kUnavailable)), RetryDecision::give_up(RetryStop::kAttemptsExhausted));
  // The second REFUSED_STREAM goes through the policy, which allows no retries.
  RetryInput again = failed(kRefused);
  again.state.transparent_retries = 1;
  EXPECT_EQ(decide(again), RetryDecision::give_up(RetryStop::kAttemptsExhausted));
}

TEST_F(RetryPolicyTest, SecondRefusedStreamIsAnOrdinaryRetry) {
  RetryInput in = failed(kRefused);
  in.state.transparent_retries = 1;
  RetryDecision d = decide(in);
  EXPECT_EQ(d.kind, Kind::kRetryAfter);
  EXPECT_FALSE(d.transparent);
  EXPECT_EQ(d.delay, base::Duration(milliseconds(25)) / 2);
  // ...and only if refused-stream is in retry_on.
  policy_.retry_on = FailureCodes::defaults();
  EXPECT_EQ(decide(in).kind, Kind::kCommit);
}

TEST_F(RetryPolicyTest, TransparentRetryStopsAtThePassedDeadline) {
  RetryInput in = failed(kRefused);
  in.deadline = Deadline::at(clock_.now());
  EXPECT_EQ(decide(in), RetryDecision::give_up(RetryStop::kDeadline));
  in.deadline = Deadline::at(clock_.now() + milliseconds(1));
  EXPECT_EQ(decide(in).kind, Kind::kRetryAfter);
}

TEST_F(RetryPolicyTest, PushbackStopGivesUp) {
  RetryInput in = failed();
  in.pushback = Pushback::stop();
  EXPECT_EQ(decide(in), RetryDecision::give_up(RetryStop::kPushback));
}

TEST_F(RetryPolicyTest, PushbackDelayReplacesBackoffAndResetsIt) {
  RetryInput in = failed();
  in.state.attempts = 1;
  in.state.backoff_step = 0;
  in.pushback = Pushback::retry_after(milliseconds(700));
  RetryDecision d = decide(in);
  EXPECT_EQ(d, RetryDecision::retry_after(milliseconds(700), false, /*pushback=*/true));

  RetryState state = in.state;
  state.on_retry(d);
  EXPECT_EQ(state.attempts, 2u);
  EXPECT_EQ(state.backoff_step, 0u);  // A6: the following retry starts again from initial

  RetryInput next = failed();
  next.state = state;
  EXPECT_EQ(decide(next).delay, base::Duration(milliseconds(25)) / 2);
}

TEST_F(RetryPolicyTest, PushbackDoesNotExtendMaxAttempts) {
  RetryInput in = failed();
  in.state.attempts = 3;
  in.pushback = Pushback::retry_after(milliseconds(10));
  EXPECT_EQ(decide(in), RetryDecision::give_up(RetryStop::kAttemptsExhausted));
}

TEST_F(RetryPolicyTest, MaxAttemptsCountsTheFirstAttempt) {
  RetryInput in = failed();
  in.state.attempts = 2;
  EXPECT_EQ(decide(in).kind, Kind::kRetryAfter);  // third attempt of 3
  in.state.attempts = 3;
  EXPECT_EQ(decide(in), RetryDecision::give_up(RetryStop::kAttemptsExhausted));
}

TEST_F(RetryPolicyTest, MaxAttemptsAboveFiveIsFive) {
  policy_.max_attempts = 9;
  RetryInput in = failed();
  in.state.attempts = 4;
  EXPECT_EQ(decide(in).kind, Kind::kRetryAfter);
  in.state.attempts = 5;
  EXPECT_EQ(decide(in), RetryDecision::give_up(RetryStop::kAttemptsExhausted));
  EXPECT_FALSE(policy_.validate().has_value());
}

TEST_F(RetryPolicyTest, ThrottledGivesUp) {
  RetryInput in = failed();
  in.throttled = true;
  EXPECT_EQ(decide(in), RetryDecision::give_up(RetryStop::kThrottled));
}

TEST_F(RetryPolicyTest, DeadlineThatCannotCoverTheBackoffSkipsTheRetry) {
  RetryInput in = failed();
  in.jitter01 = 0.8;  // 20 ms of the first 25 ms ceiling
  in.deadline = Deadline::at(clock_.now() + milliseconds(30));
  EXPECT_EQ(decide(in).kind, Kind::kRetryAfter);
  in.deadline = Deadline::at(clock_.now() + milliseconds(20));
  EXPECT_EQ(decide(in), RetryDecision::give_up(RetryStop::kDeadline));
  // With an expected attempt time, the retry must also leave room for it.
  in.deadline = Deadline::at(clock_.now() + milliseconds(30));
  in.min_attempt_time = milliseconds(15);
  EXPECT_EQ(decide(in), RetryDecision::give_up(RetryStop::kDeadline));
}

TEST_F(RetryPolicyTest, PushbackDelayMustFitTheDeadlineToo) {
  RetryInput in = failed();
  in.pushback = Pushback::retry_after(seconds(3));
  in.deadline = Deadline::at(clock_.now() + seconds(2));
  EXPECT_EQ(decide(in), RetryDecision::give_up(RetryStop::kDeadline));
}

TEST_F(RetryPolicyTest, CheckOrderIsDocumented) {
  // Everything wrong at once: the first documented reason wins.
  RetryInput in = failed();
  in.committed = true;
  in.buffer_overflowed = true;
  in.throttled = true;
  in.state.attempts = 3;
  in.pushback = Pushback::stop();
  EXPECT_EQ(decide(in).reason, RetryStop::kCommitted);
  in.committed = false;
  EXPECT_EQ(decide(in).reason, RetryStop::kBufferOverflow);
  in.buffer_overflowed = false;
  EXPECT_EQ(decide(in).reason, RetryStop::kPushback);
  in.pushback = {};
  EXPECT_EQ(decide(in).reason, RetryStop::kAttemptsExhausted);
  in.state.attempts = 1;
  EXPECT_EQ(decide(in).reason, RetryStop::kThrottled);
}

TEST_F(RetryPolicyTest, PreviousAttemptsHeader) {
  RetryState state;
  EXPECT_EQ(state.previous_attempts(), 0u);  // first attempt: omit the header
  state.on_retry(RetryDecision::retry_after(milliseconds(1)));
  EXPECT_EQ(state.previous_attempts(), 1u);
  state.on_retry(RetryDecision::retry_after(base::Duration::zero(), /*transparent=*/true));
  EXPECT_EQ(state.previous_attempts(), 1u);
  state.on_retry(RetryDecision::give_up(RetryStop::kThrottled));  // no-op
  EXPECT_EQ(state.attempts, 2u);
}

TEST_F(RetryPolicyTest, CostsBudget) {
  EXPECT_FALSE(policy_.costs_budget(failed(Outcome::ok())));
  EXPECT_TRUE(policy_.costs_budget(failed(kUnavailable)));
  EXPECT_FALSE(policy_.costs_budget(failed(Outcome::status(kCodeInvalidArgument))));
  RetryInput pushed = failed(Outcome::status(kCodeInvalidArgument));
  pushed.pushback = Pushback::stop();
  EXPECT_TRUE(policy_.costs_budget(pushed));
  EXPECT_FALSE(policy_.costs_budget(failed(kRefused)));  // transparent: free
  RetryInput second_refusal = failed(kRefused);
  second_refusal.state.transparent_retries = 1;
  EXPECT_TRUE(policy_.costs_budget(second_refusal));
}

TEST_F(RetryPolicyTest, WholeCallWithFakeClock) {
  // UNAVAILABLE, REFUSED_STREAM, UNAVAILABLE, then the third counted attempt is not allowed to
  // retry: max_attempts 3. Time moves only as the proxy would move it.
  RetryState state;
  Deadline deadline = Deadline::start(clock_.now(), seconds(1), std::nullopt);
  auto step = [&](Outcome outcome, double jitter) {
    RetryInput in;
    in.outcome = outcome;
    in.state = state;
    in.deadline = deadline;
    in.jitter01 = jitter;
    RetryDecision d = policy_.decide(in, clock_.now());
    state.on_retry(d);
    if (d.kind == Kind::kRetryAfter) clock_.advance(d.delay + milliseconds(10));
    return d;
  };
  EXPECT_EQ(step(kUnavailable, 0.9).delay, base::Duration(milliseconds(25)) * 9 / 10);
  EXPECT_TRUE(step(kRefused, 0.9).transparent);
  EXPECT_EQ(step(kUnavailable, 0.9).delay, base::Duration(milliseconds(50)) * 9 / 10);
  EXPECT_EQ(step(kUnavailable, 0.9), RetryDecision::give_up(RetryStop::kAttemptsExhausted));
  EXPECT_EQ(state.attempts, 3u);
  EXPECT_EQ(state.transparent_retries, 1u);
  EXPECT_EQ(state.previous_attempts(), 2u);
}

TEST_F(RetryPolicyTest, Validate) {
  EXPECT_TRUE(RetryPolicy{}.validate().has_value());
  RetryPolicy p;
  p.max_attempts = 0;
  EXPECT_FALSE(p.validate().has_value());
  p.max_attempts = 5;
  EXPECT_TRUE(p.validate().has_value());
  p.per_try_timeout = base::Duration::zero();
  EXPECT_FALSE(p.validate().has_value());
  p.per_try_timeout = milliseconds(100);
  p.backoff.max = milliseconds(1);
  EXPECT_FALSE(p.validate().has_value());
}

TEST(RetryStop, Names) {
  EXPECT_EQ(to_string(RetryStop::kThrottled), "retry budget exhausted");
  EXPECT_EQ(to_string(RetryStop::kDeadline), "deadline too close");
}

}  // namespace
}  // namespace skiff::policy
