// Encodes LocalReply as the header list of a gRPC trailers-only response.
#include "grpc/local_reply.h"

namespace skiff::grpc {
namespace {

void append_status(std::vector<Header>& out, StatusCode code, std::string_view message) {
  out.push_back(Header{"grpc-status", std::to_string(static_cast<unsigned>(code))});
  if (!message.empty()) out.push_back(Header{"grpc-message", percent_encode(message)});
}

}  // namespace

std::vector<Header> trailers_only_headers(const LocalReply& reply) {
  std::vector<Header> out;
  out.reserve(6);
  out.push_back(Header{":status", std::to_string(reply.http_status)});
  out.push_back(Header{"content-type", "application/grpc"});
  append_status(out, reply.code, reply.message);
  if (reply.retry_pushback_ms) {
    out.push_back(Header{"grpc-retry-pushback-ms", std::to_string(*reply.retry_pushback_ms)});
  }
  if (!reply.rejected.empty()) {
    out.push_back(Header{std::string(kRejectedHeader), std::string(reply.rejected)});
  }
  return out;
}

std::vector<Header> status_trailers(StatusCode code, std::string_view message) {
  std::vector<Header> out;
  out.reserve(2);
  append_status(out, code, message);
  return out;
}

}  // namespace skiff::grpc
