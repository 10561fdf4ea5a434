// The typed, validated configuration: plain structs that config::load produces from YAML.
// Nothing below server/ sees this type; server/ translates it into module parameters.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace skiff::config {

using Millis = std::chrono::milliseconds;

// Where a value came from, for messages that point at the YAML (1-based line and column).
struct Position {
  int line = 0;
  int col = 0;
};

// A "host:port" or "[v6]:port" string, split. The host is not resolved here.
struct Address {
  std::string host;
  uint16_t port = 0;
  Position pos;

  // "host:port" as written, an IPv6 host in brackets ("[::1]:8080").
  std::string to_string() const;
};

// HTTP/2 limits applied to downstream (server) and upstream (client) sessions.
struct Http2 {
  uint32_t max_concurrent_streams = 100;  // per downstream connection
  uint32_t initial_stream_window_bytes = 256 * 1024;
  uint32_t initial_connection_window_bytes = 1024 * 1024;
  uint32_t max_header_list_bytes = 60 * 1024;  // decoded, per request
  uint32_t max_header_count = 100;
  uint32_t max_frame_bytes = 16 * 1024;
  // Downstream: a response the client reads none of for this long, or that has not reached the
  // client this long after the upstream finished it, is reset (a connection: closed).
  Millis stream_flush_timeout{60'000};
};

struct RouteMatch {
  std::string service;    // "pkg.Service"; empty = any service
  std::string method;     // "Method"; empty = any method (requires service)
  std::string authority;  // exact :authority; empty = any
};

// Route `rate_limit` (docs/policies.md): one token bucket per route, shared by all workers.
struct RateLimit {
  double rps = 0;            // required, 0.001..1e9
  uint32_t burst = 1;        // >= 1
  bool unavailable = false;  // status: unavailable (true) or resource_exhausted (default)
  // `key`: none = one bucket for the route; `identity` = one per caller identity;
  // `{ header: NAME }` = one per value of request header NAME (lower-cased here). Keyed buckets
  // live in a table of max_keys slots.
  enum class Key { kNone, kPeer, kHeader } key = Key::kNone;
  std::string key_header;
  uint32_t max_keys = 4096;  // 4..1048576
  Position pos;
};

// Route `message_rate_limit`: request messages per second on each stream (long-lived streams).
struct MessageRateLimit {
  double rps = 0;      // required, 0.001..1e9
  uint32_t burst = 1;  // >= 1
  Position pos;
};

// Route `circuit_breaker` (docs/policies.md "Method breaker"): per route.
struct CircuitBreaker {
  uint32_t consecutive_failures = 5;  // >= 1
  Millis open_for{10000};             // > 0
  uint32_t half_open_probes = 1;      // >= 1
  Position pos;
};

// Route `retry` (docs/policies.md "retry"). Status names are checked by server/ against
// policy::FailureCodes (so the name table lives in one place); errors point at |on_pos|.
struct Retry {
  uint32_t max_attempts = 2;  // attempts, the first included: 1..5
  struct Code {
    std::string name;  // e.g. "unavailable", "connect_failure"
    Position pos;
  };
  std::vector<Code> on;  // empty = the default failure-code set
  std::optional<Millis> per_try_timeout;
  Millis backoff_initial{25};
  Millis backoff_max{250};
  double backoff_multiplier = 2.0;
  uint32_t buffer_bytes = 64 * 1024;  // replay buffer; a larger request is not retried
  Position pos;
};

// Route `hedging` (docs/policies.md "hedging"): gRFC A6 hedging, for idempotent methods only.
// A route has `retry` or `hedging`, not both (as in gRPC service config).
struct Hedging {
  uint32_t max_attempts = 2;           // copies, the first included: 1..5
  Millis hedging_delay{0};             // required, >= 0
  std::vector<Retry::Code> non_fatal;  // `non_fatal_codes`; empty = any error is fatal
  uint32_t buffer_bytes = 64 * 1024;   // replay buffer; a larger request gets one copy
  Position pos;
};

struct Route {
  RouteMatch match;
  std::string cluster;
  std::optional<Millis> timeout;  // cap on the call's deadline; none = no cap
  Millis grpc_timeout_offset{0};  // subtracted from the client's grpc-timeout
  std::optional<RateLimit> rate_limit;
  std::optional<MessageRateLimit> message_rate_limit;
  // What counts as a failure for the breaker, outlier detection and retry's default `on`
  // (names as in retry.on; checked by server/); empty = the default set.
  std::vector<Retry::Code> failure_codes;
  Position failure_codes_pos;
  std::optional<CircuitBreaker> circuit_breaker;
  std::optional<Retry> retry;
  std::optional<Hedging> hedging;
  // Largest gRPC message in each direction (from the 5-byte prefix); none = no limit.
  std::optional<uint32_t> max_request_message_bytes;
  std::optional<uint32_t> max_response_message_bytes;
  // Caller identity patterns (base/spiffe.h syntax, checked); empty = any caller.
  std::vector<std::string> allow;
  Position allow_pos;
  Position pos;
};

// A file named in the config, with where it was named (for errors found when it is loaded).
struct FilePath {
  std::string path;  // as written; relative paths are relative to skiff's working directory
  Position pos;
};

// TLS termination on a listener.
struct ListenerTls {
  FilePath cert;       // PEM certificate chain, leaf first
  FilePath key;        // PEM private key
  FilePath client_ca;  // PEM CA bundle; empty path = clients are not asked for certificates
  bool require_client_cert = true;  // only meaningful with client_ca
  Position pos;
};

struct Listener {
  std::string name;
  Address address;
  std::optional<ListenerTls> tls;  // none = plaintext h2c
  std::vector<Route> routes;
  Position pos;
};

// TLS origination to a cluster's endpoints.
struct ClusterTls {
  FilePath ca;    // empty path = the system trust store
  FilePath cert;  // our client certificate; empty path = none (then key is empty too)
  FilePath key;
  std::string server_name;              // SNI, and the DNS name to verify without identities
  std::vector<std::string> identities;  // identity patterns the server must match
  Position pos;
};

// Cluster `load_balancing` (docs/policies.md "Load balancing").
enum class LoadBalancing { kRoundRobin, kLeastRequest, kPeakEwma };
// "round_robin", "least_request", "peak_ewma": the config spelling.
std::string_view to_string(LoadBalancing policy);

// Cluster `peak_ewma`: the estimator's parameters (only with load_balancing: peak_ewma).
struct PeakEwma {
  Millis decay{10000};                      // > 0: time constant of the moving average
  Millis default_rtt{30};                   // > 0: the estimate before an endpoint's first reply
  Millis resource_exhausted_penalty{5000};  // a RESOURCE_EXHAUSTED reply counts as this; 0 = off
  Position pos;
};

// Cluster `outlier_detection` (docs/policies.md): endpoints ejected after consecutive failed
// attempts, shared by all workers.
struct OutlierDetection {
  uint32_t consecutive_failures = 5;   // 1..1000000
  Millis base_ejection_time{30000};    // > 0; an ejection lasts base x times ejected...
  Millis max_ejection_time{300000};    // ...up to this (>= base)
  uint32_t max_ejection_percent = 10;  // 0..100: at most this share of endpoints ejected at once
  Millis interval{10000};              // > 0: the multiplier decays by one per healthy interval
  Position pos;
};

// Cluster `circuit_breaker` (docs/policies.md "Cluster thresholds"): Envoy-like thresholds
// counted across all workers; always on (these defaults when the key is absent). Not the
// route-level `circuit_breaker` (the per-method breaker).
struct ClusterCircuitBreaker {
  uint32_t max_connections = 1024;       // 1..1000000: upstream connections
  uint32_t max_pending_requests = 1024;  // 1..1000000: calls waiting for a connection/stream
  uint32_t max_requests = 1024;          // 1..1000000: active calls
  uint32_t max_retries = 3;              // 1..1000000: retries in flight
  // Envoy `retry_budget`: when set, retries in flight are capped by budget_percent of the
  // active + pending requests (at least min_retry_concurrency) instead of max_retries.
  struct RetryBudget {
    double budget_percent = 20.0;        // 0..100
    uint32_t min_retry_concurrency = 3;  // 0..1000000
  };
  std::optional<RetryBudget> retry_budget;
  Position pos;
};

// Cluster `retry_throttling` (docs/policies.md): gRFC A6 retry throttling, shared by every
// route to the cluster and every worker.
struct RetryThrottling {
  uint32_t max_tokens = 10;  // 1..1000
  double token_ratio = 0.1;  // 0.001..1000 (three decimals are kept, as in gRPC)
  Position pos;
};

struct Cluster {
  std::string name;
  std::vector<Address> endpoints;  // at least one
  LoadBalancing load_balancing = LoadBalancing::kRoundRobin;
  std::optional<PeakEwma> peak_ewma;  // none = the defaults (only with kPeakEwma)
  Millis connect_timeout{1000};
  uint32_t max_connections_per_endpoint = 4;  // pool size per worker per endpoint
  Millis idle_connection_timeout{30'000};     // an endpoint's extra connections close when idle
  std::optional<uint32_t> max_requests_per_connection;  // none: no limit
  std::optional<OutlierDetection> outlier_detection;
  ClusterCircuitBreaker circuit_breaker;  // always on; the defaults when absent
  RetryThrottling retry_throttling;       // always on; the defaults when absent
  std::optional<ClusterTls> tls;          // none = plaintext h2c
  Position pos;
};

// `admin` (docs/observability.md): the HTTP/1.1 admin listener.
struct Admin {
  Address address{"127.0.0.1", 9901, {}};  // port 0 = any free port (logged)
  Position pos;
};

// `tracing` (docs/observability.md): trace-context propagation and Zipkin span export.
struct Tracing {
  double sample_rate = 0.01;  // 0..1: share of new traces sampled (a caller's decision wins)
  std::string zipkin_url;     // e.g. http://127.0.0.1:9411/api/v2/spans; empty = no export
  std::string service_name = "skiff";
  uint32_t max_queue = 10000;  // spans waiting for export; more are dropped (counted)
  Position pos;
};

// `access_log` (docs/observability.md): one JSON line per call, written off the workers.
struct AccessLog {
  std::string path = "-";  // "-" = stdout
  double sample_rate = 1.0;
  Position pos;
};

struct Config {
  std::string source;    // file path (or "<string>")
  uint32_t workers = 0;  // 0 = auto (one per core)
  Millis drain_timeout{5000};
  Http2 http2;
  std::optional<Admin> admin;           // none = no admin listener
  std::optional<Tracing> tracing;       // none = trace headers pass through untouched
  std::optional<AccessLog> access_log;  // none = off
  std::vector<Listener> listeners;      // at least one
  std::vector<Cluster> clusters;
};

struct ConfigError {
  std::string file;
  int line = 0;
  int col = 0;
  std::string message;
  // "file:line:col: message"
  std::string to_string() const;
};

// Reads and validates |path|. Never throws.
std::expected<Config, ConfigError> load_file(const std::string& path);
// Same, from text; |name| is used as the file name in errors.
std::expected<Config, ConfigError> load_string(const std::string& text, const std::string& name);

}  // namespace skiff::config
