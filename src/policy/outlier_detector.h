// OutlierDetector: passive health for one cluster's endpoints, shared by all workers. An
// endpoint that fails |consecutive_failures| attempts in a row (outcomes in the route's
// FailureCodes) is ejected for base_ejection_time × (times ejected), capped at
// max_ejection_time, and returns by itself when that passes. At most max_ejection_percent of
// the endpoints are ejected at once (Envoy outlier_detection semantics; the multiplier decays
// by one per healthy |interval|, as Envoy's does).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>

#include "base/clock.h"
#include "base/error.h"

namespace skiff::policy {

struct OutlierDetectorParams {
  uint32_t consecutive_failures = 5;  // Envoy consecutive_5xx
  base::Duration base_ejection_time = std::chrono::seconds(30);
  base::Duration max_ejection_time = std::chrono::seconds(300);
  uint32_t max_ejection_percent = 10;                  // 0..100
  base::Duration interval = std::chrono::seconds(10);  // multiplier decay period

  // The most endpoints of |endpoint_count| that may be ejected at once: floor(count ×
  // percent / 100), but at least 1 when percent > 0 and there are 2 or more endpoints (so
  // small clusters can still shed a bad endpoint, as Envoy ejects at least one host), and
  // never all of them unless percent is 100.
  size_t max_ejected(size_t endpoint_count) const;

  base::Result<void> validate() const;
};

enum class OutlierEvent : uint8_t {
  kNone,
  kEjected,  // this result ejected the endpoint
  kCapped,   // this result would have ejected it, but max_ejection_percent was reached
};

// Thread-safety: per endpoint, the consecutive-failure count, the ejection end time and the
// ejection count are atomics on their own cache line; is_ejected() (asked by the load balancer
// on every pick) is one relaxed load, and a success is one load (plus a store only to reset a
// non-zero count). Ejecting takes a mutex, because checking the cluster-wide cap and ejecting
// must be one step; it runs only when an endpoint reaches its failure threshold. Relaxed order
// is enough: each endpoint's fields are read independently, and the cap is decided under the
// mutex.
class OutlierDetector {
 public:
  OutlierDetector(const OutlierDetectorParams& params, size_t endpoint_count);
  OutlierDetector(const OutlierDetector&) = delete;
  OutlierDetector& operator=(const OutlierDetector&) = delete;

  // One finished attempt on endpoint |index| (< size()); |failure| = its outcome is in the
  // route's FailureCodes. Results that arrive while the endpoint is ejected (calls started
  // before it was) are ignored.
  OutlierEvent on_result(size_t index, bool failure, base::TimePoint now);

  bool is_ejected(size_t index, base::TimePoint now) const;
  // Ejected until this time (in the past when not ejected).
  base::TimePoint ejected_until(size_t index) const;
  uint32_t times_ejected(size_t index) const;
  // Ejections of |index| since start (a counter: unlike times_ejected, it never decays).
  uint64_t ejections(size_t index) const;
  // Endpoints ejected at |now|: O(size()).
  size_t ejected_count(base::TimePoint now) const;
  size_t size() const { return count_; }

 private:
  struct alignas(64) Endpoint {
    std::atomic<uint32_t> consecutive{0};
    std::atomic<uint32_t> times_ejected{0};
    std::atomic<uint64_t> ejections{0};
    std::atomic<int64_t> ejected_until_ns{std::numeric_limits<int64_t>::min()};
  };

  OutlierEvent try_eject(size_t index, base::TimePoint now);

  const OutlierDetectorParams params_;
  const size_t count_;
  std::unique_ptr<Endpoint[]> endpoints_;
  std::mutex mu_;  // ejections only
};

}  // namespace skiff::policy
