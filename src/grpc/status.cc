// gRPC status names, grpc-status parsing, grpc-message percent-encoding and error-code mappings.
#include "grpc/status.h"

#include <array>

#include "base/status_code_names.h"

namespace skiff::grpc {
namespace {

// HTTP/2 error codes (RFC 9113 §7) that the gRPC spec maps to something other than INTERNAL.
constexpr uint32_t kH2RefusedStream = 0x7;
constexpr uint32_t kH2Cancel = 0x8;
constexpr uint32_t kH2EnhanceYourCalm = 0xb;
constexpr uint32_t kH2InadequateSecurity = 0xc;

constexpr std::string_view kGrpcContentType = "application/grpc";

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

}  // namespace

std::string_view status_name(StatusCode code) {
  const auto index = static_cast<size_t>(code);
  return base::status_code_name(index);
}

std::optional<StatusCode> parse_status(std::string_view value) {
  // Three digits is enough for any code; a longer value is not something a gRPC peer sends.
  if (value.empty() || value.size() > 3) return std::nullopt;
  unsigned code = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return std::nullopt;
    code = code * 10 + static_cast<unsigned>(c - '0');
  }
  if (code > kMaxStatusCode) return StatusCode::kUnknown;
  return static_cast<StatusCode>(code);
}

std::string percent_encode(std::string_view message) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(message.size());
  for (char c : message) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte <= 0x7e && byte != '%') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[byte >> 4]);
      out.push_back(kHex[byte & 0xf]);
    }
  }
  return out;
}

bool is_grpc_content_type(std::string_view value) {
  if (value == kGrpcContentType) return true;  // nearly every call: one 16-byte compare
  if (value.size() < kGrpcContentType.size()) return false;
  for (size_t i = 0; i < kGrpcContentType.size(); ++i) {
    if (ascii_lower(value[i]) != kGrpcContentType[i]) return false;
  }
  if (value.size() == kGrpcContentType.size()) return true;
  const char next = value[kGrpcContentType.size()];
  return next == '+' || next == ';';
}

StatusCode status_from_h2_error(uint32_t h2_error_code) {
  switch (h2_error_code) {
    case kH2RefusedStream:
      return StatusCode::kUnavailable;
    case kH2Cancel:
      return StatusCode::kCancelled;
    case kH2EnhanceYourCalm:
      return StatusCode::kResourceExhausted;
    case kH2InadequateSecurity:
      return StatusCode::kPermissionDenied;
    default:
      return StatusCode::kInternal;
  }
}

StatusCode status_from_http(int http_status) {
  switch (http_status) {
    case 400:
      return StatusCode::kInternal;
    case 401:
      return StatusCode::kUnauthenticated;
    case 403:
      return StatusCode::kPermissionDenied;
    case 404:
      return StatusCode::kUnimplemented;
    case 429:
    case 502:
    case 503:
    case 504:
      return StatusCode::kUnavailable;
    default:
      return StatusCode::kUnknown;
  }
}

}  // namespace skiff::grpc
