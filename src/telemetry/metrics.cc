// Metrics: per-worker call counters summed at scrape time, rendered by prometheus-cpp.
#include "telemetry/metrics.h"

#include <prometheus/text_serializer.h>

#include <algorithm>

#include "base/status_code_names.h"

namespace skiff::telemetry {
namespace {

using Label = prometheus::ClientMetric::Label;

constexpr double kNanosPerSecond = 1e9;

// Bucket upper bounds in nanoseconds, so observing compares integers.
constexpr std::array<int64_t, kLatencyBuckets.size()> bucket_bounds_ns() {
  std::array<int64_t, kLatencyBuckets.size()> out{};
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<int64_t>(kLatencyBuckets[i] * kNanosPerSecond + 0.5);
  }
  return out;
}
constexpr auto kBucketBoundsNs = bucket_bounds_ns();

}  // namespace

std::string_view status_label(size_t code) {
  return base::status_code_name(static_cast<uint32_t>(code));
}

void CallCounters::observe_latency(std::chrono::nanoseconds d) {
  const int64_t ns = std::max<int64_t>(0, d.count());
  size_t i = 0;
  while (i < kBucketBoundsNs.size() && ns > kBucketBoundsNs[i]) ++i;
  latency[i].add();
  latency_sum_ns.add(static_cast<uint64_t>(ns));
}

prometheus::MetricFamily& Families::family(std::string_view name, std::string_view help,
                                           prometheus::MetricType type) {
  for (prometheus::MetricFamily& f : families_) {
    if (f.name == name) return f;
  }
  families_.push_back(prometheus::MetricFamily{std::string(name), std::string(help), type, {}});
  return families_.back();
}

void Families::counter(std::string_view name, std::string_view help, Labels labels, double value) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  m.counter.value = value;
  family(name, help, prometheus::MetricType::Counter).metric.push_back(std::move(m));
}

void Families::gauge(std::string_view name, std::string_view help, Labels labels, double value) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = value;
  family(name, help, prometheus::MetricType::Gauge).metric.push_back(std::move(m));
}

void Families::histogram(std::string_view name, std::string_view help, Labels labels,
                         prometheus::ClientMetric::Histogram histogram) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  m.histogram = std::move(histogram);
  family(name, help, prometheus::MetricType::Histogram).metric.push_back(std::move(m));
}

Metrics::Metrics(std::vector<CallSeriesLabels> series, size_t workers)
    : series_(std::move(series)) {
  for (size_t w = 0; w < workers; ++w) {
    workers_.push_back(std::make_unique<CallCounters[]>(std::max<size_t>(1, series_.size())));
  }
}

void Metrics::collect_calls(Families& out) const {
  auto sum = [this](size_t s, auto field) {
    uint64_t total = 0;
    for (const auto& w : workers_) total += field(w[s]).value();
    return static_cast<double>(total);
  };
  for (size_t s = 0; s < series_.size(); ++s) {
    const CallSeriesLabels& l = series_[s];
    const Families::Labels labels = {
        {"listener", l.listener}, {"service", l.service}, {"method", l.method}};
    out.counter("skiff_calls_started_total", "Calls received (request headers complete).", labels,
                sum(
                    s, [](const CallCounters& c) -> auto& { return c.started; }));
    for (size_t code = 0; code < kStatusCodes; ++code) {
      double n = sum(
          s, [code](const CallCounters& c) -> auto& { return c.finished[code]; });
      if (n == 0) continue;  // only codes that happened: 17 zero series per method add noise
      Families::Labels with_code = labels;
      with_code.push_back({"code", std::string(status_label(code))});
      out.counter("skiff_calls_total",
                  "Calls finished, by the grpc-status the caller received (CANCELLED when the "
                  "caller reset the stream).",
                  std::move(with_code), n);
    }
    prometheus::ClientMetric::Histogram h;
    uint64_t cumulative = 0;
    for (size_t b = 0; b <= kLatencyBuckets.size(); ++b) {
      cumulative += static_cast<uint64_t>(sum(
          s, [b](const CallCounters& c) -> auto& { return c.latency[b]; }));
      h.bucket.push_back({cumulative, b < kLatencyBuckets.size()
                                          ? kLatencyBuckets[b]
                                          : std::numeric_limits<double>::infinity()});
    }
    h.sample_count = cumulative;
    h.sample_sum = sum(
                       s, [](const CallCounters& c) -> auto& { return c.latency_sum_ns; }) /
                   kNanosPerSecond;
    out.histogram("skiff_call_duration_seconds",
                  "Call duration, request headers to the end of the response.", labels,
                  std::move(h));
    struct Plain {
      const char* name;
      const char* help;
      const base::Counter& (*field)(const CallCounters&);
    };
    static constexpr Plain kPlain[] = {
        {"skiff_request_messages_total", "gRPC request messages forwarded upstream.",
         [](const CallCounters& c) -> auto& {return c.request_messages;
  }
}
, {"skiff_response_messages_total", "gRPC response messages forwarded downstream.",
   [](const CallCounters& c) -> auto& {return c.response_messages;
}  // namespace skiff::telemetry
}
, {"skiff_request_bytes_total", "Request DATA bytes received from callers.",
   [](const CallCounters& c) -> auto& {return c.request_bytes;
}
}
, {"skiff_response_bytes_total", "Response DATA bytes forwarded to callers.",
   [](const CallCounters& c) -> auto& {return c.response_bytes;
}
}
, {"skiff_retries_total", "Retry attempts (attempts after the first).",
   [](const CallCounters& c) -> auto& {return c.retries;
}
}
, {"skiff_retry_budget_exhausted_total",
   "Retries not made because the cluster's retry budget was spent.",
   [](const CallCounters& c) -> auto& {return c.retry_budget_exhausted;
}
}
, {"skiff_retry_buffer_overflows_total",
   "Calls that became unretryable because the request outgrew the replay buffer.",
   [](const CallCounters& c) -> auto& {return c.retry_buffer_overflows;
}
}
, {"skiff_hedges_total", "Hedged copies sent (copies of a request after the first).",
   [](const CallCounters& c) -> auto& {return c.hedges;
}
}
, {"skiff_rate_limited_total", "Calls rejected by the route's rate limit.",
   [](const CallCounters& c) -> auto& {return c.rate_limited;
}
}
, {"skiff_circuit_breaker_rejections_total",
   "Calls rejected because the route's circuit breaker was open.",
   [](const CallCounters& c) -> auto& {return c.breaker_rejections;
}
}
,
}
;
for (const Plain& p : kPlain) out.counter(p.name, p.help, labels, sum(s, p.field));
}
}

std::string Metrics::render() const {
  Families families;
  collect_calls(families);
  for (const Collector& c : collectors_) c(families);
  return prometheus::TextSerializer().Serialize(families.families());
}

}  // namespace skiff::telemetry
