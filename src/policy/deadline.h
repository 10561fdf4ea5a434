// Deadline: the call's end time and the arithmetic around it: min(grpc-timeout − offset, route
// timeout) from HEADERS, the per-attempt end (per_try_timeout), the grpc-timeout to send
// upstream, and whether a retry after some backoff still fits. A value type; no timers.
#pragma once

#include <optional>

#include "base/clock.h"

namespace skiff::policy {

class Deadline {
 public:
  // No deadline: neither the client nor the route set one.
  constexpr Deadline() = default;
  static constexpr Deadline none() { return Deadline(); }
  static constexpr Deadline at(base::TimePoint when) { return Deadline(when); }

  // The call's deadline, counted from |now| (when the request HEADERS arrived):
  // min(|grpc_timeout| − |grpc_timeout_offset|, |route_timeout|) over the ones that are set
  // (Envoy's grpc_timeout_header_offset: the client's deadline minus an offset, so skiff times
  // out first and answers DEADLINE_EXCEEDED itself). An offset applies only to a grpc-timeout.
  // A budget of zero or less gives an already expired deadline, so the proxy answers
  // DEADLINE_EXCEEDED without forwarding. Huge budgets (grpc-timeout 99999999H) saturate
  // instead of overflowing TimePoint.
  static Deadline start(base::TimePoint now, std::optional<base::Duration> grpc_timeout,
                        std::optional<base::Duration> route_timeout,
                        base::Duration grpc_timeout_offset = base::Duration::zero());

  constexpr bool is_set() const { return set_; }
  // Only meaningful when is_set().
  constexpr base::TimePoint when() const { return when_; }

  // True when set and |now| is at or past it.
  constexpr bool expired(base::TimePoint now) const { return set_ && now >= when_; }

  // Time left at |now| (zero once expired); nullopt when there is no deadline.
  std::optional<base::Duration> remaining(base::TimePoint now) const;

  // The deadline of an attempt started at |now|: the earlier of this deadline and
  // now + |per_try_timeout|. Its remaining() is what goes upstream as grpc-timeout, so the
  // upstream sees the per-try timeout too (envoy#4628).
  Deadline for_attempt(base::TimePoint now, std::optional<base::Duration> per_try_timeout) const;

  // Whether an attempt started after waiting |delay| from |now| would still have more than
  // |min_attempt_time| before the deadline. Always true without a deadline. This is the
  // "deadline-aware retry admission" check: a retry whose backoff (plus the latency it is
  // expected to need) does not fit is not started.
  bool fits(base::TimePoint now, base::Duration delay,
            base::Duration min_attempt_time = base::Duration::zero()) const;

  // The earlier of two deadlines (an unset one is later than any set one).
  static Deadline earlier(Deadline a, Deadline b);

  friend constexpr bool operator==(const Deadline&, const Deadline&) = default;

 private:
  constexpr explicit Deadline(base::TimePoint when) : when_(when), set_(true) {}
  base::TimePoint when_{};
  bool set_ = false;
};

}  // namespace skiff::policy
