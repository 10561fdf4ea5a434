// config::Config -> JSON, key names as written in YAML (docs/config.md).
#include "server/config_json.h"

#include <nlohmann/json.hpp>

namespace skiff::server {
namespace {

using nlohmann::json;

std::string duration(config::Millis d) { return std::to_string(d.count()) + "ms"; }

json optional_duration(const std::optional<config::Millis>& d) {
  return d ? json(duration(*d)) : json(nullptr);
}

json route_json(const config::Route& r) {
  json match = json::object();
  if (!r.match.service.empty()) match["service"] = r.match.service;
  if (!r.match.method.empty()) match["method"] = r.match.method;
  if (!r.match.authority.empty()) match["authority"] = r.match.authority;
  json out = {{"match", match},
              {"cluster", r.cluster},
              {"timeout", optional_duration(r.timeout)},
              {"grpc_timeout_offset", duration(r.grpc_timeout_offset)}};
  if (r.retry) {
    json on = json::array();
    for (const auto& code : r.retry->on) on.push_back(code.name);
    out["retry"] = {{"max_attempts", r.retry->max_attempts},
                    {"on", on},
                    {"per_try_timeout", optional_duration(r.retry->per_try_timeout)},
                    {"backoff",
                     {{"initial", duration(r.retry->backoff_initial)},
                      {"max", duration(r.retry->backoff_max)},
                      {"multiplier", r.retry->backoff_multiplier}}},
                    {"buffer_bytes", r.retry->buffer_bytes}};
  }
  if (r.hedging) {
    json non_fatal = json::array();
    for (const auto& code : r.hedging->non_fatal) non_fatal.push_back(code.name);
    out["hedging"] = {{"max_attempts", r.hedging->max_attempts},
                      {"hedging_delay", duration(r.hedging->hedging_delay)},
                      {"non_fatal_codes", non_fatal},
                      {"buffer_bytes", r.hedging->buffer_bytes}};
  }
  if (r.rate_limit) {
    out["rate_limit"] = {
        {"rps", r.rate_limit->rps},
        {"burst", r.rate_limit->burst},
        {"status", r.rate_limit->unavailable ? "unavailable" : "resource_exhausted"}};
  }
  if (r.circuit_breaker) {
    out["circuit_breaker"] = {{"consecutive_failures", r.circuit_breaker->consecutive_failures},
                              {"open_for", duration(r.circuit_breaker->open_for)},
                              {"half_open_probes", r.circuit_breaker->half_open_probes}};
  }
  if (r.max_request_message_bytes) out["max_request_message_bytes"] = *r.max_request_message_bytes;
  if (r.max_response_message_bytes) {
    out["max_response_message_bytes"] = *r.max_response_message_bytes;
  }
  if (!r.allow.empty()) out["allow"] = r.allow;
  return out;
}

}  // namespace

std::string config_json(const config::Config& config) {
  json listeners = json::array();
  for (const config::Listener& l : config.listeners) {
    json routes = json::array();
    for (const config::Route& r : l.routes) routes.push_back(route_json(r));
    json listener = {{"name", l.name}, {"address", l.address.to_string()}, {"routes", routes}};
    if (l.tls) {
      listener["tls"] = {{"cert", l.tls->cert.path},
                         {"key", l.tls->key.path},
                         {"client_ca", l.tls->client_ca.path},
                         {"require_client_cert", l.tls->require_client_cert}};
    }
    listeners.push_back(std::move(listener));
  }
  json clusters = json::array();
  for (const config::Cluster& c : config.clusters) {
    json endpoints = json::array();
    for (const config::Address& a : c.endpoints) endpoints.push_back(a.to_string());
    json cluster = {{"name", c.name},
                    {"endpoints", endpoints},
                    {"load_balancing", std::string(config::to_string(c.load_balancing))},
                    {"connect_timeout", duration(c.connect_timeout)},
                    {"max_connections_per_endpoint", c.max_connections_per_endpoint},
                    {"idle_connection_timeout", duration(c.idle_connection_timeout)},
                    {"circuit_breaker",
                     {{"max_connections", c.circuit_breaker.max_connections},
                      {"max_pending_requests", c.circuit_breaker.max_pending_requests},
                      {"max_requests", c.circuit_breaker.max_requests},
                      {"max_retries", c.circuit_breaker.max_retries}}},
                    {"retry_throttling",
                     {{"max_tokens", c.retry_throttling.max_tokens},
                      {"token_ratio", c.retry_throttling.token_ratio}}}};
    if (c.max_requests_per_connection) {
      cluster["max_requests_per_connection"] = *c.max_requests_per_connection;
    }
    if (c.circuit_breaker.retry_budget) {
      cluster["circuit_breaker"]["retry_budget"] = {
          {"budget_percent", c.circuit_breaker.retry_budget->budget_percent},
          {"min_retry_concurrency", c.circuit_breaker.retry_budget->min_retry_concurrency}};
    }
    if (c.peak_ewma) {
      cluster["peak_ewma"] = {
          {"decay", duration(c.peak_ewma->decay)},
          {"default_rtt", duration(c.peak_ewma->default_rtt)},
          {"resource_exhausted_penalty", duration(c.peak_ewma->resource_exhausted_penalty)}};
    }
    if (c.outlier_detection) {
      const config::OutlierDetection& od = *c.outlier_detection;
      cluster["outlier_detection"] = {{"consecutive_failures", od.consecutive_failures},
                                      {"base_ejection_time", duration(od.base_ejection_time)},
                                      {"max_ejection_time", duration(od.max_ejection_time)},
                                      {"max_ejection_percent", od.max_ejection_percent}};
    }
    if (c.tls) {
      cluster["tls"] = {{"ca", c.tls->ca.path},
                        {"cert", c.tls->cert.path},
                        {"key", c.tls->key.path},
                        {"server_name", c.tls->server_name},
                        {"identities", c.tls->identities}};
    }
    clusters.push_back(std::move(cluster));
  }
  json out = {{"source", config.source},
              {"workers", config.workers == 0 ? json("auto") : json(config.workers)},
              {"drain_timeout", duration(config.drain_timeout)},
              {"http2",
               {{"max_concurrent_streams", config.http2.max_concurrent_streams},
                {"initial_stream_window_bytes", config.http2.initial_stream_window_bytes},
                {"initial_connection_window_bytes", config.http2.initial_connection_window_bytes},
                {"max_header_list_bytes", config.http2.max_header_list_bytes},
                {"max_header_count", config.http2.max_header_count},
                {"max_frame_bytes", config.http2.max_frame_bytes},
                {"stream_flush_timeout", duration(config.http2.stream_flush_timeout)}}},
              {"listeners", listeners},
              {"clusters", clusters}};
  if (config.admin) out["admin"] = {{"address", config.admin->address.to_string()}};
  if (config.tracing) {
    out["tracing"] = {{"sample_rate", config.tracing->sample_rate},
                      {"zipkin_url", config.tracing->zipkin_url},
                      {"service_name", config.tracing->service_name},
                      {"max_queue", config.tracing->max_queue}};
  }
  if (config.access_log) {
    out["access_log"] = {{"path", config.access_log->path},
                         {"sample_rate", config.access_log->sample_rate}};
  }
  return out.dump(2) + "\n";
}

}  // namespace skiff::server
