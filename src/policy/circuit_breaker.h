// CircuitBreaker: a per-method consecutive-failure breaker shared by all workers. Closed, it
// admits everything and counts consecutive failures (outcomes in the route's FailureCodes);
// after |consecutive_failures| of them it opens and rejects for |open_for|; then it is
// half-open and lets |half_open_probes| calls through as probes. When all of them succeed it
// closes; a probe failure opens it again for another |open_for|.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string_view>

#include "base/clock.h"
#include "base/error.h"

namespace skiff::policy {

struct CircuitBreakerParams {
  uint32_t consecutive_failures = 5;                   // N; Envoy's consecutive_5xx default
  base::Duration open_for = std::chrono::seconds(10);  // cool-down before probing
  uint32_t half_open_probes = 1;                       // K

  base::Result<void> validate() const;
};

enum class BreakerState : uint8_t { kClosed, kOpen, kHalfOpen };
std::string_view to_string(BreakerState state);

// What admit() returns; the Call keeps it and hands it back to on_result().
struct BreakerTicket {
  enum class Kind : uint8_t {
    kAllowed,   // closed: a normal call
    kProbe,     // half-open: this call is one of the K probes
    kRejected,  // open (or half-open with all probes out): answer UNAVAILABLE "circuit open"
  };
  Kind kind = Kind::kAllowed;
  uint64_t generation = 0;       // which open/half-open round this belongs to
  base::Duration retry_after{};  // kRejected while open: time until probing starts
  bool admitted() const { return kind != Kind::kRejected; }
};

// Thread-safety: the state word (state + generation), the consecutive-failure count, the
// open-until time and the probe counters are atomics, so the hot path never locks: admit()
// while closed is one acquire load; a success while closed is one relaxed load (plus a store
// only when it resets a non-zero count); a failure is one fetch_add; a rejection while open is
// two loads. A small mutex serialises the transitions (closed->open, open->half-open,
// half-open->closed/open), each of which writes several fields that must change together.
// Transitions happen only while the method is failing or recovering, at most a few per
// open_for, so the lock is off the hot path. The mutex holder writes the fields, then publishes
// the new state word with a release store; admit() reads the word with acquire, so it sees
// the fields of the state it read.
class CircuitBreaker {
 public:
  explicit CircuitBreaker(const CircuitBreakerParams& params = {});
  CircuitBreaker(const CircuitBreaker&) = delete;
  CircuitBreaker& operator=(const CircuitBreaker&) = delete;

  // Asked before each call to this method. Open past open_for turns half-open here (lazily:
  // there is no timer).
  BreakerTicket admit(base::TimePoint now);

  // The admitted call's result: |failure| = its outcome is in the route's FailureCodes.
  // Results of calls admitted in an earlier round (stale tickets) are ignored, as are
  // non-probe results while open or half-open: those calls started before the breaker opened.
  void on_result(const BreakerTicket& ticket, bool failure, base::TimePoint now);

  // A probe that ended without a result that says anything about the upstream (cancelled by
  // the client, its deadline passed before the upstream answered): frees its probe slot.
  void on_probe_abandoned(const BreakerTicket& ticket);

  BreakerState state() const;
  uint32_t consecutive_failures() const { return failures_.load(std::memory_order_relaxed); }
  // Number of times the breaker has opened (for /clusters).
  uint64_t times_opened() const { return times_opened_.load(std::memory_order_relaxed); }

 private:
  static constexpr uint64_t pack(BreakerState s, uint64_t generation) {
    return generation << 2 | static_cast<uint64_t>(s);
  }
  static constexpr BreakerState state_of(uint64_t word) {
    return static_cast<BreakerState>(word & 3);
  }
  static constexpr uint64_t generation_of(uint64_t word) { return word >> 2; }

  // Transitions; each takes mu_ and does nothing if the word moved on since |seen|.
  void open(uint64_t seen, base::TimePoint now);
  void half_open(uint64_t seen, base::TimePoint now);
  void close(uint64_t seen);

  const CircuitBreakerParams params_;
  std::atomic<uint64_t> word_;                // state | generation << 2
  std::atomic<uint32_t> failures_{0};         // consecutive failures while closed
  std::atomic<int64_t> until_ns_{0};          // open: end of open_for; half-open: when probes
                                              // that never reported are written off
  std::atomic<uint32_t> probes_admitted_{0};  // half-open round
  std::atomic<uint32_t> probe_successes_{0};  // half-open round
  std::atomic<uint64_t> times_opened_{0};
  std::mutex mu_;  // transitions only
};

}  // namespace skiff::policy
