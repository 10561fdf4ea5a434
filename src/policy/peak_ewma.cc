// PeakEwma: peak-sensitive, time-decayed latency estimate and its P2C picker.
#include "policy/peak_ewma.h"

#include <algorithm>
#include <cmath>

#include "policy/outlier_detector.h"

namespace skiff::policy {
namespace {

double ns_of(base::Duration d) {
  return static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
}

// Weight of the old estimate after |elapsed|: exp(−elapsed / decay), 1 when no time passed.
double keep(base::Duration elapsed, const PeakEwmaParams& params) {
  const double e = std::max(0.0, ns_of(elapsed));
  const double tau = std::max(1.0, ns_of(params.decay));
  return std::exp(-e / tau);
}

}  // namespace

base::Result<void> PeakEwmaParams::validate() const {
  if (decay <= base::Duration::zero()) return base::fail("peak_ewma.decay must be > 0");
  if (default_rtt <= base::Duration::zero()) return base::fail("peak_ewma.default_rtt must be > 0");
  if (resource_exhausted_penalty < base::Duration::zero()) {
    return base::fail("peak_ewma.resource_exhausted_penalty must be >= 0");
  }
  return {};
}

void PeakEwma::observe(base::Duration rtt, bool resource_exhausted, const PeakEwmaParams& params,
                       base::TimePoint now) {
  double sample = std::max(0.0, ns_of(rtt));
  if (resource_exhausted) sample = std::max(sample, ns_of(params.resource_exhausted_penalty));
  if (!observed_) {
    ewma_ns_ = sample;
    observed_ = true;
  } else if (sample > ewma_ns_) {
    ewma_ns_ = sample;  // the peak: react to slowness at once
  } else {
    const double w = keep(now - updated_at_, params);
    ewma_ns_ = ewma_ns_ * w + sample * (1.0 - w);
  }
  updated_at_ = now;
}

bool PeakEwma::observe_abandoned(base::Duration elapsed, uint32_t active_requests,
                                 const PeakEwmaParams& params, base::TimePoint now) {
  if (ns_of(elapsed) <= estimate_ns(active_requests, params, now)) return false;
  observe(elapsed, /*resource_exhausted=*/false, params, now);
  return true;
}

double PeakEwma::estimate_ns(uint32_t active_requests, const PeakEwmaParams& params,
                             base::TimePoint now) const {
  if (!observed_) return ns_of(params.default_rtt);
  if (active_requests > 0) return ewma_ns_;
  return ewma_ns_ * keep(now - updated_at_, params);
}

double PeakEwma::cost(uint32_t active_requests, const PeakEwmaParams& params,
                      base::TimePoint now) const {
  return estimate_ns(active_requests, params, now) * (static_cast<double>(active_requests) + 1.0);
}

std::optional<size_t> pick_peak_ewma(std::span<const EwmaEndpoint> endpoints,
                                     const PeakEwmaParams& params, const PickOptions& options,
                                     uint64_t random, base::TimePoint now) {
  auto eligible = [&](size_t i) {
    const EwmaEndpoint& e = endpoints[i];
    if (e.load.unavailable_until > now) return false;
    return options.ejections == nullptr || i >= options.ejections->size() ||
           !options.ejections->is_ejected(i, now);
  };
  return pick_two_choices(endpoints.size(), options.avoid, random, eligible, [&](size_t i) {
    return endpoints[i].latency.cost(endpoints[i].load.active_requests, params, now);
  });
}

}  // namespace skiff::policy
