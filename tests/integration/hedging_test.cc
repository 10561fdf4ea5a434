// Hedging through the real binary (gRFC A6, docs/policies.md "hedging"): copies race, the first
// OK (or response headers, or fatal status) wins and the others are cancelled; a non-fatal
// status sends the next copy at once; the retry budget and the replay buffer limit the copies.
#include <gtest/gtest.h>

#include <string>

#include "harness.h"

namespace skiff::it {
namespace {

using grpc::StatusCode;
using skiff::testing::Request;
using skiff::testing::Response;
using Stub = skiff::testing::TestService::Stub;

constexpr Millis kCallDeadline(20'000);

// One worker; one catch-all route with |hedging| (a flow map) to cluster "backend" = |endpoints|.
std::string hedging_config(const std::vector<const TestServer*>& endpoints,
                           const std::string& hedging) {
  return catch_all_config(endpoints, "        hedging: " + hedging + "\n");
}

grpc::Status unary(Stub& stub, const Request& req, Response* resp = nullptr) {
  return unary_call(stub, req, kCallDeadline, resp);
}

Request failing_first(int attempts, StatusCode code = StatusCode::UNAVAILABLE) {
  Request req;
  req.set_respond_status(static_cast<int>(code));
  req.set_respond_message("try again");
  req.set_fail_attempts(attempts);
  return req;
}

// The grpc-previous-rpc-attempts values the server saw, in call order ("" = absent).
std::vector<std::string> previous_attempts(const TestServer& server) {
  std::vector<std::string> out;
  for (const CallRecord& r : server.records()) {
    auto it = r.metadata.find("grpc-previous-rpc-attempts");
    out.push_back(it == r.metadata.end() ? "" : it->second);
  }
  return out;
}

TEST(Hedging, WinsOnTheFastReplicaAndCancelsTheSlowCopy) {
  TestServer slow(0);
  TestServer fast(1);
  // Far longer than the client's deadline: only a hedged copy can answer in time.
  slow.set_unary_delay(Millis(60'000));
  SkiffProcess skiff(hedging_config({&slow, &fast}, "{ max_attempts: 2, hedging_delay: 20ms }"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  constexpr int kCalls = 6;
  for (int i = 0; i < kCalls; ++i) {
    Response resp;
    grpc::Status status = unary(*stub, Request(), &resp);
    ASSERT_TRUE(is_ok(status)) << "call " << i;
    EXPECT_EQ(resp.server_id(), 1) << "call " << i << " answered by the slow replica";
  }
  // The copies are spread: every call that went to the slow replica first was hedged to the
  // fast one, and the slow copy was cancelled once the fast one won.
  const int slow_calls = slow.calls("Unary");
  EXPECT_GT(slow_calls, 0) << "round robin never tried the slow replica";
  EXPECT_TRUE(slow.wait_for_cancellations(slow_calls, Millis(10'000)))
      << slow.cancellations() << " of " << slow_calls << " slow copies cancelled";
  EXPECT_GE(fast.calls("Unary"), kCalls);
}

TEST(Hedging, NonFatalStatusSendsTheNextCopyAtOnce) {
  TestServer server;
  // hedging_delay far beyond the deadline: only a non-fatal answer can send copy 2 in time.
  SkiffProcess skiff(hedging_config(
      {&server}, "{ max_attempts: 3, hedging_delay: 60s, non_fatal_codes: [unavailable] }"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  EXPECT_TRUE(is_ok(unary(*stub, failing_first(1))));
  EXPECT_EQ(server.calls("Unary"), 2);
  // A6: each copy says how many were sent before it.
  EXPECT_EQ(previous_attempts(server), (std::vector<std::string>{"", "1"}));
}

TEST(Hedging, FatalStatusIsForwardedAndStopsTheCopies) {
  TestServer server;
  SkiffProcess skiff(hedging_config(
      {&server}, "{ max_attempts: 3, hedging_delay: 60s, non_fatal_codes: [unavailable] }"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  grpc::Status status = unary(*stub, failing_first(1, StatusCode::INTERNAL));
  ASSERT_TRUE(has_code(status, StatusCode::INTERNAL)) << describe(status);
  EXPECT_EQ(status.error_message(), "try again");
  EXPECT_EQ(server.calls("Unary"), 1);
}

TEST(Hedging, AllCopiesNonFatal_TheLastAnswerIsForwarded) {
  TestServer server;
  SkiffProcess skiff(hedging_config(
      {&server}, "{ max_attempts: 3, hedging_delay: 60s, non_fatal_codes: [unavailable] }"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  grpc::Status status = unary(*stub, failing_first(5));
  ASSERT_TRUE(has_code(status, StatusCode::UNAVAILABLE)) << describe(status);
  EXPECT_EQ(status.error_message(), "try again");
  EXPECT_EQ(server.calls("Unary"), 3);
}

TEST(Hedging, ResponseHeadersCommitToTheirCopy) {
  TestServer server;
  SkiffProcess skiff(hedging_config(
      {&server}, "{ max_attempts: 3, hedging_delay: 60s, non_fatal_codes: [unavailable] }"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  // Response headers, then UNAVAILABLE in trailers: the call is committed to the first copy
  // (A6), so the non-fatal code no longer sends another.
  Request req = failing_first(5);
  req.set_headers_only(true);
  grpc::ClientContext ctx;
  ctx.set_deadline(in(kCallDeadline));
  auto reader = stub->ServerStream(&ctx, req);
  Response resp;
  while (reader->Read(&resp)) {
  }
  EXPECT_TRUE(has_code(reader->Finish(), StatusCode::UNAVAILABLE));
  EXPECT_EQ(server.calls("ServerStream"), 1);
}

TEST(Hedging, RequestOverTheBufferGetsOneCopy) {
  TestServer server;
  SkiffProcess skiff(hedging_config({&server},
                                    "{ max_attempts: 3, hedging_delay: 0ms, "
                                    "non_fatal_codes: [unavailable], buffer_bytes: 1024 }"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  Request big = failing_first(1);
  big.set_payload(std::string(8192, 'x'));
  EXPECT_TRUE(has_code(unary(*stub, big), StatusCode::UNAVAILABLE));
  EXPECT_EQ(server.calls("Unary"), 1) << "a request larger than buffer_bytes is sent once";
  // A small one is hedged: hedging_delay 0 sends all three copies at once.
  EXPECT_TRUE(is_ok(unary(*stub, Request())));
  EXPECT_TRUE(server.wait_for_calls(1 + 3, Millis(10'000))) << server.calls("Unary");
}

TEST(Hedging, ClientStreamCopiesCarryTheWholeRequest) {
  TestServer server;
  // hedging_delay 0: copy 2 is due at once, but it replays the whole request, so it goes when
  // the request has ended. Copy 1 fails (non-fatal), copy 2 answers with what it received.
  SkiffProcess skiff(hedging_config(
      {&server}, "{ max_attempts: 2, hedging_delay: 0ms, non_fatal_codes: [unavailable] }"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  Response resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(in(kCallDeadline));
  auto writer = stub->ClientStream(&ctx, &resp);
  constexpr int kMessages = 3;
  for (int i = 0; i < kMessages; ++i) {
    Request req = i == 0 ? failing_first(1) : Request();
    req.set_payload(pattern_bytes(1000, static_cast<uint32_t>(i)));
    ASSERT_TRUE(writer->Write(req)) << "message " << i;
  }
  ASSERT_TRUE(writer->WritesDone());
  grpc::Status status = writer->Finish();
  ASSERT_TRUE(is_ok(status)) << describe(status);
  EXPECT_EQ(resp.request_count(), kMessages);
  EXPECT_EQ(resp.request_bytes(), kMessages * 1000);
  EXPECT_EQ(server.calls("ClientStream"), 2);
}

TEST(Hedging, FirstCopyStreamsTheRequestAsItArrives) {
  TestServer server;
  // One copy unless a non-fatal status comes: the first copy must get every message, including
  // those written after its stream opened.
  SkiffProcess skiff(hedging_config({&server}, "{ max_attempts: 2, hedging_delay: 60s }"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  Response resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(in(kCallDeadline));
  auto writer = stub->ClientStream(&ctx, &resp);
  Request req;
  req.set_payload(pattern_bytes(1000, 1));
  ASSERT_TRUE(writer->Write(req));
  ASSERT_TRUE(server.wait_for_calls(1, Millis(10'000))) << "the first copy never arrived";
  ASSERT_TRUE(writer->Write(req));
  ASSERT_TRUE(writer->Write(req));
  ASSERT_TRUE(writer->WritesDone());
  grpc::Status status = writer->Finish();
  ASSERT_TRUE(is_ok(status)) << describe(status);
  EXPECT_EQ(resp.request_count(), 3);
  EXPECT_EQ(server.calls("ClientStream"), 1);
}

TEST(Hedging, DeadlineCancelsEveryCopy) {
  TestServer server;
  server.set_unary_delay(Millis(60'000));
  SkiffProcess skiff(hedging_config({&server}, "{ max_attempts: 3, hedging_delay: 0ms }"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  grpc::ClientContext ctx;
  ctx.set_deadline(in(Millis(500)));
  Response resp;
  grpc::Status status = stub->Unary(&ctx, Request(), &resp);
  EXPECT_TRUE(has_code(status, StatusCode::DEADLINE_EXCEEDED)) << describe(status);
  // All three copies were sent at once, and all three are cancelled at the deadline.
  ASSERT_TRUE(server.wait_for_calls(3, Millis(10'000))) << server.calls("Unary");
  EXPECT_TRUE(server.wait_for_cancellations(3, Millis(10'000))) << server.cancellations();
}

TEST(Hedging, RetryBudgetCapsCopiesUnderTotalFailure) {
  TestServer server;
  SkiffProcess skiff(hedging_config(
      {&server}, "{ max_attempts: 3, hedging_delay: 60s, non_fatal_codes: [unavailable] }"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  constexpr int kCalls = 100;
  for (int i = 0; i < kCalls; ++i) {
    ASSERT_TRUE(has_code(unary(*stub, failing_first(100)), StatusCode::UNAVAILABLE));
  }
  // gRFC A6 throttling (max_tokens 10, ratio 0.1): copies stop once the tokens fall to half,
  // so a 100% failing upstream sees about kCalls + 5 copies, not 3 x kCalls.
  EXPECT_LE(server.calls("Unary"), kCalls + 10);
  EXPECT_GE(server.calls("Unary"), kCalls + 1);
}

}  // namespace
}  // namespace skiff::it
