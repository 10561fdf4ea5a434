// Deadline: saturating time arithmetic.
#include "policy/deadline.h"

#include <algorithm>
#include <chrono>

namespace skiff::policy {
namespace {

// now + d without overflowing TimePoint: budgets that would pass the end of time land an hour
// before it, which is still "never" for a proxy. |d| may be negative.
base::TimePoint saturating_add(base::TimePoint now, base::Duration d) {
  const base::TimePoint end = base::TimePoint::max() - std::chrono::hours(1);
  if (d > base::Duration::zero() && d >= end - now) return end;
  if (d < base::Duration::zero() && now - base::TimePoint::min() <= -d)
    return base::TimePoint::min();
  return now + d;
}

}  // namespace

Deadline Deadline::start(base::TimePoint now, std::optional<base::Duration> grpc_timeout,
                         std::optional<base::Duration> route_timeout,
                         base::Duration grpc_timeout_offset) {
  std::optional<base::Duration> budget;
  if (grpc_timeout) budget = *grpc_timeout - grpc_timeout_offset;
  if (route_timeout && (!budget || *route_timeout < *budget)) budget = *route_timeout;
  if (!budget) return none();
  if (*budget <= base::Duration::zero()) return at(now);  // expired already
  return at(saturating_add(now, *budget));
}

std::optional<base::Duration> Deadline::remaining(base::TimePoint now) const {
  if (!set_) return std::nullopt;
  if (now >= when_) return base::Duration::zero();
  return when_ - now;
}

Deadline Deadline::for_attempt(base::TimePoint now,
                               std::optional<base::Duration> per_try_timeout) const {
  if (!per_try_timeout) return *this;
  return earlier(*this, at(saturating_add(now, *per_try_timeout)));
}

bool Deadline::fits(base::TimePoint now, base::Duration delay,
                    base::Duration min_attempt_time) const {
  if (!set_) return true;
  if (now >= when_) return false;
  // Compare durations, not time points: when_ - now is positive and cannot overflow, while
  // now + delay + min_attempt_time could.
  const base::Duration left = when_ - now;
  const base::Duration need = std::max(delay, base::Duration::zero());
  const base::Duration extra = std::max(min_attempt_time, base::Duration::zero());
  return need < left && extra < left - need;
}

Deadline Deadline::earlier(Deadline a, Deadline b) {
  if (!a.set_) return b;
  if (!b.set_) return a;
  return a.when_ <= b.when_ ? a : b;
}

}  // namespace skiff::policy
