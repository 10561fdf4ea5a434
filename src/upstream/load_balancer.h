// Load balancing decisions: pure functions over endpoint availability (no I/O, time passed in).
#pragma once

#include <cstddef>
#include <span>

#include "base/clock.h"

namespace skiff::upstream {

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
