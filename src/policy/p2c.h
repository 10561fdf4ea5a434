// P2C least-request load balancing (Envoy LEAST_REQUEST with choice_count 2, HAProxy
// random(2)): pick two distinct eligible endpoints at random and take the one with fewer
// active requests. Pure: the randomness is injected as one 64-bit number, so tests choose it.
// The skipping rules (ejected, backing off, previously used by this call) are shared with
// pick_peak_ewma.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "base/clock.h"

namespace skiff::policy {

class OutlierDetector;

// What the worker knows about one endpoint (its own view: per-worker, no atomics).
struct EndpointLoad {
  uint32_t active_requests = 0;         // attempts in flight from this worker
  base::TimePoint unavailable_until{};  // connect backoff (or any other reason to skip) until
};

struct PickOptions {
  // Endpoints this detector has ejected are skipped; indexes are the same as the span's.
  const OutlierDetector* ejections = nullptr;
  // Endpoints earlier attempts of this call used (retries and hedges prefer another one). They
  // are skipped unless no other endpoint is eligible.
  std::span<const size_t> avoid{};
};

// Eligible = not unavailable at |now| and not ejected.
bool is_eligible(std::span<const EndpointLoad> endpoints, size_t index, const PickOptions& options,
                 base::TimePoint now);

// The two-choices core over any cost: |eligible(i)| says which endpoints may be picked,
// |cost(i)| compares them (lower wins, ties go to the first choice). The low 32 bits of
// |random| choose the first candidate among the eligible, the high 32 bits the second among the
// rest. Endpoints in |avoid| count as ineligible unless that leaves none. O(n) per pick (two
// counting passes), no allocation. nullopt when nothing is eligible.
template <typename Eligible, typename Cost>
std::optional<size_t> pick_two_choices(size_t n, std::span<const size_t> avoid, uint64_t random,
                                       Eligible eligible, Cost cost);

// P2C over active_requests. nullopt: no eligible endpoint (answer UNAVAILABLE "no healthy
// endpoint").
std::optional<size_t> pick_least_request(std::span<const EndpointLoad> endpoints,
                                         const PickOptions& options, uint64_t random,
                                         base::TimePoint now);

// Template definition.

template <typename Eligible, typename Cost>
std::optional<size_t> pick_two_choices(size_t n, std::span<const size_t> avoid, uint64_t random,
                                       Eligible eligible, Cost cost) {
  auto avoided = [&avoid](size_t i) {
    for (size_t a : avoid) {
      if (a == i) return true;
    }
    return false;
  };
  bool use_avoid = !avoid.empty();
  size_t m = 0;
  for (size_t i = 0; i < n; ++i) m += (eligible(i) && !(use_avoid && avoided(i))) ? 1 : 0;
  if (m == 0 && use_avoid) {
    use_avoid = false;
    for (size_t i = 0; i < n; ++i) m += eligible(i) ? 1 : 0;
  }
  if (m == 0) return std::nullopt;
  auto ok = [&](size_t i) { return eligible(i) && !(use_avoid && avoided(i)); };
  // The k-th eligible endpoint, 0-based.
  auto nth = [&](size_t k) {
    for (size_t i = 0; i < n; ++i) {
      if (ok(i) && k-- == 0) return i;
    }
    return n;  // unreachable: k < m
  };
  const size_t first_k = static_cast<size_t>(random & 0xffffffffu) % m;
  const size_t first = nth(first_k);
  if (m == 1) return first;
  size_t second_k = static_cast<size_t>(random >> 32) % (m - 1);
  if (second_k >= first_k) ++second_k;  // distinct from the first
  const size_t second = nth(second_k);
  return cost(second) < cost(first) ? second : first;
}

}  // namespace skiff::policy
