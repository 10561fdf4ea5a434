// RetryPolicy: the retry decision, branch by branch.
#include "policy/retry_policy.h"

#include <algorithm>

namespace skiff::policy {
namespace {

bool is_transparent(const RetryInput& in) {
  return in.outcome.is_proxy_failure() &&
         in.outcome.proxy_failure() == ProxyFailure::kRefusedStream &&
         in.state.transparent_retries == 0;
}

}  // namespace

std::string_view to_string(RetryStop stop) {
  switch (stop) {
    case RetryStop::kLocalRejection:
      return "local rejection";
    case RetryStop::kCommitted:
      return "committed";
    case RetryStop::kBufferOverflow:
      return "replay buffer overflow";
    case RetryStop::kPushback:
      return "server pushback";
    case RetryStop::kAttemptsExhausted:
      return "attempts exhausted";
    case RetryStop::kThrottled:
      return "retry budget exhausted";
    case RetryStop::kDeadline:
      return "deadline too close";
  }
  return "?";
}

void RetryState::on_retry(const RetryDecision& decision) {
  if (decision.kind != RetryDecision::Kind::kRetryAfter) return;
  if (decision.transparent) {
    ++transparent_retries;
    return;
  }
  ++attempts;
  // A6: after a pushback-timed retry, the next backoff starts again from |initial|.
  backoff_step = decision.pushback ? 0 : backoff_step + 1;
}

bool RetryPolicy::costs_budget(const RetryInput& in) const {
  if (in.outcome.is_ok() || is_transparent(in)) return false;
  return retry_on.contains(in.outcome) || in.pushback.kind == Pushback::Kind::kStop;
}

RetryDecision RetryPolicy::decide(const RetryInput& in, base::TimePoint now) const {
  if (in.outcome.is_ok()) return RetryDecision::commit();
  const bool transparent = is_transparent(in);
  if (!transparent && !retry_on.contains(in.outcome)) return RetryDecision::commit();

  if (in.local_rejection) return RetryDecision::give_up(RetryStop::kLocalRejection);
  if (in.committed) return RetryDecision::give_up(RetryStop::kCommitted);
  if (in.buffer_overflowed) return RetryDecision::give_up(RetryStop::kBufferOverflow);

  if (transparent) {
    // The upstream application never saw the request: retry once at once, outside
    // max_attempts and the budget (A6 "Transparent Retries"). Only a passed deadline stops it.
    if (in.deadline.expired(now)) return RetryDecision::give_up(RetryStop::kDeadline);
    return RetryDecision::retry_after(base::Duration::zero(), /*transparent=*/true);
  }

  if (in.pushback.kind == Pushback::Kind::kStop)
    return RetryDecision::give_up(RetryStop::kPushback);
  if (in.state.attempts >= std::min(max_attempts, kMaxAttemptsCap)) {
    return RetryDecision::give_up(RetryStop::kAttemptsExhausted);
  }
  if (in.throttled) return RetryDecision::give_up(RetryStop::kThrottled);

  const bool use_pushback = in.pushback.kind == Pushback::Kind::kRetryAfter;
  const base::Duration delay =
      use_pushback ? in.pushback.delay : backoff.delay(in.state.backoff_step + 1, in.jitter01);
  if (!in.deadline.fits(now, delay, in.min_attempt_time)) {
    return RetryDecision::give_up(RetryStop::kDeadline);
  }
  return RetryDecision::retry_after(delay, /*transparent=*/false, use_pushback);
}

base::Result<void> RetryPolicy::validate() const {
  if (max_attempts < 1 || max_attempts > kMaxAttemptsCap) {
    return base::fail("retry.max_attempts must be 1..5 (it counts attempts, the first included)");
  }
  if (per_try_timeout && *per_try_timeout <= base::Duration::zero()) {
    return base::fail("retry.per_try_timeout must be > 0");
  }
  return backoff.validate();
}

}  // namespace skiff::policy
