// Stats: the per-worker statistics of the modules below proxy/ (connections, TLS, HTTP/2, per
// endpoint), and the scrape-time collectors and /clusters view that read them. Everything here
// is owned by the server for the life of the process, so a scrape never reads freed memory.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "net/connection_stats.h"
#include "proxy/snapshot.h"
#include "telemetry/metrics.h"

namespace skiff::server {

// One worker's counts, written only by that worker.
struct WorkerStats {
  explicit WorkerStats(const proxy::Snapshot& snapshot);
  std::vector<net::ConnectionStats> listeners;               // by snapshot listener
  std::vector<std::vector<net::ConnectionStats>> endpoints;  // [cluster][endpoint]
};

using AllWorkerStats = std::vector<std::unique_ptr<WorkerStats>>;

// Registers collectors for connections, TLS, HTTP/2, endpoints, outlier detection, breakers and
// retry budgets with |metrics|. |snapshot| and |stats| must outlive every scrape.
void add_collectors(telemetry::Metrics& metrics, const proxy::Snapshot& snapshot,
                    const AllWorkerStats& stats);

// /clusters: every cluster's endpoints (connections, active streams, ejection) and every
// route's breaker, as JSON. Any thread.
std::string clusters_json(const proxy::Snapshot& snapshot, const AllWorkerStats& stats);

}  // namespace skiff::server
