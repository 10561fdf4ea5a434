// Transparent retry (gRFC A6) through the real skiff binary: a grpc++ client calls through skiff
// to a RefusingUpstream, which refuses streams with RST_STREAM(REFUSED_STREAM) or sends a GOAWAY
// that leaves in-flight streams unprocessed. skiff must retry such a stream once at once, even on
// a route without `retry`, replaying the request body byte for byte; on a route with `retry` the
// transparent retry does not count against max_attempts.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "h2_fixture.h"
#include "refusing_upstream.h"

namespace skiff::it::h2 {
namespace {

// Well inside kWaitTimeout, so a failing call still ends each test in under 5 s.
constexpr Millis kCallDeadline{4'000};

// One worker, one route to the refusing upstream, with |route_keys| (indented route lines).
std::string config_with(const RefusingUpstream& upstream, const std::string& route_keys) {
  return h2_test_config(upstream.address(), "", route_keys);
}

// |retry| is the route's `retry` value, if any.
std::string config(const RefusingUpstream& upstream, const std::string& retry = "") {
  return config_with(upstream, retry.empty() ? "" : "        retry: " + retry + "\n");
}

// The serialized Response every answer carries, so the client checks it arrived intact.
std::string response_message() {
  skiff::testing::Response resp;
  resp.set_payload("from the refusing upstream");
  return resp.SerializeAsString();
}

// Refuses the first |n| streams and answers the rest.
RefusingUpstreamOptions refusing_first(int n) {
  RefusingUpstreamOptions o;
  o.refuse_first = n;
  o.response_message = response_message();
  return o;
}

struct CallResult {
  grpc::Status status;
  skiff::testing::Response response;
};

CallResult unary(skiff::testing::TestService::Stub& stub, const skiff::testing::Request& req) {
  CallResult r;
  grpc::ClientContext ctx;
  ctx.set_deadline(in(kCallDeadline));
  r.status = stub.Unary(&ctx, req, &r.response);
  return r;
}

skiff::testing::Request request(size_t payload_bytes, uint32_t seed = 1) {
  skiff::testing::Request req;
  req.set_payload(pattern_bytes(payload_bytes, seed));
  return req;
}

std::vector<UpstreamStream> with_fate(const std::vector<UpstreamStream>& streams,
                                      UpstreamStream::Fate fate) {
  std::vector<UpstreamStream> out;
  std::copy_if(streams.begin(), streams.end(), std::back_inserter(out),
               [fate](const UpstreamStream& s) { return s.fate == fate; });
  return out;
}

// Route without `retry`, the first stream refused: one 10 KiB unary call succeeds through the
// transparent retry, and the retried stream carries exactly what the client sent.
void check_refused_once(bool refuse_after_request) {
  RefusingUpstreamOptions options = refusing_first(1);
  options.refuse_after_request = refuse_after_request;
  RefusingUpstream upstream(options);
  ASSERT_NE(upstream.port(), 0) << upstream.error();
  SkiffProcess skiff(config(upstream));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));

  const skiff::testing::Request req = request(10 * 1024);
  CallResult r = unary(*stub, req);
  ASSERT_TRUE(is_ok(r.status)) << upstream.describe();
  EXPECT_EQ(r.response.payload(), "from the refusing upstream");

  RefusingUpstreamStats st = upstream.stats();
  EXPECT_EQ(st.seen, 2) << upstream.describe();
  EXPECT_EQ(st.refused, 1) << upstream.describe();
  EXPECT_EQ(st.answered, 1) << upstream.describe();
  std::vector<UpstreamStream> streams = upstream.streams();
  ASSERT_EQ(streams.size(), 2u) << upstream.describe();
  const UpstreamStream& refused = streams[0];
  const UpstreamStream& answered = streams[1];
  EXPECT_EQ(refused.fate, UpstreamStream::Fate::kRefused) << upstream.describe();
  ASSERT_EQ(answered.fate, UpstreamStream::Fate::kAnswered) << upstream.describe();
  const std::string sent = unary_request_body(req.payload());
  if (refuse_after_request) {
    // The whole body went out on the refused stream: the retry had to replay it from skiff's
    // buffer, not forward it for the first time.
    EXPECT_TRUE(refused.request_complete && refused.body == sent) << upstream.describe();
  }
  EXPECT_TRUE(answered.request_complete) << upstream.describe();
  ASSERT_EQ(answered.body.size(), sent.size()) << upstream.describe();
  EXPECT_TRUE(answered.body == sent) << "the replayed request body differs from the original";
  // A transparent retry is not a counted attempt: no grpc-previous-rpc-attempts.
  EXPECT_EQ(find_header(answered.headers, "grpc-previous-rpc-attempts"), std::nullopt)
      << to_string(answered.headers);
  EXPECT_EQ(find_header(answered.headers, ":path"), "/skiff.testing.TestService/Unary");
}

// Refused as soon as its headers arrive (the usual REFUSED_STREAM: the body may still be on its
// way when skiff learns of it).
TEST(TransparentRetry, RefusedOnHeadersRetriedOnceWithoutRetryBlockBodyIntact) {
  check_refused_once(/*refuse_after_request=*/false);
}

// Refused only after the whole request arrived: the retry replays the retained 10 KiB.
TEST(TransparentRetry, RefusedAfterWholeRequestRetriedOnceWithoutRetryBlockBodyReplayedIntact) {
  check_refused_once(/*refuse_after_request=*/true);
}

// Route without `retry`: only one transparent retry, so a second refusal fails the call.
// A hedging route without non_fatal_codes: a refused copy still sends the next one at once
// (long before hedging_delay), which replays the request byte for byte.
TEST(TransparentRetry, RefusedHedgedCopySendsTheNextAtOnce) {
  RefusingUpstream upstream(refusing_first(1));
  ASSERT_NE(upstream.port(), 0) << upstream.error();
  SkiffProcess skiff(
      config_with(upstream, "        hedging: { max_attempts: 2, hedging_delay: 60s }\n"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  const skiff::testing::Request req = request(1024);
  CallResult r = unary(*stub, req);
  ASSERT_TRUE(is_ok(r.status)) << upstream.describe();
  std::vector<UpstreamStream> streams = upstream.streams();
  ASSERT_EQ(streams.size(), 2u) << upstream.describe();
  EXPECT_EQ(streams[0].fate, UpstreamStream::Fate::kRefused) << upstream.describe();
  ASSERT_EQ(streams[1].fate, UpstreamStream::Fate::kAnswered) << upstream.describe();
  EXPECT_TRUE(streams[1].body == unary_request_body(req.payload()))
      << "the hedged copy's request body differs from the original";
}

TEST(TransparentRetry, SecondRefusalWithoutRetryBlockFailsUnavailable) {
  RefusingUpstream upstream(refusing_first(2));
  ASSERT_NE(upstream.port(), 0) << upstream.error();
  SkiffProcess skiff(config(upstream));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));

  CallResult r = unary(*stub, request(1024));
  EXPECT_TRUE(has_code(r.status, grpc::StatusCode::UNAVAILABLE)) << upstream.describe();

  RefusingUpstreamStats st = upstream.stats();
  EXPECT_EQ(st.seen, 2) << upstream.describe();
  EXPECT_EQ(st.refused, 2) << upstream.describe();
  EXPECT_EQ(st.answered, 0) << upstream.describe();
}

// Route with `retry: { max_attempts: 2, on: [unavailable] }`: the first refusal is transparent
// (free), the second is an ordinary retryable failure using the one retry max_attempts allows.
TEST(TransparentRetry, TransparentRetryDoesNotCountAgainstMaxAttempts) {
  RefusingUpstream upstream(refusing_first(2));
  ASSERT_NE(upstream.port(), 0) << upstream.error();
  SkiffProcess skiff(config(upstream, "{ max_attempts: 2, on: [unavailable] }"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));

  const skiff::testing::Request req = request(4 * 1024, 7);
  CallResult r = unary(*stub, req);
  ASSERT_TRUE(is_ok(r.status)) << upstream.describe();
  EXPECT_EQ(r.response.payload(), "from the refusing upstream");

  RefusingUpstreamStats st = upstream.stats();
  EXPECT_EQ(st.seen, 3) << upstream.describe();
  EXPECT_EQ(st.refused, 2) << upstream.describe();
  EXPECT_EQ(st.answered, 1) << upstream.describe();
  std::vector<UpstreamStream> streams = upstream.streams();
  ASSERT_EQ(streams.size(), 3u) << upstream.describe();
  EXPECT_EQ(streams[0].fate, UpstreamStream::Fate::kRefused);
  EXPECT_EQ(streams[1].fate, UpstreamStream::Fate::kRefused);
  EXPECT_EQ(streams[2].fate, UpstreamStream::Fate::kAnswered);
  // A6: absent on the first attempt and on the transparent retry; 1 on the counted retry.
  EXPECT_EQ(find_header(streams[0].headers, "grpc-previous-rpc-attempts"), std::nullopt)
      << to_string(streams[0].headers);
  EXPECT_EQ(find_header(streams[1].headers, "grpc-previous-rpc-attempts"), std::nullopt)
      << to_string(streams[1].headers);
  EXPECT_EQ(find_header(streams[2].headers, "grpc-previous-rpc-attempts"), "1")
      << to_string(streams[2].headers);
  EXPECT_TRUE(streams[2].body == unary_request_body(req.payload()))
      << "the replayed request body differs from the original (" << streams[2].body.size()
      << " bytes)";
}

// GOAWAY(last_stream_id=1) while 8 calls are in flight on the upstream connection: nghttp2 closes
// skiff's streams above 1 with REFUSED_STREAM, skiff retries them transparently on a new
// connection (route without `retry`), and every call succeeds with its own request intact.
// One connection per endpoint, so all 8 share it: with more, calls that arrive while others are
// in flight get connections of their own (cluster_pool.cc).
TEST(TransparentRetry, StreamsAboveGoawayLastStreamIdRetriedOnNewConnection) {
  constexpr int kCalls = 8;
  // Stream 1 is answered only once all 8 streams have arrived, then the GOAWAY goes out.
  RefusingUpstreamOptions options;
  options.goaway_after_stream = 1;
  options.hold_answers_until_seen = kCalls;
  options.response_message = response_message();
  RefusingUpstream upstream(options);
  ASSERT_NE(upstream.port(), 0) << upstream.error();
  SkiffProcess skiff(h2_test_config(upstream.address(), "    max_connections_per_endpoint: 1\n"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));

  std::vector<skiff::testing::Request> requests;
  for (int i = 0; i < kCalls; ++i) requests.push_back(request(2048 + 64 * i, 100 + i));
  std::vector<CallResult> results(kCalls);
  std::vector<std::thread> threads;
  for (int i = 0; i < kCalls; ++i) {
    threads.emplace_back([&, i] { results[i] = unary(*stub, requests[i]); });
  }
  for (std::thread& t : threads) t.join();

  for (int i = 0; i < kCalls; ++i) {
    EXPECT_TRUE(is_ok(results[i].status)) << "call " << i << "\n" << upstream.describe();
    EXPECT_EQ(results[i].response.payload(), "from the refusing upstream") << "call " << i;
  }
  RefusingUpstreamStats st = upstream.stats();
  EXPECT_TRUE(st.goaway_sent) << upstream.describe();
  EXPECT_GE(st.connections, 2) << upstream.describe();
  // All 8 were in flight on the first connection; 7 were above the GOAWAY's last-stream-id.
  EXPECT_EQ(st.refused_by_goaway, kCalls - 1) << upstream.describe();
  EXPECT_EQ(st.answered, kCalls) << upstream.describe();
  EXPECT_EQ(st.refused, 0) << upstream.describe();

  // Each call's request reached an answered stream intact, exactly once.
  std::vector<std::string> expected;
  for (const skiff::testing::Request& req : requests) {
    expected.push_back(unary_request_body(req.payload()));
  }
  std::vector<std::string> received;
  for (const UpstreamStream& s : with_fate(upstream.streams(), UpstreamStream::Fate::kAnswered)) {
    received.push_back(s.body);
  }
  std::sort(expected.begin(), expected.end());
  std::sort(received.begin(), received.end());
  EXPECT_TRUE(received == expected) << "answered request bodies differ from what was sent\n"
                                    << upstream.describe();
}

}  // namespace
}  // namespace skiff::it::h2
