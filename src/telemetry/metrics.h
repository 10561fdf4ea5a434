// Metrics: skiff's Prometheus exposition. Counters on the request path are plain per-worker
// base::Counter cells (one writer each, no shared cache line); a scrape sums them across
// workers into prometheus-cpp MetricFamily values and renders the text format.
//
// Call series are labelled (listener, service, method) from the route table, not from the
// request: a method that no route names is counted under method="_other" (and a service no
// route names under service="_other"), so a client sending random :paths can't grow the series.
#pragma once

#include <prometheus/metric_family.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/counter.h"

namespace skiff::telemetry {

// The label value for a service or method that no route names.
inline constexpr std::string_view kOtherLabel = "_other";

// Call latency histogram bounds, in seconds: 100 µs to 30 s.
inline constexpr std::array<double, 18> kLatencyBuckets = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1,    0.25,    0.5,    1,     2.5,    5,     10,   20,    30};

inline constexpr size_t kStatusCodes = 17;  // gRPC status 0..16

struct CallSeriesLabels {
  std::string listener;
  std::string service;  // or kOtherLabel
  std::string method;   // or kOtherLabel
  bool operator==(const CallSeriesLabels&) const = default;
};

// One worker's counters for one call series. Its own cache lines: a worker's array never
// shares a line with another worker's.
struct alignas(64) CallCounters {
  base::Counter started;
  std::array<base::Counter, kStatusCodes> finished;               // by final grpc-status
  std::array<base::Counter, kLatencyBuckets.size() + 1> latency;  // per bucket (last: +Inf)
  base::Counter latency_sum_ns;
  base::Counter request_messages;
  base::Counter response_messages;
  base::Counter request_bytes;
  base::Counter response_bytes;
  base::Counter retries;                 // attempts after the first
  base::Counter retry_budget_exhausted;  // a retry the cluster's budget refused
  base::Counter retry_buffer_overflows;  // a request too large to replay: not retryable
  base::Counter hedges;                  // hedged copies after the first
  base::Counter rate_limited;            // answered by the route's rate limit
  base::Counter breaker_rejections;      // answered by the route's open circuit breaker

  // Owning worker only.
  void observe_latency(std::chrono::nanoseconds d);
};

// Builds metric families for one scrape: samples are grouped under their family in the order
// the families were first named.
class Families {
 public:
  using Labels = std::vector<prometheus::ClientMetric::Label>;

  void counter(std::string_view name, std::string_view help, Labels labels, double value);
  void gauge(std::string_view name, std::string_view help, Labels labels, double value);
  void histogram(std::string_view name, std::string_view help, Labels labels,
                 prometheus::ClientMetric::Histogram histogram);

  std::vector<prometheus::MetricFamily>& families() { return families_; }

 private:
  prometheus::MetricFamily& family(std::string_view name, std::string_view help,
                                   prometheus::MetricType type);
  std::vector<prometheus::MetricFamily> families_;
};

class Metrics {
 public:
  // Collects other modules' statistics (connections, breakers, ...) into a scrape.
  using Collector = std::function<void(Families&)>;

  Metrics(std::vector<CallSeriesLabels> series, size_t workers);

  // Worker |w|'s counters, indexed like the series. Stable for this object's lifetime.
  CallCounters* worker_calls(size_t w) { return workers_[w].get(); }

  // Main thread, before the first scrape.
  void add_collector(Collector collector) { collectors_.push_back(std::move(collector)); }

  // Any thread: the Prometheus text exposition of everything.
  std::string render() const;
  // The call families alone (for tests and the scrape).
  void collect_calls(Families& out) const;

 private:
  std::vector<CallSeriesLabels> series_;
  std::vector<std::unique_ptr<CallCounters[]>> workers_;
  std::vector<Collector> collectors_;
};

// The Prometheus label value for a gRPC status code ("OK", "UNAVAILABLE", ...).
std::string_view status_label(size_t code);

}  // namespace skiff::telemetry
