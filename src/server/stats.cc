// Stats: sums of per-worker connection statistics, plus the shared policy state, for /metrics
// and /clusters.
#include "server/stats.h"

#include <chrono>
#include <nlohmann/json.hpp>

namespace skiff::server {
namespace {

using Labels = telemetry::Families::Labels;

// |field| of |one| summed over every worker, where |one| picks a worker's ConnectionStats.
template <typename Pick, typename Field>
double sum(const AllWorkerStats& stats, Pick one, Field field) {
  uint64_t total = 0;
  for (const auto& w : stats) total += field(one(*w));
  return static_cast<double>(total);
}

// A level (UpDownCounter) summed over every worker.
template <typename Pick, typename Field>
double level(const AllWorkerStats& stats, Pick one, Field field) {
  int64_t total = 0;
  for (const auto& w : stats) total += field(one(*w)).value();
  return static_cast<double>(std::max<int64_t>(0, total));
}

// The TLS and HTTP/2 families, for a listener or a cluster (side + name).
template <typename Each>
void connection_families(telemetry::Families& out, const Labels& labels, Each each) {
  auto total = [&](auto field) {
    double n = 0;
    each([&](const net::ConnectionStats& s) { n += static_cast<double>(field(s)); });
    return n;
  };
  out.counter("skiff_tls_handshakes_total", "TLS handshakes completed.", labels,
              total([](const auto& s) { return s.tls_handshakes.value(); }));
  out.counter("skiff_tls_handshake_failures_total",
              "TLS handshakes that failed (bad or missing certificate, no ALPN h2, timeout).",
              labels, total([](const auto& s) { return s.tls_handshake_failures.value(); }));
  out.counter("skiff_http2_protocol_errors_total",
              "HTTP/2 connections ended by a protocol error (sent or received).", labels,
              total([](const auto& s) { return s.protocol_errors.value(); }));
  out.counter("skiff_http2_goaways_sent_total", "GOAWAY frames sent.", labels,
              total([](const auto& s) { return s.goaways_sent.value(); }));
  out.counter("skiff_http2_goaways_received_total", "GOAWAY frames received.", labels,
              total([](const auto& s) { return s.goaways_received.value(); }));
}

// Counts are summed as doubles (Prometheus's type); /clusters shows them as integers.
uint64_t count(double v) { return static_cast<uint64_t>(v); }

const char* breaker_state_name(policy::BreakerState s) {
  switch (s) {
    case policy::BreakerState::kClosed:
      return "closed";
    case policy::BreakerState::kOpen:
      return "open";
    case policy::BreakerState::kHalfOpen:
      return "half_open";
  }
  return "closed";
}

}  // namespace

WorkerStats::WorkerStats(const proxy::Snapshot& snapshot) : listeners(snapshot.listeners.size()) {
  endpoints.reserve(snapshot.clusters.size());
  for (const upstream::ClusterSpec& c : snapshot.clusters)
    endpoints.emplace_back(c.endpoints.size());
}

void add_collectors(telemetry::Metrics& metrics, const proxy::Snapshot& snapshot,
                    const AllWorkerStats& stats) {
  metrics.add_collector([&snapshot, &stats](telemetry::Families& out) {
    for (size_t l = 0; l < snapshot.listeners.size(); ++l) {
      const std::string& name = snapshot.listeners[l].name;
      auto one = [l](const WorkerStats& w) -> const net::ConnectionStats& {
        return w.listeners[l];
      };
      out.gauge("skiff_downstream_connections", "Open downstream connections.",
                {{"listener", name}},
                level(
                    stats, one, [](const auto& s) -> auto& { return s.connections; }));
      out.counter("skiff_downstream_connections_total", "Downstream connections accepted.",
                  {{"listener", name}},
                  sum(stats, one, [](const auto& s) { return s.connections.up.value(); }));
      out.gauge("skiff_downstream_active_streams", "Open downstream HTTP/2 streams.",
                {{"listener", name}},
                level(
                    stats, one, [](const auto& s) -> auto& { return s.streams; }));
      out.counter("skiff_downstream_flush_timeouts_total",
                  "Streams reset (and connections closed) because the client did not read "
                  "their responses within http2.stream_flush_timeout.",
                  {{"listener", name}},
                  sum(stats, one, [](const auto& s) { return s.flush_timeouts.value(); }));
      connection_families(out, {{"side", "listener"}, {"name", name}}, [&](auto&& fn) {
        for (const auto& w : stats) fn(w->listeners[l]);
      });
    }
    for (size_t c = 0; c < snapshot.clusters.size(); ++c) {
      const upstream::ClusterSpec& cluster = snapshot.clusters[c];
      for (size_t e = 0; e < cluster.endpoints.size(); ++e) {
        const Labels labels = {{"cluster", cluster.name}, {"endpoint", cluster.endpoints[e].name}};
        auto one = [c, e](const WorkerStats& w) -> const net::ConnectionStats& {
          return w.endpoints[c][e];
        };
        out.gauge("skiff_upstream_connections", "Open (or opening) upstream connections.", labels,
                  level(
                      stats, one, [](const auto& s) -> auto& { return s.connections; }));
        out.counter("skiff_upstream_connections_total", "Upstream connections dialled.", labels,
                    sum(stats, one, [](const auto& s) { return s.connections.up.value(); }));
        out.counter("skiff_upstream_connect_failures_total",
                    "Upstream connections that failed before HTTP/2 was up (refused, timeout, "
                    "TLS).",
                    labels,
                    sum(stats, one, [](const auto& s) { return s.connect_failures.value(); }));
        out.counter("skiff_upstream_streams_total", "Upstream streams (attempts) opened.", labels,
                    sum(stats, one, [](const auto& s) { return s.streams.up.value(); }));
        out.gauge("skiff_upstream_active_streams", "Open upstream streams.", labels,
                  level(
                      stats, one, [](const auto& s) -> auto& { return s.streams; }));
        if (cluster.outliers) {
          const auto now = base::SteadyClock::now();
          out.gauge("skiff_outlier_ejected", "1 while outlier detection has ejected the endpoint.",
                    labels, cluster.outliers->is_ejected(e, now) ? 1 : 0);
          out.counter("skiff_outlier_ejections_total", "Outlier ejections of the endpoint.", labels,
                      static_cast<double>(cluster.outliers->ejections(e)));
        }
      }
      for (int r = 0; r < policy::kClusterResourceCount; ++r) {
        const auto resource = static_cast<policy::ClusterResource>(r);
        const Labels labels = {{"cluster", cluster.name},
                               {"resource", std::string(policy::to_string(resource))}};
        out.gauge("skiff_cluster_active",
                  "Units of the cluster's thresholds in use (all workers): connections, pending "
                  "requests, active requests, active retries.",
                  labels, cluster.limits->active(resource));
        out.gauge("skiff_cluster_limit", "The cluster's threshold (circuit_breaker) per resource.",
                  labels, cluster.limits->limit(resource));
      }
      connection_families(out, {{"side", "cluster"}, {"name", cluster.name}}, [&](auto&& fn) {
        for (const auto& w : stats) {
          for (const net::ConnectionStats& s : w->endpoints[c]) fn(s);
        }
      });
    }
    // Per-route shared policy state. Routes that share a series (same service and method on
    // different authorities) report the first one's, so no series is emitted twice.
    std::vector<bool> seen(snapshot.series.size(), false);
    for (const proxy::ListenerView& view : snapshot.listeners) {
      for (size_t r = 0; r < view.policies.size(); ++r) {
        const proxy::RoutePolicy& p = view.policies[r];
        const uint32_t series = view.route_series[r];
        if (!p.breaker || seen[series]) continue;
        seen[series] = true;
        const telemetry::CallSeriesLabels& s = snapshot.series[series];
        // A service-wide route's series covers several method breakers: the worst one shows.
        const policy::BreakerState state = p.breaker->worst_state();
        for (policy::BreakerState each :
             {policy::BreakerState::kClosed, policy::BreakerState::kOpen,
              policy::BreakerState::kHalfOpen}) {
          out.gauge("skiff_circuit_breaker_state",
                    "1 for the route's circuit breaker's current state.",
                    {{"listener", s.listener},
                     {"service", s.service},
                     {"method", s.method},
                     {"state", breaker_state_name(each)}},
                    each == state ? 1 : 0);
        }
        out.counter("skiff_circuit_breaker_opened_total", "Times the route's breaker opened.",
                    {{"listener", s.listener}, {"service", s.service}, {"method", s.method}},
                    static_cast<double>(p.breaker->times_opened()));
      }
    }
  });
}

std::string clusters_json(const proxy::Snapshot& snapshot, const AllWorkerStats& stats) {
  using nlohmann::json;
  const auto now = base::SteadyClock::now();
  json clusters = json::array();
  for (size_t c = 0; c < snapshot.clusters.size(); ++c) {
    const upstream::ClusterSpec& cluster = snapshot.clusters[c];
    json endpoints = json::array();
    for (size_t e = 0; e < cluster.endpoints.size(); ++e) {
      auto one = [c, e](const WorkerStats& w) -> const net::ConnectionStats& {
        return w.endpoints[c][e];
      };
      json endpoint = {
          {"name", cluster.endpoints[e].name},
          {"address", cluster.endpoints[e].address.to_string()},
          {"connections", count(level(
                              stats, one, [](const auto& s) -> auto& { return s.connections; }))},
          {"active_requests", count(level(
                                  stats, one, [](const auto& s) -> auto& { return s.streams; }))},
          {"requests_total",
           count(sum(stats, one, [](const auto& s) { return s.streams.up.value(); }))},
          {"connect_failures",
           count(sum(stats, one, [](const auto& s) { return s.connect_failures.value(); }))},
      };
      bool ejected = false;
      if (cluster.outliers) {
        ejected = cluster.outliers->is_ejected(e, now);
        endpoint["ejections_total"] = cluster.outliers->ejections(e);
        if (ejected) {
          endpoint["ejected_for_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(
                                           cluster.outliers->ejected_until(e) - now)
                                           .count();
        }
      }
      endpoint["ejected"] = ejected;
      endpoint["health"] = ejected ? "ejected" : "healthy";
      endpoints.push_back(std::move(endpoint));
    }
    json limits = json::object();
    for (int r = 0; r < policy::kClusterResourceCount; ++r) {
      const auto resource = static_cast<policy::ClusterResource>(r);
      limits[std::string(policy::to_string(resource))] = {
          {"active", cluster.limits->active(resource)}, {"max", cluster.limits->limit(resource)}};
    }
    clusters.push_back({{"name", cluster.name},
                        {"tls", cluster.tls != nullptr},
                        {"outlier_detection", cluster.outliers != nullptr},
                        {"limits", std::move(limits)},
                        {"endpoints", std::move(endpoints)}});
  }
  json breakers = json::array();
  for (const proxy::ListenerView& view : snapshot.listeners) {
    for (size_t r = 0; r < view.policies.size(); ++r) {
      const proxy::RoutePolicy& p = view.policies[r];
      if (!p.breaker) continue;
      const telemetry::CallSeriesLabels& s = snapshot.series[view.route_series[r]];
      p.breaker->for_each([&](std::string_view path, const policy::CircuitBreaker& b) {
        // "path": the method of a breaker on a service-wide route ("" for a single-method
        // route's breaker, "_other" for the one methods share past the table's size).
        breakers.push_back({{"listener", s.listener},
                            {"service", s.service},
                            {"method", s.method},
                            {"route", r},
                            {"path", path},
                            {"state", breaker_state_name(b.state())},
                            {"consecutive_failures", b.consecutive_failures()},
                            {"times_opened", b.times_opened()}});
      });
    }
  }
  return json{{"clusters", std::move(clusters)}, {"circuit_breakers", std::move(breakers)}}.dump(
             2) +
         "\n";
}

}  // namespace skiff::server
