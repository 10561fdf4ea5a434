// gRPC status codes and the small wire rules around them: names, grpc-message encoding,
// content-type.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace skiff::grpc {

// The canonical codes (grpc/grpc doc/statuscodes.md); the numeric value is what goes on the wire.
enum class StatusCode : uint8_t {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

inline constexpr uint8_t kMaxStatusCode = 16;

// "UNAVAILABLE". A value outside 0..16 gives "UNKNOWN", which is what gRPC clients make of it.
std::string_view status_name(StatusCode code);

// Parses a grpc-status header value: 1..3 ASCII decimal digits, no sign or space. A well-formed
// code above 16 maps to kUnknown (as gRPC clients do); anything malformed gives nullopt.
std::optional<StatusCode> parse_status(std::string_view value);

// grpc-message encoding (PROTOCOL-HTTP2.md "Percent-Encoded"): bytes outside 0x20..0x7E, and '%',
// become %XX with uppercase hex; everything else is copied. UTF-8 is encoded byte by byte.
std::string percent_encode(std::string_view message);

// True for "application/grpc", or that followed by '+' (a subtype, e.g. "+proto") or ';'
// (parameters). "application/grpc" itself is compared case-insensitively.
bool is_grpc_content_type(std::string_view value);

// The gRPC status a client sees for a stream ended by RST_STREAM(|h2_error_code|)
// (PROTOCOL-HTTP2.md "Errors"): REFUSED_STREAM -> UNAVAILABLE, CANCEL -> CANCELLED,
// ENHANCE_YOUR_CALM -> RESOURCE_EXHAUSTED, INADEQUATE_SECURITY -> PERMISSION_DENIED, and every
// other code (NO_ERROR included: the stream ended without trailers) -> INTERNAL.
StatusCode status_from_h2_error(uint32_t h2_error_code);

// The gRPC status a client derives from an HTTP :status when a response has no grpc-status
// (grpc/grpc doc/http-grpc-status-mapping.md): 400 -> INTERNAL, 401 -> UNAUTHENTICATED,
// 403 -> PERMISSION_DENIED, 404 -> UNIMPLEMENTED, 429/502/503/504 -> UNAVAILABLE, else UNKNOWN.
StatusCode status_from_http(int http_status);

}  // namespace skiff::grpc
