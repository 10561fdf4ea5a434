// CallRecord: what one finished call leaves behind for the access log and the span exporter.
// Built on the worker when the call ends, then moved to a background thread: it owns its
// strings, so nothing in it points back into the worker's connection or snapshot.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace skiff::telemetry {

struct CallRecord {
  std::chrono::system_clock::time_point start;  // wall clock, when the request headers arrived
  std::chrono::nanoseconds duration{0};         // request headers -> end of the call
  std::string listener;                         // listener name
  std::string path;                             // ":path", e.g. "/user.UserService/GetUser"
  std::string authority;                        // ":authority"
  std::string peer_identity;                    // downstream's verified SPIFFE ID; empty if none
  std::string downstream_address;               // "ip:port" of the downstream connection
  std::string upstream_cluster;                 // empty when no route
  std::string upstream_endpoint;                // last attempt's endpoint name ("host:port")
  std::string upstream_address;                 // last attempt's "ip:port"; empty if none
  std::optional<int> grpc_status;               // none: no status (cancelled by the caller)
  std::string grpc_message;                     // a skiff-generated reply's message, else empty
  uint32_t attempts = 0;                        // upstream attempts made (0: answered locally)
  uint64_t request_bytes = 0;                   // DATA bytes, both directions
  uint64_t response_bytes = 0;
  uint64_t request_messages = 0;  // gRPC messages, both directions
  uint64_t response_messages = 0;

  // Tracing (hex, as on the wire); empty when the call has no trace context.
  std::string trace_id;        // 32 hex digits
  std::string span_id;         // 16 hex digits: this hop's span
  std::string parent_span_id;  // 16 hex digits: the caller's span; empty for a root span
  bool sampled = false;        // export this call's span
  std::string request_id;      // x-request-id
};

}  // namespace skiff::telemetry
