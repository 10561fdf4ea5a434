// HedgingPolicy: gRPC A6 hedging for methods declared idempotent. Copy k of the request is
// sent hedging_delay after copy k-1 unless a response settles the call first; a non-fatal
// status sends the next copy at once; OK, response headers or a fatal status win and the rest
// are cancelled. Extra copies need the retry budget. Pure: the Call owns a HedgeState, asks
// next_hedge() to know when to send (and arms one timer), and on_response() for each attempt
// that finishes.
#pragma once

#include <cstdint>
#include <string_view>

#include "base/clock.h"
#include "base/error.h"
#include "policy/deadline.h"
#include "policy/failure_codes.h"
#include "policy/outcome.h"
#include "policy/pushback.h"

namespace skiff::policy {

// Per-call state, owned by the Call; changed by HedgingPolicy::on_sent / on_response.
struct HedgeState {
  unsigned sent = 0;          // attempts sent, the first included
  unsigned outstanding = 0;   // sent and not yet finished (or cancelled)
  base::TimePoint next_at{};  // when the next copy is due
  bool stopped = false;       // no more copies: pushback said stop, or the call settled
};

// Things outside the policy that can stop the next copy.
struct HedgeGate {
  bool throttled = false;          // !RetryBudget::retry_allowed()
  bool buffer_overflowed = false;  // the replay buffer overflowed: A6 commits to one attempt
  Deadline deadline{};
};

struct HedgeTiming {
  enum class Kind : uint8_t {
    kSendNow,    // send the next copy now, then call on_sent()
    kWaitUntil,  // arm the hedge timer for |at|, then ask again
    kNoMore,     // no further copies; if nothing is outstanding either, the call is over and
                 // the last non-fatal response (the proxy keeps it) is the answer
  };
  Kind kind = Kind::kNoMore;
  base::TimePoint at{};
  friend constexpr bool operator==(const HedgeTiming&, const HedgeTiming&) = default;
};

// What to do with the response of one attempt.
enum class HedgeAction : uint8_t {
  kCommit,         // OK or response headers: forward this one, cancel the others
  kFatal,          // a fatal status: forward it, cancel the others
  kSendNext,       // non-fatal: keep it as the fallback answer and send the next copy now
  kWaitForOthers,  // non-fatal: keep it as the fallback answer; others are outstanding or a
                   // copy is scheduled (ask next_hedge() to re-arm the timer)
  kGiveUp,         // non-fatal, but nothing is outstanding and no copy can follow: forward it
};

std::string_view to_string(HedgeAction action);

struct HedgeResponse {
  Outcome outcome = Outcome::ok();
  bool headers = false;  // response headers that must be forwarded (not trailers-only):
                         // the call commits to this attempt whatever comes later
  Pushback pushback{};
  bool local_rejection = false;  // skiff's own rejection: no more copies because of it
};

struct HedgingPolicy {
  base::Duration hedging_delay{};  // A6 hedgingDelay; 0 sends all copies at once
  unsigned max_attempts = 2;       // copies, the first included (A6 maxAttempts), capped at 5
  FailureCodes non_fatal{};        // A6 nonFatalStatusCodes; default empty: any error is fatal

  // When the next copy should go. The first copy (state.sent == 0) is always kSendNow. A later
  // copy needs: not stopped, fewer than max_attempts sent, no buffer overflow, the deadline not
  // passed at its send time, and, when due, the budget (throttling is checked only when due,
  // A6: "subsequent hedged RPCs will only be sent if token_count is greater than the
  // threshold").
  HedgeTiming next_hedge(const HedgeState& state, const HedgeGate& gate, base::TimePoint now) const;

  // Records that a copy was sent at |now|: the following one is due hedging_delay later.
  void on_sent(HedgeState& state, base::TimePoint now) const;

  // Records that an attempt was cancelled by the proxy without a response (e.g. after commit).
  static void on_cancelled(HedgeState& state);

  // Classifies one attempt's response and updates |state|: OK or headers -> kCommit; fatal
  // status (or a proxy failure not in non_fatal) -> kFatal; non-fatal -> the next copy is due
  // now (or after the pushback delay; pushback stop or a local rejection ends copies), then
  // kSendNext / kWaitForOthers / kGiveUp by what can still happen.
  HedgeAction on_response(HedgeState& state, const HedgeResponse& response, const HedgeGate& gate,
                          base::TimePoint now) const;

  // Whether a response with this outcome costs the budget a token (A6: a non-fatal code, or
  // pushback stop); OK earns one.
  bool costs_budget(const HedgeResponse& response) const;

  // 1 <= max_attempts <= 5 and hedging_delay >= 0.
  base::Result<void> validate() const;
};

}  // namespace skiff::policy
