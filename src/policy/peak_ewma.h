// PeakEwma: a latency estimate per endpoint for latency-aware load balancing (linkerd's and
// Finagle's Peak-EWMA, picked by P2C with cost = estimate × (active requests + 1)). A slower
// response than the estimate raises it at once (the peak); faster ones pull it down as an
// exponentially weighted moving average whose weight decays with elapsed time (|decay|). An
// idle endpoint's estimate decays toward zero, so it gets tried again. A RESOURCE_EXHAUSTED
// reply counts as at least |resource_exhausted_penalty|: rate-limited endpoints answer fast, and
// without the penalty they would attract more traffic (linkerd's "load biaser").
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "base/clock.h"
#include "base/error.h"
#include "policy/p2c.h"

namespace skiff::policy {

struct PeakEwmaParams {
  base::Duration decay = std::chrono::seconds(10);                      // time constant
  base::Duration default_rtt = std::chrono::milliseconds(30);           // before any response
  base::Duration resource_exhausted_penalty = std::chrono::seconds(5);  // 0 disables

  base::Result<void> validate() const;
};

// Per worker and endpoint; not thread-safe (each worker measures its own responses). The
// parameters are passed in rather than stored, so an estimate is 16 bytes.
class PeakEwma {
 public:
  // One response from this endpoint, |rtt| after the attempt started. |resource_exhausted|:
  // its status was RESOURCE_EXHAUSTED.
  void observe(base::Duration rtt, bool resource_exhausted, const PeakEwmaParams& params,
               base::TimePoint now);

  // An attempt ended without a response |elapsed| after it started (per-try timeout, deadline,
  // reset, cancel). The endpoint took at least that long, so it is a sample only when slower
  // than the estimate at |now| (|active_requests| as for estimate_ns): an abandoned attempt
  // never makes an endpoint look faster. Returns whether it was taken.
  bool observe_abandoned(base::Duration elapsed, uint32_t active_requests,
                         const PeakEwmaParams& params, base::TimePoint now);

  // The estimate at |now| in nanoseconds. With |active_requests| > 0 it is the stored value:
  // an endpoint that stopped answering must not look fast because time passes. When idle it
  // decays by exp(−elapsed / decay).
  double estimate_ns(uint32_t active_requests, const PeakEwmaParams& params,
                     base::TimePoint now) const;

  // estimate × (active_requests + 1): what P2C compares.
  double cost(uint32_t active_requests, const PeakEwmaParams& params, base::TimePoint now) const;

  bool has_observation() const { return observed_; }

 private:
  double ewma_ns_ = 0;
  base::TimePoint updated_at_{};
  bool observed_ = false;
};

struct EwmaEndpoint {
  EndpointLoad load;
  PeakEwma latency;
};

// P2C over PeakEwma cost, with the same eligibility and |avoid| rules as pick_least_request.
std::optional<size_t> pick_peak_ewma(std::span<const EwmaEndpoint> endpoints,
                                     const PeakEwmaParams& params, const PickOptions& options,
                                     uint64_t random, base::TimePoint now);

}  // namespace skiff::policy
