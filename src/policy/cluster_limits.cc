// ClusterLimits: overshoot-and-undo counters.
#include "policy/cluster_limits.h"

#include <algorithm>
#include <cmath>

namespace skiff::policy {

base::Result<void> ClusterLimitsParams::validate() const {
  if (max_connections < 1 || max_pending_requests < 1 || max_requests < 1) {
    return base::fail(
        "circuit_breaker: max_connections, max_pending_requests and max_requests "
        "must be >= 1");
  }
  if (retry_budget &&
      !(retry_budget->budget_percent >= 0.0 && retry_budget->budget_percent <= 100.0)) {
    return base::fail("circuit_breaker.retry_budget.budget_percent must be 0..100");
  }
  return {};
}

std::string_view to_string(ClusterResource resource) {
  switch (resource) {
    case ClusterResource::kConnections:
      return "connections";
    case ClusterResource::kPendingRequests:
      return "pending_requests";
    case ClusterResource::kRequests:
      return "requests";
    case ClusterResource::kRetries:
      return "retries";
  }
  return "?";
}

ClusterLimits::ClusterLimits(const ClusterLimitsParams& params) : params_(params) {}

uint32_t ClusterLimits::limit(ClusterResource resource) const {
  switch (resource) {
    case ClusterResource::kConnections:
      return params_.max_connections;
    case ClusterResource::kPendingRequests:
      return params_.max_pending_requests;
    case ClusterResource::kRequests:
      return params_.max_requests;
    case ClusterResource::kRetries: {
      if (!params_.retry_budget) return params_.max_retries;
      const double load = static_cast<double>(active(ClusterResource::kRequests)) +
                          static_cast<double>(active(ClusterResource::kPendingRequests));
      const auto budget =
          static_cast<uint32_t>(std::floor(load * params_.retry_budget->budget_percent / 100.0));
      return std::max(budget, params_.retry_budget->min_retry_concurrency);
    }
  }
  return 0;
}

bool ClusterLimits::try_acquire(ClusterResource resource) {
  const uint32_t max = limit(resource);
  std::atomic<uint32_t>& counter = counters_[static_cast<int>(resource)].value;
  if (counter.fetch_add(1, std::memory_order_relaxed) < max) return true;
  counter.fetch_sub(1, std::memory_order_relaxed);
  return false;
}

void ClusterLimits::release(ClusterResource resource) {
  counters_[static_cast<int>(resource)].value.fetch_sub(1, std::memory_order_relaxed);
}

uint32_t ClusterLimits::active(ClusterResource resource) const {
  return counters_[static_cast<int>(resource)].value.load(std::memory_order_relaxed);
}

uint32_t ClusterLimits::remaining(ClusterResource resource) const {
  const uint32_t max = limit(resource);
  const uint32_t used = active(resource);
  return used >= max ? 0 : max - used;
}

ClusterLimits::Lease ClusterLimits::acquire(ClusterResource resource) {
  if (!try_acquire(resource)) return Lease();
  return Lease(this, resource);
}

ClusterLimits::Lease::Lease(Lease&& other) noexcept
    : limits_(other.limits_), resource_(other.resource_) {
  other.limits_ = nullptr;
}

ClusterLimits::Lease& ClusterLimits::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    reset();
    limits_ = other.limits_;
    resource_ = other.resource_;
    other.limits_ = nullptr;
  }
  return *this;
}

void ClusterLimits::Lease::reset() {
  if (limits_ != nullptr) limits_->release(resource_);
  limits_ = nullptr;
}

}  // namespace skiff::policy
