// Failures through skiff's outbound listener: the statuses skiff itself produces (no route,
// upstream down, deadlines) and how upstream/downstream failures propagate as cancellations.
#include <gtest/gtest.h>

#include <iostream>
#include <regex>
#include <stdexcept>
#include <thread>

#include "harness.h"

namespace skiff::it {
namespace {

using grpc::StatusCode;
using skiff::testing::Request;
using skiff::testing::Response;
using Clock = std::chrono::steady_clock;

constexpr Millis kCallDeadline(20'000);
constexpr Millis kObserveTimeout(5'000);  // "it eventually happens" on a loaded machine

Millis since(Clock::time_point start) {
  return std::chrono::duration_cast<Millis>(Clock::now() - start);
}

constexpr const char* kService = "skiff.testing.TestService";

TEST(Faults, Outbound_UnroutedService_Unimplemented) {
  SkiffConfig cfg;
  cfg.route({.service = kService});  // only TestService is routed
  TestMesh mesh;
  mesh.server().skiff(cfg);

  Request req;
  Response resp;
  grpc::ClientContext ok_ctx;
  ok_ctx.set_deadline(in(kCallDeadline));
  ASSERT_TRUE(is_ok(mesh.client()->Unary(&ok_ctx, req, &resp)));

  grpc::ClientContext ctx;
  ctx.set_deadline(in(kCallDeadline));
  EXPECT_TRUE(has_code(mesh.other_client()->Ping(&ctx, req, &resp), StatusCode::UNIMPLEMENTED));
  // The upstream implements OtherService: a forwarded Ping would have reached it.
  EXPECT_EQ(mesh.upstream().calls("Ping"), 0);
}

TEST(Faults, Outbound_UnroutedMethod_Unimplemented) {
  SkiffConfig cfg;
  cfg.route({.service = kService, .method = "Unary"});  // only TestService/Unary is routed
  TestMesh mesh;
  auto client = mesh.server().skiff(cfg).client();

  Request req;
  Response resp;
  grpc::ClientContext ok_ctx;
  ok_ctx.set_deadline(in(kCallDeadline));
  ASSERT_TRUE(is_ok(client->Unary(&ok_ctx, req, &resp)));

  grpc::ClientContext ctx;
  ctx.set_deadline(in(kCallDeadline));
  auto reader = client->ServerStream(&ctx, req);
  EXPECT_FALSE(reader->Read(&resp));
  EXPECT_TRUE(has_code(reader->Finish(), StatusCode::UNIMPLEMENTED));
  EXPECT_EQ(mesh.upstream().calls(), 1);
}

TEST(Faults, Outbound_UpstreamDown_Unavailable) {
  ClosedPort down;  // bound, not listening: connect() is refused
  SkiffConfig cfg;
  cfg.cluster("backend", {down.address()});
  TestMesh mesh;
  auto client = mesh.skiff(cfg).client();

  const auto start = Clock::now();
  Request req;
  Response resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(in(kCallDeadline));
  EXPECT_TRUE(has_code(client->Unary(&ctx, req, &resp), StatusCode::UNAVAILABLE));

  grpc::ClientContext stream_ctx;
  stream_ctx.set_deadline(in(kCallDeadline));
  auto reader = client->ServerStream(&stream_ctx, req);
  EXPECT_FALSE(reader->Read(&resp));
  EXPECT_TRUE(has_code(reader->Finish(), StatusCode::UNAVAILABLE));
  EXPECT_LT(since(start), Millis(10'000)) << "a refused connect should fail fast";
}

TEST(Faults, Outbound_UpstreamStopped_Unavailable) {
  TestMesh mesh;
  auto client = mesh.server().skiff().client();
  Request req;
  Response resp;
  grpc::ClientContext before;
  before.set_deadline(in(kCallDeadline));
  ASSERT_TRUE(is_ok(client->Unary(&before, req, &resp)));

  mesh.upstream().stop();  // closes skiff's pooled connection and the listening port

  grpc::ClientContext after;
  after.set_deadline(in(kCallDeadline));
  EXPECT_TRUE(has_code(client->Unary(&after, req, &resp), StatusCode::UNAVAILABLE));
}

// The upstream cancels its own stream after 5 of 100 responses.
TEST(Faults, Outbound_UpstreamAbortsMidStream_ClientSeesError) {
  TestMesh mesh;
  auto client = mesh.server().skiff().client();
  Request req;
  req.set_response_count(100);
  req.set_abort_after(5);
  grpc::ClientContext ctx;
  ctx.set_deadline(in(kCallDeadline));
  auto reader = client->ServerStream(&ctx, req);
  Response resp;
  int n = 0;
  while (reader->Read(&resp)) ++n;
  grpc::Status s = reader->Finish();
  std::cout << "[ info ] upstream aborted its stream: client saw " << describe(s) << " after " << n
            << " messages" << std::endl;
  EXPECT_LE(n, 5);
  EXPECT_FALSE(s.ok()) << "a truncated stream must never end with OK (" << n << " messages)";
  EXPECT_NE(s.error_code(), StatusCode::DEADLINE_EXCEEDED) << describe(s);
}

// An upstream in its own process, so that it can be SIGKILLed: its connection then closes with
// no trailers, RST_STREAM or GOAWAY.
class KillableUpstream {
 public:
  KillableUpstream() : process_("skiff_test_upstream", {upstream_binary()}) {
    static const std::regex kListening(R"(listening on (127\.0\.0\.1:\d+))");
    std::smatch m;
    if (!process_.wait_for_stderr(
            [](const std::string& err) { return std::regex_search(err, kListening); },
            Millis(10'000))) {
      ADD_FAILURE() << "skiff_test_upstream did not start";
      throw std::runtime_error("skiff_test_upstream did not start");
    }
    const std::string err = process_.err();
    std::regex_search(err, m, kListening);
    address_ = m[1].str();
  }
  const std::string& address() const { return address_; }
  // Waits until the upstream has seen the start of |n| calls.
  bool wait_for_calls(int n, Millis timeout) const {
    return process_.wait_for_stderr(
        [n](const std::string& err) {
          int seen = 0;
          for (size_t pos = 0; (pos = err.find("test upstream: call ", pos)) != std::string::npos;
               ++pos) {
            ++seen;
          }
          return seen >= n;
        },
        timeout);
  }
  void kill() { process_.kill(); }

 private:
  Subprocess process_;
  std::string address_;
};

// The upstream dies after response headers and some messages: the downstream stream must end
// with an error (a reset), never with OK, and promptly.
TEST(Faults, Outbound_UpstreamKilledMidStream_ClientSeesError) {
  KillableUpstream upstream;
  SkiffConfig cfg;
  cfg.cluster("backend", {upstream.address()});
  TestMesh mesh;
  auto client = mesh.skiff(cfg).client();

  Request req;
  req.set_response_count(100'000);
  req.set_interval_ms(20);  // a stream that would last ~30 min
  grpc::ClientContext ctx;
  ctx.set_deadline(in(Millis(30'000)));
  auto reader = client->ServerStream(&ctx, req);
  Response resp;
  int n = 0;
  for (; n < 3; ++n) ASSERT_TRUE(reader->Read(&resp)) << "message " << n;

  upstream.kill();
  const auto killed = Clock::now();
  while (reader->Read(&resp)) ++n;
  grpc::Status s = reader->Finish();
  std::cout << "[ info ] upstream killed after response headers: client saw " << describe(s)
            << " after " << n << " messages" << std::endl;
  EXPECT_FALSE(s.ok()) << "a truncated stream must never end with OK (" << n << " messages)";
  EXPECT_NE(s.error_code(), StatusCode::DEADLINE_EXCEEDED)
      << "skiff did not end the downstream stream when its upstream died: " << describe(s);
  EXPECT_LT(since(killed), Millis(10'000));
}

// The upstream dies before sending response headers: skiff answers UNAVAILABLE.
TEST(Faults, Outbound_UpstreamKilledBeforeHeaders_Unavailable) {
  KillableUpstream upstream;
  SkiffConfig cfg;
  cfg.cluster("backend", {upstream.address()});
  TestMesh mesh;
  auto client = mesh.skiff(cfg).client();

  grpc::Status status;
  std::thread call([&] {
    Request req;
    req.set_delay_ms(20'000);  // no response headers until then
    Response resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(in(Millis(30'000)));
    status = client->Unary(&ctx, req, &resp);
  });
  const bool started = upstream.wait_for_calls(1, Millis(10'000));
  upstream.kill();
  const auto killed = Clock::now();
  call.join();
  std::cout << "[ info ] upstream killed before response headers: client saw " << describe(status)
            << std::endl;
  ASSERT_TRUE(started) << "the call never reached the upstream";
  EXPECT_TRUE(has_code(status, StatusCode::UNAVAILABLE));
  EXPECT_LT(since(killed), Millis(10'000));
}

TEST(Faults, Outbound_ClientDeadline_DeadlineExceededAndUpstreamCancelled) {
  TestMesh mesh;
  auto client = mesh.server().skiff().client();
  Request req;
  req.set_delay_ms(5000);
  Response resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(in(Millis(300)));
  const auto start = Clock::now();
  grpc::Status s = client->Unary(&ctx, req, &resp);
  const Millis took = since(start);
  EXPECT_TRUE(has_code(s, StatusCode::DEADLINE_EXCEEDED));
  EXPECT_GE(took, Millis(250));
  EXPECT_LE(took, Millis(2000));
  EXPECT_TRUE(mesh.upstream().wait_for_cancellations(1, kObserveTimeout))
      << "the upstream call was not cancelled";
}

TEST(Faults, Outbound_RouteTimeout_DeadlineExceededAndUpstreamCancelled) {
  SkiffConfig cfg;
  cfg.route({.service = kService, .method = "Unary", .timeout = "300ms"});
  cfg.route({});
  TestMesh mesh;
  auto client = mesh.server().skiff(cfg).client();
  Request req;
  req.set_delay_ms(5000);
  Response resp;
  grpc::ClientContext ctx;  // no client deadline: only the route's timeout applies
  const auto start = Clock::now();
  grpc::Status s = client->Unary(&ctx, req, &resp);
  const Millis took = since(start);
  EXPECT_TRUE(has_code(s, StatusCode::DEADLINE_EXCEEDED));
  EXPECT_GE(took, Millis(250));
  EXPECT_LE(took, Millis(2000));
  EXPECT_TRUE(mesh.upstream().wait_for_cancellations(1, kObserveTimeout))
      << "the upstream call was not cancelled";
}

// deadline = min(grpc-timeout, route timeout): a longer client deadline does not extend it.
TEST(Faults, Outbound_RouteTimeoutCapsLongerClientDeadline) {
  SkiffConfig cfg;
  cfg.route({.service = kService, .method = "Unary", .timeout = "300ms"});
  cfg.route({});
  TestMesh mesh;
  auto client = mesh.server().skiff(cfg).client();
  Request req;
  req.set_delay_ms(5000);
  Response resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(in(Millis(10'000)));
  const auto start = Clock::now();
  grpc::Status s = client->Unary(&ctx, req, &resp);
  const Millis took = since(start);
  EXPECT_TRUE(has_code(s, StatusCode::DEADLINE_EXCEEDED));
  EXPECT_GE(took, Millis(250));
  EXPECT_LE(took, Millis(2000));

  // Other methods of the service are not capped.
  req.set_delay_ms(600);
  grpc::ClientContext other;
  other.set_deadline(in(kCallDeadline));
  auto reader = client->ServerStream(&other, req);
  int n = 0;
  while (reader->Read(&resp)) ++n;
  EXPECT_TRUE(is_ok(reader->Finish()));
  EXPECT_EQ(n, 1);
}

TEST(Faults, Outbound_ClientCancelBidi_UpstreamCancelled) {
  TestMesh mesh;
  auto client = mesh.server().skiff().client();
  grpc::ClientContext ctx;
  ctx.set_deadline(in(Millis(30'000)));
  auto stream = client->Bidi(&ctx);
  Request req;
  req.set_payload("x");
  ASSERT_TRUE(stream->Write(req));
  Response resp;
  ASSERT_TRUE(stream->Read(&resp));  // the upstream handler is now running, blocked in Read
  ctx.TryCancel();
  EXPECT_TRUE(mesh.upstream().wait_for_cancellations(1, kObserveTimeout))
      << "skiff did not cancel the upstream stream";
  EXPECT_TRUE(has_code(stream->Finish(), StatusCode::CANCELLED));
}

TEST(Faults, Outbound_ClientCancelServerStream_UpstreamCancelled) {
  TestMesh mesh;
  auto client = mesh.server().skiff().client();
  Request req;
  req.set_response_count(100'000);
  req.set_interval_ms(10);
  grpc::ClientContext ctx;
  ctx.set_deadline(in(Millis(30'000)));
  auto reader = client->ServerStream(&ctx, req);
  Response resp;
  ASSERT_TRUE(reader->Read(&resp));
  ASSERT_TRUE(reader->Read(&resp));
  ctx.TryCancel();
  EXPECT_TRUE(mesh.upstream().wait_for_cancellations(1, kObserveTimeout))
      << "skiff did not cancel the upstream stream";
  while (reader->Read(&resp)) {
  }
  EXPECT_TRUE(has_code(reader->Finish(), StatusCode::CANCELLED));
}

}  // namespace
}  // namespace skiff::it
