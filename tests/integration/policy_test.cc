// Route policies through the real binary: rate limit, circuit breaker and message size limits
// answer with the statuses of docs/policies.md before (or instead of) reaching the upstream.
#include <gtest/gtest.h>

#include <string>

#include "harness.h"

namespace skiff::it {
namespace {

using grpc::StatusCode;
using skiff::testing::Request;
using skiff::testing::Response;
using Clock = std::chrono::steady_clock;

constexpr Millis kCallDeadline(20'000);

// One route to the TestServer with |policy_yaml| (indented route keys) added.
std::string config_with(const TestServer& server, const std::string& policy_yaml) {
  return "workers: 2\n"
         "listeners:\n"
         "  - name: outbound\n"
         "    address: 127.0.0.1:0\n"
         "    routes:\n"
         "      - match: { service: skiff.testing.TestService }\n"
         "        cluster: backend\n" +
         policy_yaml +
         "clusters:\n"
         "  - name: backend\n"
         "    endpoints: [ \"" +
         server.address() + "\" ]\n";
}

grpc::Status unary(skiff::testing::TestService::Stub& stub, const Request& req,
                   grpc::ClientContext* ctx = nullptr) {
  return unary_call(stub, req, kCallDeadline, nullptr, ctx);
}

TEST(Policies, Outbound_RateLimit_RejectsExcessWithPushback) {
  TestServer server;
  // 0.01 rps: no token comes back during the test, so exactly |burst| calls pass.
  SkiffProcess skiff(config_with(server, "        rate_limit: { rps: 0.01, burst: 3 }\n"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  int ok = 0;
  int limited = 0;
  for (int i = 0; i < 10; ++i) {
    grpc::ClientContext ctx;
    grpc::Status status = unary(*stub, Request(), &ctx);
    if (status.ok()) {
      ++ok;
      continue;
    }
    ASSERT_TRUE(has_code(status, StatusCode::RESOURCE_EXHAUSTED));
    EXPECT_EQ(status.error_message(), "rate limited");
    auto pushback = metadata_values(ctx.GetServerTrailingMetadata(), "grpc-retry-pushback-ms");
    ASSERT_EQ(pushback.size(), 1u);
    EXPECT_GT(std::stol(pushback[0]), 0);
    ++limited;
  }
  EXPECT_EQ(ok, 3);
  EXPECT_EQ(limited, 7);
  EXPECT_EQ(server.calls("Unary"), 3) << "rejected calls must not reach the upstream";
}

TEST(Policies, Outbound_RateLimit_StatusUnavailable) {
  TestServer server;
  SkiffProcess skiff(
      config_with(server, "        rate_limit: { rps: 0.01, burst: 1, status: unavailable }\n"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  EXPECT_TRUE(is_ok(unary(*stub, Request())));
  EXPECT_TRUE(has_code(unary(*stub, Request()), StatusCode::UNAVAILABLE));
  EXPECT_EQ(server.calls("Unary"), 1);
}

TEST(Policies, Outbound_CircuitBreaker_OpensRejectsHalfOpensCloses) {
  TestServer server;
  SkiffProcess skiff(config_with(server,
                                 "        circuit_breaker: { consecutive_failures: 3, open_for: "
                                 "300ms, half_open_probes: 1 }\n"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));

  Request failing;
  failing.set_respond_status(static_cast<int>(StatusCode::UNAVAILABLE));
  failing.set_respond_message("backend down");
  for (int i = 0; i < 3; ++i) {
    grpc::Status status = unary(*stub, failing);
    ASSERT_TRUE(has_code(status, StatusCode::UNAVAILABLE));
    EXPECT_EQ(status.error_message(), "backend down");
  }
  ASSERT_EQ(server.calls("Unary"), 3);

  // Open: answered by skiff, the upstream sees nothing.
  grpc::Status rejected = unary(*stub, Request());
  ASSERT_TRUE(has_code(rejected, StatusCode::UNAVAILABLE));
  EXPECT_NE(rejected.error_message().find("circuit open"), std::string::npos)
      << rejected.error_message();
  EXPECT_EQ(server.calls("Unary"), 3);

  // Half-open after open_for: poll (each rejected try costs the upstream nothing) until the
  // probe is let through; it succeeds and closes the breaker.
  const auto deadline = Clock::now() + Millis(10'000);
  grpc::Status probe = rejected;
  while (!probe.ok() && Clock::now() < deadline) {
    probe = unary(*stub, Request());
    if (!probe.ok()) {
      ASSERT_NE(probe.error_message().find("circuit open"), std::string::npos)
          << probe.error_message();
    }
  }
  ASSERT_TRUE(is_ok(probe)) << "breaker never half-opened";
  EXPECT_EQ(server.calls("Unary"), 4);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(is_ok(unary(*stub, Request())));
  EXPECT_EQ(server.calls("Unary"), 9);
}

TEST(Policies, Outbound_CircuitBreaker_PerMethodOnAServiceRoute) {
  TestServer server;
  // config_with's route takes the whole service: each method still gets its own breaker.
  SkiffProcess skiff(
      config_with(server, "        circuit_breaker: { consecutive_failures: 2, open_for: 60s }\n"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  Request failing;
  failing.set_respond_status(static_cast<int>(StatusCode::UNAVAILABLE));
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(has_code(unary(*stub, failing), StatusCode::UNAVAILABLE));
  }
  grpc::Status rejected = unary(*stub, Request());
  ASSERT_TRUE(has_code(rejected, StatusCode::UNAVAILABLE));
  EXPECT_NE(rejected.error_message().find("circuit open for /skiff.testing.TestService/Unary"),
            std::string::npos)
      << rejected.error_message();
  EXPECT_EQ(server.calls("Unary"), 2);

  // ServerStream, the same route's other method, is healthy: its breaker is closed.
  grpc::ClientContext ctx;
  ctx.set_deadline(in(kCallDeadline));
  auto reader = stub->ServerStream(&ctx, Request());
  Response resp;
  int messages = 0;
  while (reader->Read(&resp)) ++messages;
  EXPECT_TRUE(is_ok(reader->Finish()));
  EXPECT_EQ(messages, 1);
  EXPECT_EQ(server.calls("ServerStream"), 1);
}

TEST(Policies, Outbound_NonFailureCodesDoNotOpenBreaker) {
  TestServer server;
  SkiffProcess skiff(
      config_with(server, "        circuit_breaker: { consecutive_failures: 2, open_for: 1h }\n"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  Request not_found;
  not_found.set_respond_status(static_cast<int>(StatusCode::NOT_FOUND));
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(has_code(unary(*stub, not_found), StatusCode::NOT_FOUND));
  }
  EXPECT_EQ(server.calls("Unary"), 5) << "NOT_FOUND is an answer, not an upstream failure";
}

TEST(Policies, Outbound_OversizedRequestMessage_ResourceExhaustedNothingUpstream) {
  TestServer server;
  SkiffProcess skiff(config_with(server, "        max_request_message_bytes: 1024\n"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  Request small;
  small.set_payload(std::string(500, 'a'));
  EXPECT_TRUE(is_ok(unary(*stub, small)));
  Request big;
  big.set_payload(std::string(4096, 'b'));
  grpc::Status status = unary(*stub, big);
  ASSERT_TRUE(has_code(status, StatusCode::RESOURCE_EXHAUSTED));
  EXPECT_NE(status.error_message().find("larger than the route's limit"), std::string::npos);
  EXPECT_EQ(server.calls("Unary"), 1) << "the oversized request must not be processed upstream";
}

TEST(Policies, Outbound_OversizedResponseMessage_ResourceExhausted) {
  TestServer server;
  SkiffProcess skiff(config_with(server, "        max_response_message_bytes: 1024\n"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  Request small;
  small.set_response_bytes(100);
  EXPECT_TRUE(is_ok(unary(*stub, small)));
  Request big;
  big.set_response_bytes(8192);
  grpc::Status status = unary(*stub, big);
  ASSERT_TRUE(has_code(status, StatusCode::RESOURCE_EXHAUSTED));
  EXPECT_NE(status.error_message().find("response message larger"), std::string::npos)
      << status.error_message();
}

constexpr const char* kRetryUnavailable =
    "        retry: { max_attempts: 3, on: [unavailable], backoff: { initial: 10ms, max: 50ms } "
    "}\n";

Request failing_first(int attempts, StatusCode code = StatusCode::UNAVAILABLE) {
  Request req;
  req.set_respond_status(static_cast<int>(code));
  req.set_respond_message("try again");
  req.set_fail_attempts(attempts);
  return req;
}

TEST(Policies, Outbound_RetryOnUnavailable_SucceedsOnThirdAttempt) {
  TestServer server;
  SkiffProcess skiff(config_with(server, kRetryUnavailable));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  EXPECT_TRUE(is_ok(unary(*stub, failing_first(2))));
  // Three attempts reached the server, the retries numbered by grpc-previous-rpc-attempts.
  EXPECT_EQ(server.calls("Unary"), 3);
}

TEST(Policies, Outbound_RetryGivesUpAfterMaxAttempts) {
  TestServer server;
  SkiffProcess skiff(config_with(server, kRetryUnavailable));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  grpc::Status status = unary(*stub, failing_first(5));
  ASSERT_TRUE(has_code(status, StatusCode::UNAVAILABLE));
  EXPECT_EQ(status.error_message(), "try again") << "the last attempt's answer is forwarded";
  EXPECT_EQ(server.calls("Unary"), 3);
}

TEST(Policies, Outbound_NonRetryableCodeNotRetried) {
  TestServer server;
  SkiffProcess skiff(config_with(server, kRetryUnavailable));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  EXPECT_TRUE(has_code(unary(*stub, failing_first(1, StatusCode::INTERNAL)), StatusCode::INTERNAL));
  EXPECT_EQ(server.calls("Unary"), 1);
}

TEST(Policies, Outbound_CommittedCallNotRetried) {
  TestServer server;
  SkiffProcess skiff(config_with(server, kRetryUnavailable));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  // ServerStream sends response headers and messages before its UNAVAILABLE status. The held
  // response outgrows the 64 KiB hold, so skiff forwards the headers: the call is committed
  // and must not be retried.
  Request req;
  req.set_response_count(2);
  req.set_response_bytes(40'000);
  req.set_respond_status(static_cast<int>(StatusCode::UNAVAILABLE));
  grpc::ClientContext ctx;
  ctx.set_deadline(in(kCallDeadline));
  auto reader = stub->ServerStream(&ctx, req);
  Response resp;
  int messages = 0;
  while (reader->Read(&resp)) ++messages;
  EXPECT_TRUE(has_code(reader->Finish(), StatusCode::UNAVAILABLE));
  EXPECT_EQ(messages, 2);
  EXPECT_EQ(server.calls("ServerStream"), 1);
}

TEST(Policies, Outbound_RequestOverReplayBufferNotRetried) {
  TestServer server;
  SkiffProcess skiff(config_with(
      server, "        retry: { max_attempts: 3, on: [unavailable], buffer_bytes: 1024 }\n"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  Request small = failing_first(1);
  EXPECT_TRUE(is_ok(unary(*stub, small)));
  EXPECT_EQ(server.calls("Unary"), 2);
  Request big = failing_first(1);
  big.set_payload(std::string(8192, 'x'));
  EXPECT_TRUE(has_code(unary(*stub, big), StatusCode::UNAVAILABLE));
  EXPECT_EQ(server.calls("Unary"), 3) << "a request larger than buffer_bytes has one attempt";
}

TEST(Policies, Outbound_ConnectFailureRetriedOnOtherEndpoint) {
  TestServer server;
  ClosedPort down;
  std::string yaml =
      "workers: 1\n"
      "listeners:\n"
      "  - name: outbound\n"
      "    address: 127.0.0.1:0\n"
      "    routes:\n"
      "      - match: {}\n"
      "        cluster: backend\n" +
      std::string(kRetryUnavailable) +
      "clusters:\n"
      "  - name: backend\n"
      "    endpoints: [ \"" +
      down.address() + "\", \"" + server.address() + "\" ]\n";
  SkiffProcess skiff(yaml);
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  // Round robin sends some first attempts to the dead endpoint: each must be retried.
  for (int i = 0; i < 6; ++i) EXPECT_TRUE(is_ok(unary(*stub, Request())));
  EXPECT_EQ(server.calls("Unary"), 6);
}

TEST(Policies, Outbound_RetryBudgetCapsRetriesUnderTotalFailure) {
  TestServer server;
  SkiffProcess skiff(config_with(server, kRetryUnavailable));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  constexpr int kCalls = 100;
  for (int i = 0; i < kCalls; ++i) {
    EXPECT_TRUE(has_code(unary(*stub, failing_first(100)), StatusCode::UNAVAILABLE));
  }
  // gRFC A6 throttling (max_tokens 10, ratio 0.1): retries stop once the tokens fall to half,
  // so a 100% failing upstream sees about kCalls + 5 attempts, not 3 x kCalls.
  EXPECT_LE(server.calls("Unary"), kCalls + 10);
  EXPECT_GE(server.calls("Unary"), kCalls + 1);
}

TEST(Policies, Outbound_RetryThrottlingFromTheClusterConfig) {
  TestServer server;
  // max_tokens 4: retries stop once the tokens fall to 2, so only the first call is retried
  // (4 -> 3 after its first attempt, 3 -> 2 after its retry), where the default 10 allows ~5.
  SkiffProcess skiff(config_with(server, kRetryUnavailable) +
                     "    retry_throttling: { max_tokens: 4, token_ratio: 0.1 }\n");
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  constexpr int kCalls = 20;
  for (int i = 0; i < kCalls; ++i) {
    EXPECT_TRUE(has_code(unary(*stub, failing_first(100)), StatusCode::UNAVAILABLE));
  }
  EXPECT_EQ(server.calls("Unary"), kCalls + 1);
}

TEST(Policies, Outbound_EnvoyRetryBudgetCapsRetriesInFlight) {
  TestServer server;
  // A budget of 0 % with no floor allows no retry in flight at all: the first attempt's
  // UNAVAILABLE is the answer.
  SkiffProcess skiff(config_with(server, kRetryUnavailable) +
                     "    circuit_breaker:\n"
                     "      retry_budget: { budget_percent: 0, min_retry_concurrency: 0 }\n");
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  EXPECT_TRUE(has_code(unary(*stub, failing_first(1)), StatusCode::UNAVAILABLE));
  EXPECT_EQ(server.calls("Unary"), 1);
}

TEST(Policies, Outbound_GrpcTimeoutOffset_SkiffTimesOutBeforeTheClient) {
  TestServer server;
  // Offset 19.5 s from the client's 20 s: the call's deadline becomes ~500 ms, at skiff and (in
  // the grpc-timeout skiff sends) at the upstream, so one of them ends it with
  // DEADLINE_EXCEEDED long before the client's own deadline.
  SkiffProcess skiff(config_with(server, "        grpc_timeout_offset: 19500ms\n"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  Request slow;
  slow.set_delay_ms(60'000);
  const auto started = Clock::now();
  grpc::Status status = unary(*stub, slow);
  const auto elapsed = Clock::now() - started;
  ASSERT_TRUE(has_code(status, StatusCode::DEADLINE_EXCEEDED)) << describe(status);
  EXPECT_LT(elapsed, kCallDeadline / 2) << "the client's deadline ended the call, not the offset";
  EXPECT_TRUE(server.wait_for_cancellations(1, Millis(10'000)));
}

TEST(Policies, Outbound_OutlierEjectedEndpointGetsNoTrafficThenReturns) {
  TestServer bad(0);
  TestServer good(1);
  SkiffProcess skiff(
      "workers: 1\n"
      "listeners:\n"
      "  - name: outbound\n"
      "    address: 127.0.0.1:0\n"
      "    routes:\n"
      "      - match: {}\n"
      "        cluster: backend\n"
      "clusters:\n"
      "  - name: backend\n"
      "    endpoints: [ \"" +
      bad.address() + "\", \"" + good.address() +
      "\" ]\n"
      "    outlier_detection: { consecutive_failures: 2, base_ejection_time: 3s,\n"
      "                         max_ejection_percent: 50 }\n");
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  Request req;  // fails on server 0 only
  req.set_respond_status(static_cast<int>(StatusCode::UNAVAILABLE));
  req.set_fail_on_server(1);

  // Round robin alternates until the bad endpoint has failed twice in a row: then it is ejected.
  int failures = 0;
  for (int i = 0; i < 8 && failures < 2; ++i) {
    if (!unary(*stub, req).ok()) ++failures;
  }
  ASSERT_EQ(failures, 2);
  const int bad_calls = bad.calls("Unary");
  EXPECT_EQ(bad_calls, 2);

  // Ejected for 3 s: 10 calls on loopback all go to the good endpoint.
  int ok = 0;
  for (int i = 0; i < 10; ++i) ok += unary(*stub, req).ok() ? 1 : 0;
  EXPECT_EQ(ok, 10);
  EXPECT_EQ(bad.calls("Unary"), bad_calls);

  // After base_ejection_time the endpoint returns and gets traffic again.
  const auto deadline = Clock::now() + Millis(20'000);
  while (bad.calls("Unary") == bad_calls && Clock::now() < deadline) unary(*stub, req);
  EXPECT_GT(bad.calls("Unary"), bad_calls) << "ejected endpoint never returned";
}

TEST(Policies, Outbound_KeyedRateLimit_OneBucketPerHeaderValue) {
  TestServer server;
  SkiffProcess skiff(config_with(
      server, "        rate_limit: { rps: 0.01, burst: 2, key: { header: x-user } }\n"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  auto call_as = [&](const std::string& user) {
    grpc::ClientContext ctx;
    if (!user.empty()) ctx.AddMetadata("x-user", user);
    return unary(*stub, Request(), &ctx);
  };
  // Each user has its own burst of 2; callers without the header share one bucket (leaving the
  // header out does not lift the limit).
  for (const std::string user : {"alice", "bob", ""}) {
    EXPECT_TRUE(is_ok(call_as(user))) << user;
    EXPECT_TRUE(is_ok(call_as(user))) << user;
    grpc::Status third = call_as(user);
    EXPECT_TRUE(has_code(third, StatusCode::RESOURCE_EXHAUSTED)) << user;
  }
  EXPECT_EQ(server.calls("Unary"), 6);
}

TEST(Policies, Outbound_MessageRateLimit_EndsTheStreamWithResourceExhausted) {
  TestServer server;
  // 0.01 messages/s after a burst of 5: the sixth message on a stream is over the limit.
  SkiffProcess skiff(config_with(server, "        message_rate_limit: { rps: 0.01, burst: 5 }\n"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  Response resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(in(kCallDeadline));
  auto writer = stub->ClientStream(&ctx, &resp);
  for (int i = 0; i < 10; ++i) {
    if (!writer->Write(Request())) break;  // the stream may end before all are written
  }
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  ASSERT_TRUE(has_code(status, StatusCode::RESOURCE_EXHAUSTED));
  EXPECT_NE(status.error_message().find("message_rate_limit"), std::string::npos)
      << status.error_message();

  // The limit is per stream: a new stream starts with a full burst.
  grpc::ClientContext ctx2;
  ctx2.set_deadline(in(kCallDeadline));
  auto writer2 = stub->ClientStream(&ctx2, &resp);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(writer2->Write(Request()));
  writer2->WritesDone();
  EXPECT_TRUE(is_ok(writer2->Finish()));
  EXPECT_EQ(resp.request_count(), 5);
}

TEST(Policies, Outbound_FailureCodes_DecideWhatOpensTheBreaker) {
  TestServer server;
  // NOT_FOUND counts as a failure on this route; UNAVAILABLE does not.
  SkiffProcess skiff(config_with(server,
                                 "        failure_codes: [ not_found ]\n"
                                 "        circuit_breaker: { consecutive_failures: 2, open_for: "
                                 "1h }\n"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  Request unavailable;
  unavailable.set_respond_status(static_cast<int>(StatusCode::UNAVAILABLE));
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(has_code(unary(*stub, unavailable), StatusCode::UNAVAILABLE));
  }
  EXPECT_TRUE(is_ok(unary(*stub, Request()))) << "UNAVAILABLE must not have opened the breaker";
  Request not_found;
  not_found.set_respond_status(static_cast<int>(StatusCode::NOT_FOUND));
  EXPECT_TRUE(has_code(unary(*stub, not_found), StatusCode::NOT_FOUND));
  EXPECT_TRUE(has_code(unary(*stub, not_found), StatusCode::NOT_FOUND));
  grpc::Status rejected = unary(*stub, Request());
  ASSERT_TRUE(has_code(rejected, StatusCode::UNAVAILABLE));
  EXPECT_NE(rejected.error_message().find("circuit open"), std::string::npos)
      << rejected.error_message();
  EXPECT_EQ(server.calls("Unary"), 7);
}

// Reads a ServerStream call to its end: the messages and the status.
struct StreamResult {
  int messages = 0;
  grpc::Status status;
};

StreamResult read_stream(skiff::testing::TestService::Stub& stub, const Request& req) {
  grpc::ClientContext ctx;
  ctx.set_deadline(in(kCallDeadline));
  auto reader = stub.ServerStream(&ctx, req);
  StreamResult result;
  Response resp;
  while (reader->Read(&resp)) ++result.messages;
  result.status = reader->Finish();
  return result;
}

TEST(Policies, Outbound_RetryOnTrailerStatus_HeldResponseRetried) {
  TestServer server;
  SkiffProcess skiff(config_with(server, kRetryUnavailable));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  // Headers, two messages, then UNAVAILABLE in the trailers on the first attempt: one request
  // message and a small response, so skiff held it and may still retry.
  Request req = failing_first(1);
  req.set_response_count(2);
  StreamResult result = read_stream(*stub, req);
  EXPECT_TRUE(is_ok(result.status)) << result.status.error_message();
  EXPECT_EQ(result.messages, 2) << "only the retried attempt's messages reach the client";
  EXPECT_EQ(server.calls("ServerStream"), 2);
}

TEST(Policies, Outbound_RetryOnTrailerStatus_HeadersThenStatus) {
  TestServer server;
  SkiffProcess skiff(config_with(server, kRetryUnavailable));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  // Response headers, no messages, UNAVAILABLE in trailers (not trailers-only).
  Request req = failing_first(2);
  req.set_headers_only(true);
  StreamResult result = read_stream(*stub, req);
  EXPECT_TRUE(is_ok(result.status)) << result.status.error_message();
  EXPECT_EQ(result.messages, 0);
  EXPECT_EQ(server.calls("ServerStream"), 3);
  // With every attempt failing, the last attempt's trailers are forwarded.
  req = failing_first(5);
  req.set_headers_only(true);
  result = read_stream(*stub, req);
  EXPECT_TRUE(has_code(result.status, StatusCode::UNAVAILABLE));
  EXPECT_EQ(result.status.error_message(), "try again");
  EXPECT_EQ(server.calls("ServerStream"), 6);
}

TEST(Policies, Outbound_PerTryTimeoutRunsWhileHolding) {
  TestServer server;
  SkiffProcess skiff(
      config_with(server,
                  "        retry: { max_attempts: 2, on: [per_try_timeout, deadline_exceeded], "
                  "per_try_timeout: 100ms, backoff: { initial: 10ms, max: 10ms } }\n"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  // The first message arrives at once, the second only after the attempt's time is up. The
  // first attempt is held (for up to 250 ms after a whole message), so its end within that time
  // (skiff's 100 ms per-try timeout, or the server's own deadline) is retried. The last attempt
  // is not held (no retry left): its headers commit it, and its first message and final status
  // reach the client.
  Request req;
  req.set_response_count(2);
  req.set_interval_ms(3000);
  StreamResult result = read_stream(*stub, req);
  EXPECT_FALSE(is_ok(result.status));
  EXPECT_EQ(result.messages, 1) << "the held attempt's message is dropped";
  EXPECT_EQ(server.calls("ServerStream"), 2);
}

// A two-message server stream, |interval_ms| apart: asserts the first message arrives within
// |first_within| (it was not held for the second) and the stream then ends OK.
void expect_first_message_not_held(skiff::testing::TestService::Stub& stub, int interval_ms,
                                   Millis first_within) {
  Request req;
  req.set_response_count(2);
  req.set_interval_ms(interval_ms);
  grpc::ClientContext ctx;
  ctx.set_deadline(in(kCallDeadline));
  const auto start = Clock::now();
  auto reader = stub.ServerStream(&ctx, req);
  Response resp;
  ASSERT_TRUE(reader->Read(&resp));
  EXPECT_LT(Clock::now() - start, first_within) << "the first message waited for the second";
  ASSERT_TRUE(reader->Read(&resp));
  EXPECT_FALSE(reader->Read(&resp));
  EXPECT_TRUE(is_ok(reader->Finish()));
}

TEST(Policies, Outbound_RouteWithoutRetryNeverHolds) {
  TestServer server;
  SkiffProcess skiff(config_with(server, ""));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  expect_first_message_not_held(*stub, 2000, Millis(1500));
}

TEST(Policies, Outbound_RetryRouteServerStreamHoldsItsFirstMessageBriefly) {
  TestServer server;
  // A retry route holds a one-request call's response for its trailers, but a server stream's
  // trailers may be minutes away: a whole held message waits at most 250 ms.
  SkiffProcess skiff(config_with(server, "        retry: { max_attempts: 3 }\n"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  expect_first_message_not_held(*stub, 3000, Millis(2000));
  EXPECT_EQ(server.calls("ServerStream"), 1);
}

}  // namespace
}  // namespace skiff::it
