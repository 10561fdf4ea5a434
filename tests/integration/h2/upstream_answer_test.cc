// How skiff ends a call when the upstream's answer cannot be passed on as it is, through the
// real skiff binary, a frame-level client and a RefusingUpstream:
// - a retry is waiting (here for the upstream's grpc-retry-pushback-ms) while the client keeps
//   streaming, and the request outgrows the replay buffer: the retry cannot replay it, so the
//   call ends with the failed attempt's status (and skiff keeps running);
// - the upstream ends inside a gRPC message and still sends grpc-status 0: the client must see
//   a broken stream, never an OK (DESIGN.md's errors; reliability.md §6, 29);
// - the upstream ends without trailers: the client gets 13, not a missing status (§6, 30);
// - the upstream answers with something that is not gRPC (an HTTP error page): the client gets
//   the gRPC status of gRPC's HTTP mapping, and a 503 is retried as the 14 it is (§6, 27);
// - an interim 1xx response before the real one is skipped, not taken for the response.
#include <gtest/gtest.h>

#include <string>

#include "h2_fixture.h"
#include "refusing_upstream.h"

namespace skiff::it::h2 {
namespace {

constexpr std::string_view kClientStreamPath = "/skiff.testing.TestService/ClientStream";

// One worker, one route to |upstream| with |route_keys| (indented route lines).
std::string config_with(const RefusingUpstream& upstream, const std::string& route_keys) {
  return h2_test_config(upstream.address(), "", route_keys);
}

// One unary call through a fresh skiff whose route to |upstream| has |route_keys|. If it did not
// finish, the result's |closed| is false and |why| says why.
StreamResult unary_through(const RefusingUpstream& upstream, const std::string& route_keys,
                           std::string& why) {
  SkiffProcess skiff(config_with(upstream, route_keys));
  H2Client client(skiff.port());
  StreamResult r = client.call(grpc_request_headers(kUnaryPath), unary_request_body("x"));
  why = client.error();
  return r;
}

bool ends_stream_1(const Frame& f) {
  return f.stream_id == 1 && ((f.type == NGHTTP2_HEADERS && f.has(NGHTTP2_FLAG_END_STREAM)) ||
                              f.type == NGHTTP2_RST_STREAM);
}

// The first attempt of a client-streaming call fails with a retryable status whose pushback
// holds the retry back for 2 s. Meanwhile the client sends 4 KiB more than the 1 KiB replay
// buffer holds: the retry can no longer replay the request. skiff ends the call at once with the
// attempt's status instead of opening a retry with part of the request (before the fix, the
// retry's replay aborted the process).
TEST(UpstreamAnswer, RequestOutgrowingTheReplayBufferWhileARetryWaitsEndsTheCall) {
  constexpr int kPushbackMs = 2'000;
  RefusingUpstreamOptions options;
  options.refuse_first = 1;
  options.refuse_with_status = 14;
  options.refuse_pushback_ms = kPushbackMs;
  RefusingUpstream upstream(options);
  ASSERT_NE(upstream.port(), 0) << upstream.error();
  SkiffOptions debug_log;
  debug_log.log_level = "debug";  // the retry decision is logged: the test waits for it
  SkiffProcess skiff(
      config_with(upstream,
                  "        retry: { max_attempts: 3, on: [unavailable], buffer_bytes: 1024 }\n"),
      debug_log);

  RawH2Client client(skiff.port());
  ASSERT_TRUE(client.connected()) << client.error();
  ASSERT_EQ(client.handshake(), "");
  ASSERT_EQ(client.send(headers_frame(1, grpc_request_headers(kClientStreamPath),
                                      NGHTTP2_FLAG_END_HEADERS) +
                        data_frame(1, grpc_message(std::string(100, 'a')), 0)),
            Socket::Io::kOk);
  ASSERT_TRUE(upstream.wait_until([](const RefusingUpstreamStats& s) { return s.refused == 1; }))
      << upstream.describe();
  // skiff took the failure as retryable and waits for the pushback.
  ASSERT_TRUE(skiff.process().wait_for_stderr(
      [](const std::string& err) {
        return err.find("stream 1: attempt 2 in") != std::string::npos;
      },
      kWaitTimeout))
      << skiff.process().err();

  ASSERT_EQ(client.send(data_frame(1, grpc_message(std::string(4096, 'b')), 0)), Socket::Io::kOk);
  std::optional<Frame> end = client.wait_for(ends_stream_1);
  ASSERT_TRUE(end.has_value()) << "no answer on stream 1";
  ASSERT_EQ(end->type, NGHTTP2_HEADERS) << describe(*end);
  EXPECT_EQ(find_header(end->headers, "grpc-status"), "14") << describe(*end);
  EXPECT_NE(find_header(end->headers, "grpc-message").value_or("").find("retry buffer"),
            std::string::npos)
      << describe(*end);

  // The retry never starts: not when the pushback ends either, and skiff keeps serving.
  EXPECT_FALSE(skiff.process().wait_exit(Millis(kPushbackMs + 500)).has_value())
      << skiff.process().err();
  EXPECT_EQ(upstream.stats().seen, 1) << upstream.describe();
  H2Client fresh(skiff.port());
  StreamResult ok = fresh.call(grpc_request_headers(kUnaryPath), unary_request_body("after"));
  EXPECT_TRUE(ok.closed && ok.grpc_status() == 0) << fresh.error() << "; " << ok.describe();
}

// The upstream is a skiff that rejected the call (circuit open): skiff forwards the rejection as
// it is, with its skiff-rejected mark, and does not retry it although the route retries
// UNAVAILABLE (docs/policies.md, "Rejections skiff sends").
TEST(UpstreamAnswer, APeerSkiffsRejectionIsForwardedNotRetried) {
  RefusingUpstreamOptions options;
  options.refuse_first = 1;
  options.refuse_with_status = 14;
  options.refuse_skiff_rejected = "circuit-open";
  RefusingUpstream upstream(options);
  ASSERT_NE(upstream.port(), 0) << upstream.error();
  std::string why;
  StreamResult r =
      unary_through(upstream, "        retry: { max_attempts: 3, on: [unavailable] }\n", why);
  ASSERT_TRUE(r.closed) << why << "; " << r.describe();
  EXPECT_TRUE(r.trailers_only()) << r.describe();
  EXPECT_EQ(r.grpc_status(), 14) << r.describe();
  EXPECT_EQ(r.trailer("skiff-rejected"), "circuit-open") << r.describe();
  EXPECT_EQ(upstream.stats().seen, 1) << "the rejection was retried\n" << upstream.describe();
}

// The upstream's message prefix declares 100 bytes more than it sends, then its trailers say
// grpc-status 0. |route_keys| decide whether skiff forwards the response as it comes
// (committed) or holds it for a possible retry first: either way the client gets a reset
// (INTERNAL_ERROR) after the partial message, and no grpc-status at all.
void check_truncated_answer_is_not_ok(const std::string& route_keys) {
  RefusingUpstreamOptions options;
  options.response_message = "partial";
  options.declared_message_bytes = static_cast<uint32_t>(options.response_message.size() + 100);
  RefusingUpstream upstream(options);
  ASSERT_NE(upstream.port(), 0) << upstream.error();
  std::string why;
  StreamResult r = unary_through(upstream, route_keys, why);
  ASSERT_TRUE(r.closed) << why << "; " << r.describe();
  EXPECT_EQ(r.grpc_status(), std::nullopt) << r.describe();
  EXPECT_EQ(r.reset_code, NGHTTP2_INTERNAL_ERROR) << r.describe();
  EXPECT_EQ(upstream.stats().answered, 1) << upstream.describe();
}

TEST(UpstreamAnswer, TruncatedMessageBeforeOkTrailersResetsTheStream) {
  check_truncated_answer_is_not_ok("");
}

TEST(UpstreamAnswer, TruncatedMessageBeforeOkTrailersResetsTheStreamWhenHeld) {
  check_truncated_answer_is_not_ok("        retry: { max_attempts: 2, on: [unavailable] }\n");
}

TEST(UpstreamAnswer, AnAnswerWithoutTrailersEndsWithInternal) {
  RefusingUpstreamOptions options;
  options.response_message = "no trailers follow";
  options.omit_trailers = true;
  RefusingUpstream upstream(options);
  ASSERT_NE(upstream.port(), 0) << upstream.error();
  std::string why;
  StreamResult r = unary_through(upstream, "", why);
  ASSERT_TRUE(r.closed) << why << "; " << r.describe();
  EXPECT_NE(r.body.find("no trailers follow"), std::string::npos) << r.describe();
  EXPECT_EQ(r.grpc_status(), 13) << r.describe();
  EXPECT_EQ(r.trailer("grpc-message"), "upstream ended the response without trailers")
      << r.describe();
}

TEST(UpstreamAnswer, AnInterimResponseIsSkipped) {
  RefusingUpstreamOptions options;
  options.response_message = "the real answer";
  options.interim_status = "103";
  RefusingUpstream upstream(options);
  ASSERT_NE(upstream.port(), 0) << upstream.error();
  std::string why;
  StreamResult r = unary_through(upstream, "", why);
  ASSERT_TRUE(r.closed) << why << "; " << r.describe();
  EXPECT_EQ(r.header(":status"), "200") << r.describe();
  EXPECT_NE(r.body.find("the real answer"), std::string::npos) << r.describe();
  EXPECT_EQ(r.grpc_status(), 0) << r.describe();
}

struct NonGrpcAnswer {
  int http_status;
  std::string content_type;
  std::string body;
  int grpc_status;
  std::string message;
};

void PrintTo(const NonGrpcAnswer& a, std::ostream* os) {
  *os << "HTTP " << a.http_status << " " << a.content_type << " body " << a.body.size() << " B";
}

class UpstreamNonGrpcAnswer : public ::testing::TestWithParam<NonGrpcAnswer> {};

INSTANTIATE_TEST_SUITE_P(
    HttpMapping, UpstreamNonGrpcAnswer,
    ::testing::Values(
        NonGrpcAnswer{503, "text/html", "", 14,
                      "upstream answered HTTP 503 with content-type text/html, not gRPC"},
        NonGrpcAnswer{503, "text/html", "<html>overloaded</html>", 14,
                      "upstream answered HTTP 503 with content-type text/html, not gRPC"},
        NonGrpcAnswer{404, "", "", 12,
                      "upstream answered HTTP 404 without a content-type, not gRPC"},
        NonGrpcAnswer{429, "application/grpc", "", 14, "upstream answered HTTP 429, not gRPC"},
        NonGrpcAnswer{200, "text/html", "<html>hello</html>", 2,
                      "upstream answered HTTP 200 with content-type text/html, not gRPC"}),
    [](const ::testing::TestParamInfo<NonGrpcAnswer>& info) {
      return "Http" + std::to_string(info.param.http_status) +
             (info.param.body.empty() ? "HeadersOnly" : "WithBody");
    });

// Answered trailers-only with the mapped status, its body never forwarded; the route retries
// UNAVAILABLE, so the 503s and the 429 get a second attempt (answered the same) and the others
// do not.
TEST_P(UpstreamNonGrpcAnswer, IsAnsweredWithTheMappedGrpcStatus) {
  const NonGrpcAnswer& answer = GetParam();
  RefusingUpstreamOptions options;
  options.http_status = answer.http_status;
  options.http_content_type = answer.content_type;
  options.http_body = answer.body;
  RefusingUpstream upstream(options);
  ASSERT_NE(upstream.port(), 0) << upstream.error();
  std::string why;
  StreamResult r =
      unary_through(upstream, "        retry: { max_attempts: 2, on: [unavailable] }\n", why);
  ASSERT_TRUE(r.closed) << why << "; " << r.describe();
  EXPECT_TRUE(r.trailers_only()) << r.describe();
  EXPECT_EQ(r.header(":status"), "200") << r.describe();
  EXPECT_EQ(r.grpc_status(), answer.grpc_status) << r.describe();
  EXPECT_EQ(r.trailer("grpc-message"), answer.message) << r.describe();
  EXPECT_TRUE(r.body.empty()) << r.describe();
  EXPECT_EQ(upstream.stats().seen, answer.grpc_status == 14 ? 2 : 1) << upstream.describe();
}

}  // namespace
}  // namespace skiff::it::h2
