// Load balancing decisions: pure functions over endpoint availability (no I/O, time passed in).
#pragma once

#include <cstddef>
#include <span>

#include "base/clock.h"

namespace skiff::upstream {

// How ClusterPool picks an endpoint for each attempt (docs/policies.md "Load balancing").
enum class LoadBalancing {
  kRoundRobin,    // each eligible endpoint in turn
  kLeastRequest,  // P2C on this worker's active requests (policy::pick_least_request)
  kPeakEwma,      // P2C on latency estimate x (active + 1) (policy::pick_peak_ewma)
};

struct EndpointHealth {
  base::TimePoint backoff_until{};  // connect failures: skip until then
  base::TimePoint ejected_until{};  // outlier detection: skip until then
};

// Round robin from |*cursor| over endpoints neither in connect backoff nor ejected at |now|;
// advances the cursor past the pick. Returns |health.size()| when none is available.
size_t pick_round_robin(std::span<const EndpointHealth> health, size_t* cursor,
                        base::TimePoint now);

// Reconnect backoff after |failures| consecutive connect failures (1-based): 100 ms doubling,
// capped at 5 s, with the jitter fraction |jitter01| in [0, 1) taking up to 20% off.
base::Duration reconnect_backoff(unsigned failures, double jitter01);

}  // namespace skiff::upstream
