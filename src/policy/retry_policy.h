// RetryPolicy: should this call make another attempt, and when? gRPC A6 retry semantics
// (attempts counted including the first, capped at 5; full-jitter backoff; pushback;
// transparent retry of REFUSED_STREAM) plus skiff's rules: never after commit or replay-buffer
// overflow, never skiff's own rejections, and never when the deadline cannot cover the wait.
// Pure: the Call owns a RetryState, asks decide() after each attempt and turns kRetryAfter
// into a backoff timer.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "base/clock.h"
#include "base/error.h"
#include "policy/backoff.h"
#include "policy/deadline.h"
#include "policy/failure_codes.h"
#include "policy/outcome.h"
#include "policy/pushback.h"

namespace skiff::policy {

// A6: maxAttempts above 5 are treated as 5.
inline constexpr unsigned kMaxAttemptsCap = 5;

// Why a retryable failure was not retried (one counter each in the proxy's metrics).
enum class RetryStop : uint8_t {
  kLocalRejection,     // skiff's own rate-limit / breaker rejection (from this or a peer skiff)
  kCommitted,          // response headers were already forwarded downstream
  kBufferOverflow,     // the request outgrew the replay buffer, so it cannot be replayed
  kPushback,           // the upstream's grpc-retry-pushback-ms said not to retry
  kAttemptsExhausted,  // max_attempts reached
  kThrottled,          // the cluster's retry budget (A6 retry throttling) is spent
  kDeadline,           // the deadline cannot cover the backoff (plus min_attempt_time)
};

std::string_view to_string(RetryStop stop);

struct RetryDecision {
  enum class Kind : uint8_t {
    kCommit,      // not a retryable failure (success, or a code not in retry_on): forward it
    kRetryAfter,  // start another attempt after |delay| (zero: now), preferably elsewhere
    kGiveUp,      // a retryable failure that will not be retried (|reason|): forward it
  };
  Kind kind = Kind::kCommit;
  base::Duration delay{};    // kRetryAfter
  RetryStop reason{};        // kGiveUp
  bool transparent = false;  // kRetryAfter of a REFUSED_STREAM: not counted, no backoff
  bool pushback = false;     // kRetryAfter whose delay came from grpc-retry-pushback-ms

  static constexpr RetryDecision commit() { return {}; }
  static constexpr RetryDecision give_up(RetryStop why) { return {Kind::kGiveUp, {}, why}; }
  static constexpr RetryDecision retry_after(base::Duration d, bool transparent = false,
                                             bool pushback = false) {
    return {Kind::kRetryAfter, d, {}, transparent, pushback};
  }
  friend constexpr bool operator==(const RetryDecision&, const RetryDecision&) = default;
};

// Per-call bookkeeping, owned by the Call; update it with on_retry() when acting on a
// kRetryAfter.
struct RetryState {
  unsigned attempts = 1;             // attempts counted against max_attempts, the first included
  unsigned transparent_retries = 0;  // REFUSED_STREAM retries made (only the first is free)
  unsigned backoff_step = 0;         // backoff retries since the start or the last pushback

  void on_retry(const RetryDecision& decision);
  // grpc-previous-rpc-attempts for the next attempt (A6: absent on the first, 1 on the
  // second...); transparent retries are not counted. 0 means "omit the header".
  unsigned previous_attempts() const { return attempts - 1; }
};

struct RetryInput {
  Outcome outcome = Outcome::ok();  // how the attempt that just finished ended
  RetryState state{};               // the Call's state before this decision
  bool committed = false;           // response headers were forwarded downstream
  bool buffer_overflowed = false;   // the replay buffer overflowed (the call is committed)
  bool local_rejection = false;     // the status is skiff's own rejection (ours or a peer's)
  bool throttled = false;           // !RetryBudget::retry_allowed() after recording this outcome
  Pushback pushback{};              // the response's grpc-retry-pushback-ms
  Deadline deadline{};              // the call's deadline
  // Least time an attempt is expected to need (e.g. the endpoint's latency estimate); a retry
  // is started only if backoff + this still ends before the deadline. Zero: only the backoff.
  base::Duration min_attempt_time{};
  double jitter01 = 0.0;  // uniform random in [0, 1) for the backoff
};

struct RetryPolicy {
  unsigned max_attempts = 2;  // attempts, the first included (gRPC maxAttempts); 1 = no retries
  FailureCodes retry_on = FailureCodes::defaults().add(ProxyFailure::kRefusedStream);
  std::optional<base::Duration> per_try_timeout;  // the proxy applies it via Deadline::for_attempt
  Backoff backoff{};

  // A policy that never retries; REFUSED_STREAM still gets its one transparent retry, which
  // A6 makes regardless of configuration.
  static RetryPolicy disabled() {
    RetryPolicy p;
    p.max_attempts = 1;
    return p;
  }

  // Whether this outcome costs the retry budget a token (A6: a retryable code, or pushback
  // saying stop). OK outcomes earn tokens; everything else leaves the budget alone. The proxy
  // records the outcome before decide(): if is_ok() -> budget.on_success(); else if this ->
  // input.throttled = !budget.on_failure(); else input.throttled = !budget.retry_allowed().
  // The first REFUSED_STREAM is transparent and costs nothing.
  bool costs_budget(const RetryInput& in) const;

  // The decision, checked in this order: OK or not retryable -> kCommit; own rejection,
  // committed, buffer overflow -> kGiveUp; transparent REFUSED_STREAM -> kRetryAfter(0) unless
  // the deadline has passed; pushback stop, attempts exhausted, throttled -> kGiveUp; then the
  // delay (pushback's, or backoff) must fit the deadline.
  RetryDecision decide(const RetryInput& in, base::TimePoint now) const;

  // 1 <= max_attempts <= 5, a valid backoff, per_try_timeout > 0 if set.
  base::Result<void> validate() const;
};

}  // namespace skiff::policy
