// CircuitBreaker: lock-free admission, locked transitions.
#include "policy/circuit_breaker.h"

#include <chrono>

namespace skiff::policy {
namespace {

int64_t to_ns(base::TimePoint t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

base::Duration from_ns(int64_t ns) {
  return std::chrono::duration_cast<base::Duration>(std::chrono::nanoseconds(ns));
}

}  // namespace

base::Result<void> CircuitBreakerParams::validate() const {
  if (consecutive_failures < 1)
    return base::fail("circuit_breaker.consecutive_failures must be >= 1");
  if (open_for <= base::Duration::zero()) return base::fail("circuit_breaker.open_for must be > 0");
  if (half_open_probes < 1) return base::fail("circuit_breaker.half_open_probes must be >= 1");
  return {};
}

std::string_view to_string(BreakerState state) {
  switch (state) {
    case BreakerState::kClosed:
      return "closed";
    case BreakerState::kOpen:
      return "open";
    case BreakerState::kHalfOpen:
      return "half-open";
  }
  return "?";
}

CircuitBreaker::CircuitBreaker(const CircuitBreakerParams& params)
    : params_(params), word_(pack(BreakerState::kClosed, 0)) {}

BreakerState CircuitBreaker::state() const {
  return state_of(word_.load(std::memory_order_acquire));
}

BreakerTicket CircuitBreaker::admit(base::TimePoint now) {
  using Kind = BreakerTicket::Kind;
  for (;;) {
    const uint64_t word = word_.load(std::memory_order_acquire);
    const uint64_t generation = generation_of(word);
    switch (state_of(word)) {
      case BreakerState::kClosed:
        return {Kind::kAllowed, generation, {}};
      case BreakerState::kOpen: {
        const int64_t until = until_ns_.load(std::memory_order_relaxed);
        const int64_t t = to_ns(now);
        if (t < until) return {Kind::kRejected, generation, from_ns(until - t)};
        half_open(word, now);
        continue;  // re-read: this thread or another made it half-open
      }
      case BreakerState::kHalfOpen: {
        // Safety valve: probes that never reported (a proxy bug, or a lost result) must not
        // wedge the breaker half-open forever; after another open_for, start a fresh round.
        if (to_ns(now) >= until_ns_.load(std::memory_order_relaxed)) {
          half_open(word, now);
          continue;
        }
        // Load before the fetch_add so a rejection storm reads the counter instead of writing
        // it (and cannot wrap it).
        if (probes_admitted_.load(std::memory_order_relaxed) < params_.half_open_probes &&
            probes_admitted_.fetch_add(1, std::memory_order_relaxed) < params_.half_open_probes) {
          return {Kind::kProbe, generation, {}};
        }
        return {Kind::kRejected, generation, {}};
      }
    }
    return {Kind::kRejected, generation, {}};  // unreachable: state_of() has three values
  }
}

void CircuitBreaker::on_result(const BreakerTicket& ticket, bool failure, base::TimePoint now) {
  const uint64_t word = word_.load(std::memory_order_acquire);
  // A ticket from another round (admitted before the last transition) says nothing about now.
  if (ticket.generation != generation_of(word)) return;
  switch (state_of(word)) {
    case BreakerState::kClosed:
      if (ticket.kind != BreakerTicket::Kind::kAllowed) return;
      if (!failure) {
        // Load first: in the healthy steady state this is read-only, so workers do not bounce
        // the cache line between them.
        if (failures_.load(std::memory_order_relaxed) != 0) {
          failures_.store(0, std::memory_order_relaxed);
        }
        return;
      }
      if (failures_.fetch_add(1, std::memory_order_relaxed) + 1 >= params_.consecutive_failures) {
        open(word, now);
      }
      return;
    case BreakerState::kOpen:
      return;  // calls admitted before opening; their results are stale
    case BreakerState::kHalfOpen:
      if (ticket.kind != BreakerTicket::Kind::kProbe) return;
      if (failure) {
        open(word, now);
      } else if (probe_successes_.fetch_add(1, std::memory_order_relaxed) + 1 >=
                 params_.half_open_probes) {
        close(word);
      }
      return;
  }
}

void CircuitBreaker::on_probe_abandoned(const BreakerTicket& ticket) {
  if (ticket.kind != BreakerTicket::Kind::kProbe) return;
  const uint64_t word = word_.load(std::memory_order_acquire);
  if (state_of(word) != BreakerState::kHalfOpen || ticket.generation != generation_of(word)) return;
  // Give the slot back. A concurrent transition resets the counter anyway, so a decrement
  // that races it is harmless as long as it never wraps below zero.
  uint32_t admitted = probes_admitted_.load(std::memory_order_relaxed);
  while (admitted > 0 && !probes_admitted_.compare_exchange_weak(admitted, admitted - 1,
                                                                 std::memory_order_relaxed)) {
  }
}

void CircuitBreaker::open(uint64_t seen, base::TimePoint now) {
  std::lock_guard lock(mu_);
  if (word_.load(std::memory_order_relaxed) != seen) return;  // someone else transitioned
  until_ns_.store(to_ns(now + params_.open_for), std::memory_order_relaxed);
  failures_.store(0, std::memory_order_relaxed);
  times_opened_.fetch_add(1, std::memory_order_relaxed);
  word_.store(pack(BreakerState::kOpen, generation_of(seen) + 1), std::memory_order_release);
}

void CircuitBreaker::half_open(uint64_t seen, base::TimePoint now) {
  std::lock_guard lock(mu_);
  if (word_.load(std::memory_order_relaxed) != seen) return;
  probes_admitted_.store(0, std::memory_order_relaxed);
  probe_successes_.store(0, std::memory_order_relaxed);
  until_ns_.store(to_ns(now + params_.open_for), std::memory_order_relaxed);
  word_.store(pack(BreakerState::kHalfOpen, generation_of(seen) + 1), std::memory_order_release);
}

void CircuitBreaker::close(uint64_t seen) {
  std::lock_guard lock(mu_);
  if (word_.load(std::memory_order_relaxed) != seen) return;
  failures_.store(0, std::memory_order_relaxed);
  word_.store(pack(BreakerState::kClosed, generation_of(seen) + 1), std::memory_order_release);
}

}  // namespace skiff::policy
