// P2C least-request.
#include "policy/p2c.h"

#include "policy/outlier_detector.h"

namespace skiff::policy {

bool is_eligible(std::span<const EndpointLoad> endpoints, size_t index, const PickOptions& options,
                 base::TimePoint now) {
  if (endpoints[index].unavailable_until > now) return false;
  return options.ejections == nullptr || index >= options.ejections->size() ||
         !options.ejections->is_ejected(index, now);
}

std::optional<size_t> pick_least_request(std::span<const EndpointLoad> endpoints,
                                         const PickOptions& options, uint64_t random,
                                         base::TimePoint now) {
  return pick_two_choices(
      endpoints.size(), options.avoid, random,
      [&](size_t i) { return is_eligible(endpoints, i, options, now); },
      [&](size_t i) { return endpoints[i].active_requests; });
}

}  // namespace skiff::policy
