// MethodBreakers: the per-method circuit breakers of one route, shared by all workers. A route
// that names one method has one breaker. A service-wide or catch-all route gets one breaker per
// method it takes, so a failing method does not open the circuit of its healthy neighbours.
// Method names come from callers, so the table is fixed-size: once max_methods names hold a
// slot, any further method shares one overflow breaker.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "policy/circuit_breaker.h"

namespace skiff::policy {

// Methods with a breaker of their own on a service-wide or catch-all route.
inline constexpr size_t kMaxBreakerMethods = 64;

class MethodBreakers {
 public:
  // |max_methods| == 1: a single-method route (every call gets the one breaker, no lookup).
  MethodBreakers(const CircuitBreakerParams& params, size_t max_methods);
  MethodBreakers(const MethodBreakers&) = delete;
  MethodBreakers& operator=(const MethodBreakers&) = delete;

  // The breaker for |method| (the call's :path). Lock-free: an open-addressed table whose
  // slots are claimed once (compare-exchange on the slot's state, then the name is written and
  // published with a release store) and never freed, so a lookup is a hash and at most
  // max_methods acquire loads and name compares; a claim in progress elsewhere is waited out
  // (a name copy long).
  CircuitBreaker& for_method(std::string_view method);

  // Every breaker in use with its method name ("" for a single-method route's breaker,
  // kOverflowName for the shared one, once the table is full).
  static constexpr std::string_view kOverflowName = "_other";
  void for_each(const std::function<void(std::string_view, const CircuitBreaker&)>& fn) const;
  // Summaries for a metric series: the worst state (open > half-open > closed) and the times
  // any of them opened.
  BreakerState worst_state() const;
  uint64_t times_opened() const;

  size_t capacity() const { return slot_count_; }

 private:
  struct Slot {
    std::atomic<uint8_t> state{0};  // kEmpty, kClaiming, kReady
    std::string name;               // written once while kClaiming
    std::unique_ptr<CircuitBreaker> breaker;
  };

  const size_t slot_count_;
  std::unique_ptr<Slot[]> slots_;
  CircuitBreaker overflow_;
};

}  // namespace skiff::policy
