// Round robin and reconnect backoff.
#include "upstream/load_balancer.h"

#include <algorithm>

namespace skiff::upstream {

size_t pick_round_robin(std::span<const EndpointHealth> health, size_t* cursor,
                        base::TimePoint now) {
  const size_t n = health.size();
  for (size_t i = 0; i < n; ++i) {
    size_t index = (*cursor + i) % n;
    if (health[index].backoff_until <= now && health[index].ejected_until <= now) {
      *cursor = (index + 1) % n;
      return index;
    }
  }
  return n;
}

base::Duration reconnect_backoff(unsigned failures, double jitter01) {
  using std::chrono::milliseconds;
  unsigned shift = std::min(failures == 0 ? 0u : failures - 1, 6u);
  milliseconds base = std::min(milliseconds(100) * (1u << shift), milliseconds(5000));
  auto off = milliseconds(static_cast<long>(base.count() * 0.2 * jitter01));
  return base - off;
}

}  // namespace skiff::upstream
