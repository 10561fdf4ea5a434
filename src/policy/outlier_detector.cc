// OutlierDetector: consecutive-failure ejection with a cluster-wide cap.
#include "policy/outlier_detector.h"

#include <algorithm>
#include <limits>

namespace skiff::policy {
namespace {

int64_t to_ns(base::TimePoint t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

size_t OutlierDetectorParams::max_ejected(size_t endpoint_count) const {
  if (endpoint_count == 0 || max_ejection_percent == 0) return 0;
  if (max_ejection_percent >= 100) return endpoint_count;
  size_t n = endpoint_count * max_ejection_percent / 100;
  n = std::max<size_t>(n, 1);
  return std::min(n, endpoint_count - 1);
}

base::Result<void> OutlierDetectorParams::validate() const {
  if (consecutive_failures < 1)
    return base::fail("outlier_detection.consecutive_failures must be >= 1");
  if (base_ejection_time <= base::Duration::zero()) {
    return base::fail("outlier_detection.base_ejection_time must be > 0");
  }
  if (max_ejection_time < base_ejection_time) {
    return base::fail("outlier_detection.max_ejection_time must be >= base_ejection_time");
  }
  if (max_ejection_percent > 100)
    return base::fail("outlier_detection.max_ejection_percent must be 0..100");
  if (interval <= base::Duration::zero())
    return base::fail("outlier_detection.interval must be > 0");
  return {};
}

OutlierDetector::OutlierDetector(const OutlierDetectorParams& params, size_t endpoint_count)
    : params_(params),
      count_(endpoint_count),
      endpoints_(std::make_unique<Endpoint[]>(endpoint_count)) {}

bool OutlierDetector::is_ejected(size_t index, base::TimePoint now) const {
  return endpoints_[index].ejected_until_ns.load(std::memory_order_relaxed) > to_ns(now);
}

base::TimePoint OutlierDetector::ejected_until(size_t index) const {
  const int64_t ns = endpoints_[index].ejected_until_ns.load(std::memory_order_relaxed);
  if (ns == std::numeric_limits<int64_t>::min()) return base::TimePoint::min();
  return base::TimePoint(std::chrono::duration_cast<base::Duration>(std::chrono::nanoseconds(ns)));
}

uint32_t OutlierDetector::times_ejected(size_t index) const {
  return endpoints_[index].times_ejected.load(std::memory_order_relaxed);
}

uint64_t OutlierDetector::ejections(size_t index) const {
  return endpoints_[index].ejections.load(std::memory_order_relaxed);
}

size_t OutlierDetector::ejected_count(base::TimePoint now) const {
  size_t n = 0;
  for (size_t i = 0; i < count_; ++i) n += is_ejected(i, now) ? 1 : 0;
  return n;
}

OutlierEvent OutlierDetector::on_result(size_t index, bool failure, base::TimePoint now) {
  Endpoint& e = endpoints_[index];
  if (is_ejected(index, now)) return OutlierEvent::kNone;
  if (!failure) {
    if (e.consecutive.load(std::memory_order_relaxed) != 0) {
      e.consecutive.store(0, std::memory_order_relaxed);
    }
    return OutlierEvent::kNone;
  }
  if (e.consecutive.fetch_add(1, std::memory_order_relaxed) + 1 < params_.consecutive_failures) {
    return OutlierEvent::kNone;
  }
  return try_eject(index, now);
}

OutlierEvent OutlierDetector::try_eject(size_t index, base::TimePoint now) {
  std::lock_guard lock(mu_);
  Endpoint& e = endpoints_[index];
  // Re-check under the lock: another worker may have ejected it, or a success reset the count.
  if (is_ejected(index, now) ||
      e.consecutive.load(std::memory_order_relaxed) < params_.consecutive_failures) {
    return OutlierEvent::kNone;
  }
  // Start counting afresh either way, so a capped endpoint needs another full run of failures
  // before it takes this lock again.
  e.consecutive.store(0, std::memory_order_relaxed);
  if (ejected_count(now) >= params_.max_ejected(count_)) return OutlierEvent::kCapped;

  // The multiplier decays by one for each |interval| the endpoint has been back.
  uint32_t times = e.times_ejected.load(std::memory_order_relaxed);
  const int64_t last_end = e.ejected_until_ns.load(std::memory_order_relaxed);
  if (times > 0 && last_end != std::numeric_limits<int64_t>::min()) {
    const int64_t healthy_ns = to_ns(now) - last_end;
    const int64_t interval_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(params_.interval).count();
    const int64_t decay = healthy_ns / interval_ns;
    times = decay >= times ? 0 : times - static_cast<uint32_t>(decay);
  }
  times += 1;
  // base × times, capped; compare in double to avoid overflow for large multipliers.
  const double want = static_cast<double>(params_.base_ejection_time.count()) * times;
  const base::Duration length = want >= static_cast<double>(params_.max_ejection_time.count())
                                    ? params_.max_ejection_time
                                    : params_.base_ejection_time * times;
  e.times_ejected.store(times, std::memory_order_relaxed);
  e.ejections.fetch_add(1, std::memory_order_relaxed);
  e.ejected_until_ns.store(to_ns(now + length), std::memory_order_relaxed);
  return OutlierEvent::kEjected;
}

}  // namespace skiff::policy
