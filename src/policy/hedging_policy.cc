// HedgingPolicy: send timing and response classification.
#include "policy/hedging_policy.h"

#include <algorithm>

#include "policy/retry_policy.h"

namespace skiff::policy {

std::string_view to_string(HedgeAction action) {
  switch (action) {
    case HedgeAction::kCommit:
      return "commit";
    case HedgeAction::kFatal:
      return "fatal";
    case HedgeAction::kSendNext:
      return "send next";
    case HedgeAction::kWaitForOthers:
      return "wait for others";
    case HedgeAction::kGiveUp:
      return "give up";
  }
  return "?";
}

HedgeTiming HedgingPolicy::next_hedge(const HedgeState& state, const HedgeGate& gate,
                                      base::TimePoint now) const {
  using Kind = HedgeTiming::Kind;
  if (state.sent == 0) return {Kind::kSendNow, now};
  if (state.stopped || gate.buffer_overflowed) return {};
  if (state.sent >= std::min(max_attempts, kMaxAttemptsCap)) return {};
  const base::TimePoint due = std::max(state.next_at, now);
  if (!gate.deadline.fits(now, due - now)) return {};
  if (due > now) return {Kind::kWaitUntil, due};
  if (gate.throttled) return {};
  return {Kind::kSendNow, now};
}

void HedgingPolicy::on_sent(HedgeState& state, base::TimePoint now) const {
  ++state.sent;
  ++state.outstanding;
  state.next_at = now + hedging_delay;
}

void HedgingPolicy::on_cancelled(HedgeState& state) {
  if (state.outstanding > 0) --state.outstanding;
}

HedgeAction HedgingPolicy::on_response(HedgeState& state, const HedgeResponse& response,
                                       const HedgeGate& gate, base::TimePoint now) const {
  if (state.outstanding > 0) --state.outstanding;
  if (response.headers || response.outcome.is_ok()) {
    state.stopped = true;
    return HedgeAction::kCommit;
  }
  if (!non_fatal.contains(response.outcome)) {
    state.stopped = true;
    return HedgeAction::kFatal;
  }
  // Non-fatal: A6 sends the next copy at once, or after the pushback delay.
  if (response.local_rejection || response.pushback.kind == Pushback::Kind::kStop) {
    state.stopped = true;
  } else if (response.pushback.kind == Pushback::Kind::kRetryAfter) {
    state.next_at = now + response.pushback.delay;
  } else {
    state.next_at = now;
  }
  switch (next_hedge(state, gate, now).kind) {
    case HedgeTiming::Kind::kSendNow:
      return HedgeAction::kSendNext;
    case HedgeTiming::Kind::kWaitUntil:
      return HedgeAction::kWaitForOthers;
    case HedgeTiming::Kind::kNoMore:
      break;
  }
  return state.outstanding > 0 ? HedgeAction::kWaitForOthers : HedgeAction::kGiveUp;
}

bool HedgingPolicy::costs_budget(const HedgeResponse& response) const {
  if (response.outcome.is_ok() || response.headers) return false;
  return non_fatal.contains(response.outcome) || response.pushback.kind == Pushback::Kind::kStop;
}

base::Result<void> HedgingPolicy::validate() const {
  if (max_attempts < 1 || max_attempts > kMaxAttemptsCap) {
    return base::fail("hedging.max_attempts must be 1..5 (it counts copies, the first included)");
  }
  if (hedging_delay < base::Duration::zero()) return base::fail("hedging.delay must be >= 0");
  return {};
}

}  // namespace skiff::policy
