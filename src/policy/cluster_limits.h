// ClusterLimits: Envoy-style cluster circuit-breaker thresholds, counted across all workers:
// connections, pending requests (waiting for a stream slot), active requests and active
// retries, each with a maximum (Envoy defaults: 1024, 1024, 1024, 3). Instead of a fixed
// max_retries, active retries may be capped by a budget: a percentage of active + pending
// requests with a floor (Envoy retry_budget: 20 %, min 3).
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string_view>

#include "base/error.h"

namespace skiff::policy {

struct RetryConcurrencyBudget {
  double budget_percent = 20.0;        // of active + pending requests
  uint32_t min_retry_concurrency = 3;  // always allowed, however few requests are active
};

struct ClusterLimitsParams {
  uint32_t max_connections = 1024;
  uint32_t max_pending_requests = 1024;
  uint32_t max_requests = 1024;
  uint32_t max_retries = 3;
  // When set, replaces max_retries (as Envoy's retry_budget does).
  std::optional<RetryConcurrencyBudget> retry_budget;

  base::Result<void> validate() const;
};

enum class ClusterResource : uint8_t { kConnections, kPendingRequests, kRequests, kRetries };
inline constexpr int kClusterResourceCount = 4;
std::string_view to_string(ClusterResource resource);

// Each counter is a std::atomic<uint32_t> on its own cache line (workers bump different
// counters at different moments of a call). try_acquire() is a fetch_add that is undone when it
// went over the maximum, so the count can exceed the maximum for an instant, but no more than
// the maximum acquisitions ever succeed at once. Relaxed order: the counters publish no data,
// and each one's read-modify-writes are totally ordered, so none is lost.
class ClusterLimits {
 public:
  explicit ClusterLimits(const ClusterLimitsParams& params = {});
  ClusterLimits(const ClusterLimits&) = delete;
  ClusterLimits& operator=(const ClusterLimits&) = delete;

  // Takes one unit of |resource| if under its maximum (for kRetries: the retry maximum or
  // budget). False means overflow: answer UNAVAILABLE (or, for kRetries, skip the retry).
  [[nodiscard]] bool try_acquire(ClusterResource resource);
  // Returns a unit taken by a successful try_acquire().
  void release(ClusterResource resource);

  uint32_t active(ClusterResource resource) const;
  // The current maximum (for kRetries with a budget it moves with the load).
  uint32_t limit(ClusterResource resource) const;
  // limit - active, floored at 0: Envoy's remaining_* gauges.
  uint32_t remaining(ClusterResource resource) const;

  // A held unit that is released when the Lease is destroyed or reset. Move-only.
  class Lease {
   public:
    Lease() = default;
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&& other) noexcept;
    ~Lease() { reset(); }
    void reset();
    explicit operator bool() const { return limits_ != nullptr; }

   private:
    friend class ClusterLimits;
    Lease(ClusterLimits* limits, ClusterResource resource) : limits_(limits), resource_(resource) {}
    ClusterLimits* limits_ = nullptr;
    ClusterResource resource_ = ClusterResource::kRequests;
  };
  // try_acquire() as a Lease; an empty Lease on overflow.
  [[nodiscard]] Lease acquire(ClusterResource resource);

 private:
  struct alignas(64) Counter {
    std::atomic<uint32_t> value{0};
  };
  const ClusterLimitsParams params_;
  Counter counters_[kClusterResourceCount];
};

}  // namespace skiff::policy
