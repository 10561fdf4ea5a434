// Malformed gRPC requests that no gRPC client would send, through the real skiff (nghttp2's
// client session, or raw frames where nghttp2 would fix the input): each gets the trailers-only
// answer of DESIGN.md's error table or a stream reset, never grpc-status 0, never reaches the
// upstream when rejected up front, and leaves the connection usable.
#include <gtest/gtest.h>

#include <functional>

#include "h2_fixture.h"

namespace skiff::it::h2 {
namespace {

// gRPC status codes (doc/statuscodes.md) used below.
constexpr int kOk = 0;
constexpr int kDeadlineExceeded = 4;
constexpr int kResourceExhausted = 8;
constexpr int kUnimplemented = 12;
constexpr int kInternal = 13;

// Replaces (or adds) |name| in |headers|.
HeaderList with(HeaderList headers, const std::string& name, const std::string& value) {
  for (Header& h : headers) {
    if (h.name == name) {
      h.value = value;
      return headers;
    }
  }
  headers.push_back({name, value});
  return headers;
}

HeaderList without(HeaderList headers, const std::string& name) {
  std::erase_if(headers, [&](const Header& h) { return h.name == name; });
  return headers;
}

// The response is one HEADERS frame with END_STREAM carrying a gRPC status (DESIGN.md: every
// proxy-generated response is a valid trailers-only response).
::testing::AssertionResult is_trailers_only(const StreamResult& r, int grpc_status,
                                            const std::string& http_status = "200") {
  if (!r.closed) return ::testing::AssertionFailure() << "no answer: " << r.describe();
  if (!r.trailers_only()) {
    return ::testing::AssertionFailure() << "not trailers-only: " << r.describe();
  }
  if (r.header(":status") != http_status || r.header("content-type") != "application/grpc" ||
      r.grpc_status() != grpc_status) {
    return ::testing::AssertionFailure()
           << "expected :status " << http_status << ", content-type application/grpc, grpc-status "
           << grpc_status << "; got " << r.describe();
  }
  return ::testing::AssertionSuccess();
}

// The frame that ends stream |id|: RST_STREAM, or HEADERS/DATA with END_STREAM.
std::function<bool(const Frame&)> ends_stream(int32_t id) {
  return [id](const Frame& f) {
    return f.stream_id == id && (f.type == NGHTTP2_RST_STREAM ||
                                 ((f.type == NGHTTP2_HEADERS || f.type == NGHTTP2_DATA) &&
                                  f.has(NGHTTP2_FLAG_END_STREAM)));
  };
}

// Every grpc-status that |client| received on stream |id|.
std::vector<std::string> grpc_statuses(const RawH2Client& client, int32_t id) {
  std::vector<std::string> out;
  for (const Frame& f : client.frames()) {
    if (f.stream_id != id || f.type != NGHTTP2_HEADERS) continue;
    if (auto s = find_header(f.headers, "grpc-status")) out.push_back(*s);
  }
  return out;
}

// Opens a Bidi call on stream 1 of |client| and waits until its first response message has
// arrived: from then on the call is committed and skiff may only reset it.
::testing::AssertionResult open_committed_bidi(RawH2Client& client) {
  std::string handshake = client.handshake();
  if (!handshake.empty()) return ::testing::AssertionFailure() << handshake;
  if (client.send(headers_frame(1, grpc_request_headers(kBidiPath), NGHTTP2_FLAG_END_HEADERS) +
                  data_frame(1, unary_request_body("first"), NGHTTP2_FLAG_NONE)) !=
      Socket::Io::kOk) {
    return ::testing::AssertionFailure() << "send failed";
  }
  std::optional<Frame> data = client.wait_for([](const Frame& f) {
    return f.stream_id == 1 && (f.type == NGHTTP2_DATA || f.type == NGHTTP2_RST_STREAM ||
                                f.has(NGHTTP2_FLAG_END_STREAM));
  });
  if (!data || data->type != NGHTTP2_DATA) {
    return ::testing::AssertionFailure()
           << "no first response message: " << (data ? describe(*data) : "timeout");
  }
  return ::testing::AssertionSuccess();
}

using MalformedRequest = H2Test;

// 14: the positive control for H2Client itself.
TEST_F(MalformedRequest, H2_UnaryOkThroughRawClient) {
  H2Client client(port());
  ASSERT_TRUE(client.connected()) << client.error();
  StreamResult r = client.call(grpc_request_headers(kUnaryPath), unary_request_body("control"));
  ASSERT_TRUE(r.closed) << client.error() << "; " << r.describe();
  ASSERT_EQ(r.header_blocks.size(), 2u) << r.describe();
  EXPECT_FALSE(r.header_block_flags[0] & NGHTTP2_FLAG_END_STREAM) << r.describe();
  EXPECT_EQ(r.header(":status"), "200");
  EXPECT_EQ(r.header("content-type"), "application/grpc");
  EXPECT_GE(r.data_frames, 1);
  ASSERT_GE(r.body.size(), 5u);
  EXPECT_EQ(static_cast<uint8_t>(r.body[0]), 0) << "compressed flag";
  const uint32_t len = (uint32_t{static_cast<uint8_t>(r.body[1])} << 24) |
                       (uint32_t{static_cast<uint8_t>(r.body[2])} << 16) |
                       (uint32_t{static_cast<uint8_t>(r.body[3])} << 8) |
                       uint32_t{static_cast<uint8_t>(r.body[4])};
  ASSERT_EQ(len, r.body.size() - 5) << "one length-prefixed message";
  skiff::testing::Response resp;
  ASSERT_TRUE(resp.ParseFromString(r.body.substr(5)));
  EXPECT_EQ(resp.payload(), "control");
  EXPECT_TRUE(r.header_block_flags[1] & NGHTTP2_FLAG_END_STREAM);
  EXPECT_EQ(r.grpc_status(), kOk) << r.describe();
  EXPECT_FALSE(r.reset_code);
  EXPECT_EQ(upstream_.calls("Unary"), 1);
}

// 1
TEST_F(MalformedRequest, H2_WrongContentTypeGets415) {
  H2Client client(port());
  const HeaderList valid = grpc_request_headers(kUnaryPath);
  for (const HeaderList& headers :
       {with(valid, "content-type", "text/plain"), with(valid, "content-type", "application/json"),
        with(valid, "content-type", "application/grpcx"), without(valid, "content-type")}) {
    SCOPED_TRACE(to_string(headers));
    StreamResult r = client.call(headers, unary_request_body("x"));
    EXPECT_TRUE(is_trailers_only(r, kInternal, "415"));
  }
  EXPECT_EQ(upstream_.calls(), 0) << "a rejected request reached the upstream";
  EXPECT_TRUE(unary_ok(client, "after-415"));
  EXPECT_EQ(upstream_.calls(), 1);
}

// 2
TEST_F(MalformedRequest, H2_GetGets405) {
  H2Client client(port());
  for (const char* method : {"GET", "PUT"}) {
    SCOPED_TRACE(method);
    StreamResult r = client.call(with(grpc_request_headers(kUnaryPath), ":method", method));
    EXPECT_TRUE(is_trailers_only(r, kInternal, "405"));
  }
  EXPECT_EQ(upstream_.calls(), 0) << "a rejected request reached the upstream";
  EXPECT_TRUE(unary_ok(client, "after-405"));
}

// 3
TEST_F(MalformedRequest, H2_MalformedPathGetsUnimplemented) {
  H2Client client(port());
  for (const char* path : {"/nosuch", "/a/b/c", "/", "/skiff.testing.TestService/", "//Unary",
                           "/skiff.testing.TestService/Unary?x=1"}) {
    SCOPED_TRACE(path);
    StreamResult r = client.call(grpc_request_headers(path), unary_request_body("x"));
    EXPECT_TRUE(is_trailers_only(r, kUnimplemented));
  }
  // No :path at all: nghttp2's messaging check resets the stream before skiff sees it; a
  // trailers-only 12 would do as well.
  StreamResult r = client.call(without(grpc_request_headers(kUnaryPath), ":path"));
  ASSERT_TRUE(r.closed) << client.error() << "; " << r.describe();
  if (r.reset_code) {
    EXPECT_EQ(r.reset_code, NGHTTP2_PROTOCOL_ERROR) << r.describe();
  } else {
    EXPECT_TRUE(is_trailers_only(r, kUnimplemented));
  }
  EXPECT_EQ(upstream_.calls(), 0) << "a rejected request reached the upstream";
  EXPECT_TRUE(unary_ok(client, "after-bad-path"));
}

// 4
TEST_F(MalformedRequest, H2_UnroutedServiceGetsUnimplemented) {
  H2Client client(port());
  const std::string path = "/skiff.testing.OtherService/Ping";
  StreamResult r = client.call(grpc_request_headers(path), unary_request_body("x"));
  EXPECT_TRUE(is_trailers_only(r, kUnimplemented));
  std::optional<std::string> message = r.trailer("grpc-message");
  ASSERT_TRUE(message) << r.describe();
  EXPECT_NE(message->find(path), std::string::npos) << *message;
  EXPECT_EQ(upstream_.calls(), 0);
  EXPECT_TRUE(unary_ok(client, "after-unrouted"));
}

// 5
TEST_F(MalformedRequest, H2_MalformedGrpcTimeoutGetsInternal) {
  H2Client client(port());
  // "": present and empty is malformed, not the same as no grpc-timeout.
  for (const char* timeout :
       {"", "abc", "123456789S", "10", "-1S", "1.5S", "S", "10x", "1 S", "+1S"}) {
    SCOPED_TRACE(timeout);
    StreamResult r = client.call(grpc_request_headers(kUnaryPath, {{"grpc-timeout", timeout}}),
                                 unary_request_body("x"));
    EXPECT_TRUE(is_trailers_only(r, kInternal));
  }
  EXPECT_EQ(upstream_.calls(), 0) << "a rejected request reached the upstream";
  EXPECT_TRUE(unary_ok(client, "after-bad-timeout"));
}

// 5, the valid-but-expired case.
TEST_F(MalformedRequest, H2_ZeroGrpcTimeoutGetsDeadlineExceeded) {
  H2Client client(port());
  for (const char* timeout : {"0m", "0S", "0n"}) {
    SCOPED_TRACE(timeout);
    StreamResult r = client.call(grpc_request_headers(kUnaryPath, {{"grpc-timeout", timeout}}),
                                 unary_request_body("x"));
    EXPECT_TRUE(is_trailers_only(r, kDeadlineExceeded));
  }
  EXPECT_EQ(upstream_.calls(), 0) << "an expired request reached the upstream";
  // The largest valid value is accepted (clamped), not rejected.
  StreamResult r = client.call(grpc_request_headers(kUnaryPath, {{"grpc-timeout", "99999999H"}}),
                               unary_request_body("big"));
  EXPECT_EQ(r.grpc_status(), kOk) << r.describe();
}

// 6: a flag byte other than 0/1. Before commit skiff answers 13; after commit it may only
// reset. Either way the client must never see grpc-status 0.
TEST_F(MalformedRequest, H2_BadMessageFlagGetsInternal) {
  H2Client client(port());
  skiff::testing::Request req;
  req.set_payload("x");
  for (uint8_t flag : {uint8_t{0x07}, uint8_t{0x02}, uint8_t{0x80}}) {
    SCOPED_TRACE(static_cast<int>(flag));
    StreamResult r =
        client.call(grpc_request_headers(kUnaryPath), grpc_message(req.SerializeAsString(), flag));
    ASSERT_TRUE(r.closed) << client.error() << "; " << r.describe();
    EXPECT_NE(r.grpc_status(), kOk) << r.describe();
    if (!r.reset_code) {
      EXPECT_TRUE(is_trailers_only(r, kInternal));
    }
  }
  // A good message followed by a bad prefix: the first may already be upstream.
  StreamResult r = client.call(grpc_request_headers(kUnaryPath),
                               unary_request_body("good") + grpc_message("bad", 0x07));
  ASSERT_TRUE(r.closed) << client.error() << "; " << r.describe();
  EXPECT_TRUE(r.reset_code || r.grpc_status() == kInternal) << r.describe();
  EXPECT_TRUE(unary_ok(client, "after-bad-flag"));
}

// 6 after commit: response headers and a message are already downstream, so the bad flag can
// only reset the stream (PROTOCOL_ERROR); above all it must not end with grpc-status 0.
TEST_F(MalformedRequest, H2_BadMessageFlagAfterCommitIsReset) {
  RawH2Client client(port());
  ASSERT_TRUE(client.connected()) << client.error();
  ASSERT_TRUE(open_committed_bidi(client));
  ASSERT_EQ(client.send(data_frame(1, grpc_message("bad", 0x07), NGHTTP2_FLAG_END_STREAM)),
            Socket::Io::kOk);
  std::optional<Frame> end = client.wait_for(ends_stream(1));
  ASSERT_TRUE(end) << "stream 1 never ended; closed=" << client.closed();
  EXPECT_EQ(end->type, NGHTTP2_RST_STREAM) << describe(*end);
  EXPECT_EQ(end->error_code(), NGHTTP2_PROTOCOL_ERROR) << describe(*end);
  for (const std::string& status : grpc_statuses(client, 1)) EXPECT_NE(status, "0");
  EXPECT_TRUE(upstream_.wait_for_finished(1, kWaitTimeout)) << "the upstream call was not ended";
}

// 7 after commit: a request that ends inside a message must not come back as grpc-status 0.
TEST_F(MalformedRequest, H2_TruncatedMessageAfterCommitIsNotOk) {
  RawH2Client client(port());
  ASSERT_TRUE(client.connected()) << client.error();
  ASSERT_TRUE(open_committed_bidi(client));
  const std::string second = unary_request_body("second-message");
  ASSERT_EQ(
      client.send(data_frame(1, second.substr(0, second.size() - 3), NGHTTP2_FLAG_END_STREAM)),
      Socket::Io::kOk);
  std::optional<Frame> end = client.wait_for(ends_stream(1));
  ASSERT_TRUE(end) << "stream 1 never ended; closed=" << client.closed();
  std::vector<std::string> statuses = grpc_statuses(client, 1);
  for (const std::string& status : statuses) EXPECT_NE(status, "0") << describe(*end);
  EXPECT_TRUE(end->type == NGHTTP2_RST_STREAM || !statuses.empty()) << describe(*end);
}

// Request trailers are legal HTTP/2 (gRPC clients send none): skiff drops them, ends the
// request there, and the call succeeds.
TEST_F(MalformedRequest, H2_RequestTrailersAreIgnored) {
  RawH2Client client(port());
  ASSERT_TRUE(client.connected()) << client.error();
  ASSERT_EQ(client.handshake(), "");
  ASSERT_EQ(
      client.send(headers_frame(1, grpc_request_headers(kUnaryPath), NGHTTP2_FLAG_END_HEADERS) +
                  data_frame(1, unary_request_body("with-trailers"), NGHTTP2_FLAG_NONE) +
                  headers_frame(1, {{"x-request-trailer", "1"}},
                                NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM)),
      Socket::Io::kOk);
  std::optional<Frame> end = client.wait_for(ends_stream(1));
  ASSERT_TRUE(end) << "stream 1 never ended; closed=" << client.closed();
  EXPECT_EQ(find_header(end->headers, "grpc-status"), "0") << describe(*end);
}

// 7
TEST_F(MalformedRequest, H2_TruncatedMessageGetsInternal) {
  H2Client client(port());
  const std::string whole = unary_request_body("truncated-payload");
  for (size_t keep : {size_t{1}, size_t{3}, size_t{5}, whole.size() - 1}) {
    SCOPED_TRACE(keep);
    StreamResult r = client.call(grpc_request_headers(kUnaryPath), whole.substr(0, keep));
    ASSERT_TRUE(r.closed) << client.error() << "; " << r.describe();
    EXPECT_NE(r.grpc_status(), kOk) << r.describe();
    if (!r.reset_code) {
      EXPECT_TRUE(is_trailers_only(r, kInternal));
    }
  }
  EXPECT_TRUE(unary_ok(client, "after-truncation"));
}

// 8: over max_header_list_bytes (61440) by decoded size.
TEST_F(MalformedRequest, H2_OversizedHeaderListGetsResourceExhausted) {
  H2Client client(port());
  HeaderList extra;
  for (int i = 0; i < 8; ++i)
    extra.push_back({"x-big-" + std::to_string(i), std::string(9000, 'a')});
  StreamResult r = client.call(grpc_request_headers(kUnaryPath, extra), unary_request_body("x"));
  ASSERT_TRUE(r.closed) << client.error() << "; " << r.describe();
  if (!r.reset_code) {
    EXPECT_TRUE(is_trailers_only(r, kResourceExhausted));
  }
  EXPECT_NE(r.grpc_status(), kOk);
  EXPECT_EQ(upstream_.calls(), 0) << "an oversized request reached the upstream";
  EXPECT_TRUE(unary_ok(client, "after-big-headers"));
}

// 8: more than max_header_count (100) fields, each small.
TEST_F(MalformedRequest, H2_TooManyHeadersGetsResourceExhausted) {
  H2Client client(port());
  HeaderList extra;
  for (int i = 0; i < 150; ++i) extra.push_back({"x-h-" + std::to_string(i), "v"});
  StreamResult r = client.call(grpc_request_headers(kUnaryPath, extra), unary_request_body("x"));
  ASSERT_TRUE(r.closed) << client.error() << "; " << r.describe();
  if (!r.reset_code) {
    EXPECT_TRUE(is_trailers_only(r, kResourceExhausted));
  }
  EXPECT_NE(r.grpc_status(), kOk);
  // Exactly at the limit is fine: 6 request headers + 94 = 100 fields.
  HeaderList at_limit;
  for (int i = 0; i < 94; ++i) at_limit.push_back({"x-h-" + std::to_string(i), "v"});
  StreamResult ok =
      client.call(grpc_request_headers(kUnaryPath, at_limit), unary_request_body("at-limit"));
  EXPECT_EQ(ok.grpc_status(), kOk) << ok.describe();
  EXPECT_EQ(upstream_.calls(), 1) << "only the request within the limit reaches the upstream";
  EXPECT_TRUE(unary_ok(client, "after-many-headers"));
}

// 8, HPACK bomb (CVE-2016-6581): one 4000-byte field in the dynamic table, then thousands of
// one-byte references to it. Decoded that is ~48 MB; skiff must charge every reference, stop
// at 60 KiB / 100 fields, answer 8, and keep the connection.
TEST_F(MalformedRequest, H2_HpackBombGetsResourceExhausted) {
  RawH2Client client(port());
  ASSERT_TRUE(client.connected()) << client.error();
  ASSERT_EQ(client.handshake(), "");
  std::string block = hpack_literals(grpc_request_headers(kUnaryPath));
  block += hpack_literal_indexed({"x-bomb", std::string(4000, 'b')});
  while (block.size() < 16'000) block += hpack_indexed(62);  // the newest dynamic entry
  ASSERT_EQ(client.send(frame_bytes(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, 1, block) +
                        data_frame(1, unary_request_body("x"), NGHTTP2_FLAG_END_STREAM)),
            Socket::Io::kOk);
  std::optional<Frame> end = client.wait_for(ends_stream(1));
  ASSERT_TRUE(end) << "stream 1 never ended; closed=" << client.closed();
  if (end->type == NGHTTP2_HEADERS) {
    EXPECT_EQ(find_header(end->headers, "grpc-status"), std::to_string(kResourceExhausted))
        << describe(*end);
  } else {
    EXPECT_EQ(end->type, NGHTTP2_RST_STREAM) << describe(*end);
  }
  EXPECT_EQ(upstream_.calls(), 0) << "the bomb reached the upstream";

  ASSERT_EQ(
      client.send(headers_frame(3, grpc_request_headers(kUnaryPath), NGHTTP2_FLAG_END_HEADERS) +
                  data_frame(3, unary_request_body("after-bomb"), NGHTTP2_FLAG_END_STREAM)),
      Socket::Io::kOk);
  std::optional<Frame> next = client.wait_for(ends_stream(3));
  ASSERT_TRUE(next) << "stream 3 never ended; closed=" << client.closed();
  EXPECT_EQ(find_header(next->headers, "grpc-status"), "0") << describe(*next);
}

// 9: RFC 9113 §8.2.2 connection-specific fields -> nghttp2's messaging checks reset the stream.
TEST_F(MalformedRequest, H2_ConnectionSpecificHeaderIsReset) {
  H2Client client(port());
  for (const Header& bad :
       {Header{"connection", "close"}, Header{"te", "gzip"}, Header{"transfer-encoding", "chunked"},
        Header{"upgrade", "h2c"}, Header{"keep-alive", "1"}, Header{"proxy-connection", "close"}}) {
    SCOPED_TRACE(bad.name + ": " + bad.value);
    HeaderList headers = grpc_request_headers(kUnaryPath);
    if (bad.name == "te") headers = without(headers, "te");
    headers.push_back(bad);
    StreamResult r = client.call(headers, unary_request_body("x"));
    ASSERT_TRUE(r.closed) << client.error() << "; " << r.describe();
    EXPECT_EQ(r.reset_code, NGHTTP2_PROTOCOL_ERROR) << r.describe();
    EXPECT_TRUE(r.header_blocks.empty()) << r.describe();
    EXPECT_FALSE(client.connection_closed());
  }
  EXPECT_EQ(upstream_.calls(), 0) << "a malformed request reached the upstream";
  EXPECT_TRUE(unary_ok(client, "after-connection-header"));
}

// 9, over raw frames: nghttp2's client lower-cases names on submit, so an upper-case name (RFC
// 9113 §8.2.1 malformed) can only be sent by hand. The same connection then serves a valid call.
TEST_F(MalformedRequest, H2_UppercaseHeaderNameIsReset) {
  RawH2Client client(port());
  ASSERT_TRUE(client.connected()) << client.error();
  ASSERT_EQ(client.handshake(), "");
  HeaderList bad = grpc_request_headers(kUnaryPath, {{"X-Upper", "1"}});
  ASSERT_EQ(client.send(headers_frame(1, bad, NGHTTP2_FLAG_END_HEADERS) +
                        data_frame(1, unary_request_body("x"), NGHTTP2_FLAG_END_STREAM)),
            Socket::Io::kOk);
  std::optional<Frame> reply = client.wait_for([](const Frame& f) { return f.stream_id == 1; });
  ASSERT_TRUE(reply) << "no answer on stream 1; closed=" << client.closed();
  EXPECT_EQ(reply->type, NGHTTP2_RST_STREAM) << describe(*reply);
  EXPECT_EQ(reply->error_code(), NGHTTP2_PROTOCOL_ERROR) << describe(*reply);

  ASSERT_EQ(
      client.send(headers_frame(3, grpc_request_headers(kUnaryPath), NGHTTP2_FLAG_END_HEADERS) +
                  data_frame(3, unary_request_body("after-upper"), NGHTTP2_FLAG_END_STREAM)),
      Socket::Io::kOk);
  std::optional<Frame> end = client.wait_for([](const Frame& f) {
    return f.stream_id == 3 && (f.type == NGHTTP2_RST_STREAM ||
                                (f.type == NGHTTP2_HEADERS && f.has(NGHTTP2_FLAG_END_STREAM)));
  });
  ASSERT_TRUE(end) << "no end of stream 3; closed=" << client.closed();
  EXPECT_EQ(find_header(end->headers, "grpc-status"), "0") << describe(*end);
  EXPECT_EQ(upstream_.calls(), 1) << "only the valid request reaches the upstream";
}

}  // namespace
}  // namespace skiff::it::h2
