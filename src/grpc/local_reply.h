// LocalReply: a response skiff makes itself (C5), and its encoding as gRPC trailers-only headers.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "grpc/status.h"

namespace skiff::grpc {

// Decisions return this value; only h2::ServerStream::reply_local puts it on the wire, as one
// HEADERS frame with END_STREAM (a trailers-only response, so gRPC clients may still retry it).
struct LocalReply {
  StatusCode code = StatusCode::kUnknown;
  std::string message;  // human-readable; percent-encoded when encoded
  int http_status =
      200;  // 415 (bad content-type) or 405 (not POST) for the spec's non-gRPC answers
  bool close_connection = false;  // also send GOAWAY and close after this reply (e.g. draining)
  // grpc-retry-pushback-ms: when the client may try again (rate limits), gRFC A6.
  std::optional<uint64_t> retry_pushback_ms = std::nullopt;
  // skiff's own rejections (docs/policies.md): the kRejectedHeader value, one of kRejected*;
  // empty for every other reply.
  std::string_view rejected = {};
};

// Marks a rejection by a skiff: a skiff downstream of it neither retries the call nor counts it
// against the endpoint.
inline constexpr std::string_view kRejectedHeader = "skiff-rejected";
inline constexpr std::string_view kRejectedRateLimit = "rate-limit";      // route rate_limit
inline constexpr std::string_view kRejectedCircuitOpen = "circuit-open";  // method breaker open
inline constexpr std::string_view kRejectedOverflow = "overflow";         // cluster limits

struct Header {
  std::string name;
  std::string value;

  bool operator==(const Header&) const = default;
};

// The header block of a trailers-only response, in order: ":status", "content-type:
// application/grpc", "grpc-status" (decimal), and "grpc-message" (percent-encoded; omitted when the
// message is empty).
std::vector<Header> trailers_only_headers(const LocalReply& reply);

// Just the trailer fields (grpc-status, then grpc-message unless |message| is empty), for ending a
// stream whose response headers were already sent.
std::vector<Header> status_trailers(StatusCode code, std::string_view message);

}  // namespace skiff::grpc
