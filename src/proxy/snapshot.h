// Snapshot: the read-only data-plane view a worker serves with (C11). Built once per config
// load by server/, shared by every worker, never mutated.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "grpc/status.h"
#include "h2/header.h"
#include "policy/circuit_breaker.h"
#include "policy/failure_codes.h"
#include "policy/hedging_policy.h"
#include "policy/keyed_token_buckets.h"
#include "policy/method_breakers.h"
#include "policy/retry_budget.h"
#include "policy/retry_policy.h"
#include "policy/token_bucket.h"
#include "route/route_table.h"
#include "telemetry/metrics.h"
#include "upstream/cluster_pool.h"

namespace skiff::proxy {

// Per-route policy state, indexed by route::Route::index. The snapshot is shared read-only;
// the buckets and breakers it points to are atomics shared by every worker.
struct RoutePolicy {
  // What counts as a failure (breaker, outlier detection, retry's default `on`).
  policy::FailureCodes failure_codes = policy::FailureCodes::defaults();
  std::shared_ptr<policy::TokenBucket> rate_limit;  // null = no limit (or a keyed one)
  // A rate limit per caller identity (rate_limit_key_header empty) or per header value.
  std::shared_ptr<policy::KeyedTokenBuckets> keyed_rate_limit;
  std::string rate_limit_key_header;
  // Request messages per second on each stream; none = no limit.
  std::optional<policy::TokenBucketParams> message_rate_limit;
  grpc::StatusCode rate_limited_code = grpc::StatusCode::kResourceExhausted;
  std::shared_ptr<policy::MethodBreakers> breaker;  // one per method; null = no breaker
  std::optional<policy::RetryPolicy> retry;         // none = a single attempt
  // gRFC A6 hedging (never together with retry); none = one copy of the request.
  std::optional<policy::HedgingPolicy> hedging;
  uint32_t retry_buffer_bytes = 64 * 1024;            // retry's or hedging's buffer_bytes
  std::shared_ptr<policy::RetryBudget> retry_budget;  // the cluster's (gRFC A6 throttling)
  // Subtracted from the client's grpc-timeout, so skiff answers DEADLINE_EXCEEDED first.
  base::Duration grpc_timeout_offset{};
  uint32_t max_request_message_bytes = UINT32_MAX;
  uint32_t max_response_message_bytes = UINT32_MAX;
};

struct ListenerView {
  std::string name;
  route::RouteTable routes;           // Route::cluster indexes Snapshot::clusters
  std::vector<RoutePolicy> policies;  // one per route, by Route::index
  // Metric series (telemetry::Metrics) of each route, by Route::index, and of calls no route
  // takes (service and method "_other").
  std::vector<uint32_t> route_series;
  uint32_t other_series = 0;
};

struct Snapshot {
  std::vector<ListenerView> listeners;
  std::vector<upstream::ClusterSpec> clusters;
  h2::Limits limits;
  std::vector<telemetry::CallSeriesLabels> series;  // indexed by ListenerView's series ids
};

}  // namespace skiff::proxy
