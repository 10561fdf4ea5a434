// Self-tests of the harness, without skiff: TestServer over a direct channel, the child
// upstream, Subprocess on /bin/sh, and the config/readiness helpers. If these fail, the
// skiff tests' verdicts mean nothing.
#include "harness.h"

#include <gtest/gtest.h>

#include <regex>
#include <thread>

namespace skiff::it {
namespace {

using grpc::StatusCode;
using skiff::testing::Request;
using skiff::testing::Response;

std::unique_ptr<skiff::testing::TestService::Stub> direct(const TestServer& server) {
  return skiff::testing::TestService::NewStub(make_channel(server.address()));
}

TEST(Harness, Direct_UnaryEchoStatusAndMetadata) {
  TestServer server(3);
  auto stub = direct(server);

  Request req;
  req.set_payload("hello");
  req.set_tag("first");
  Response resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(in(Millis(10'000)));
  ASSERT_TRUE(is_ok(stub->Unary(&ctx, req, &resp)));
  EXPECT_EQ(resp.payload(), "hello");
  EXPECT_EQ(resp.server_id(), 3);

  const std::string bin = pattern_bytes(256);
  grpc::ClientContext ctx2;
  ctx2.AddMetadata("x-echo-data-bin", bin);
  ctx2.AddMetadata("x-echo-text", "hi");
  req.set_echo_metadata(true);
  req.set_respond_status(9);
  req.set_respond_message("précondition ✗");
  grpc::Status s = stub->Unary(&ctx2, req, &resp);
  EXPECT_TRUE(has_code(s, StatusCode::FAILED_PRECONDITION));
  EXPECT_EQ(s.error_message(), "précondition ✗");
  EXPECT_EQ(metadata_values(ctx2.GetServerTrailingMetadata(), "x-trail-data-bin"),
            std::vector<std::string>{bin});

  ASSERT_EQ(server.calls(), 2);
  auto records = server.records();
  EXPECT_EQ(records[0].tag, "first");
  auto seen = records[1].metadata.find("x-echo-data-bin");
  ASSERT_NE(seen, records[1].metadata.end());
  EXPECT_EQ(seen->second, bin);
  EXPECT_TRUE(server.wait_for_finished(2, Millis(5000)));
  EXPECT_EQ(server.cancellations(), 0);
}

TEST(Harness, Direct_DeadlineIsObservedAsCancellation) {
  TestServer server;
  auto stub = direct(server);
  Request req;
  req.set_delay_ms(5000);
  Response resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(in(Millis(300)));
  EXPECT_TRUE(has_code(stub->Unary(&ctx, req, &resp), StatusCode::DEADLINE_EXCEEDED));
  EXPECT_TRUE(server.wait_for_cancellations(1, Millis(5000)));
}

TEST(Harness, Direct_ClientCancelOfBidiIsObserved) {
  TestServer server;
  auto stub = direct(server);
  grpc::ClientContext ctx;
  ctx.set_deadline(in(Millis(30'000)));
  auto stream = stub->Bidi(&ctx);
  Request req;
  req.set_payload("x");
  ASSERT_TRUE(stream->Write(req));
  Response resp;
  ASSERT_TRUE(stream->Read(&resp));
  ctx.TryCancel();
  EXPECT_TRUE(server.wait_for_cancellations(1, Millis(5000)));
  EXPECT_TRUE(has_code(stream->Finish(), StatusCode::CANCELLED));
}

TEST(Harness, Direct_ServerStreamAbortEndsNonOk) {
  TestServer server;
  auto stub = direct(server);
  Request req;
  req.set_response_count(100);
  req.set_abort_after(5);
  grpc::ClientContext ctx;
  ctx.set_deadline(in(Millis(10'000)));
  auto reader = stub->ServerStream(&ctx, req);
  Response resp;
  int n = 0;
  while (reader->Read(&resp)) ++n;
  EXPECT_LE(n, 5);
  EXPECT_FALSE(reader->Finish().ok());
  ASSERT_TRUE(server.wait_for_finished(1, Millis(5000)));
  EXPECT_TRUE(server.records()[0].self_aborted);
  EXPECT_EQ(server.cancellations(), 0);
}

TEST(Harness, ChildUpstream_ServesAndDiesOnKill) {
  Subprocess upstream("skiff_test_upstream", {upstream_binary(), "4"});
  static const std::regex kListening(R"(listening on (127\.0\.0\.1:\d+))");
  ASSERT_TRUE(upstream.wait_for_stderr(
      [](const std::string& err) { return std::regex_search(err, kListening); }, Millis(10'000)));
  std::smatch m;
  const std::string err = upstream.err();
  ASSERT_TRUE(std::regex_search(err, m, kListening));
  auto stub = skiff::testing::TestService::NewStub(make_channel(m[1].str()));
  Request req;
  Response resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(in(Millis(10'000)));
  ASSERT_TRUE(is_ok(stub->Unary(&ctx, req, &resp)));
  EXPECT_EQ(resp.server_id(), 4);
  upstream.kill();
  ASSERT_TRUE(upstream.exit_status().has_value());
  EXPECT_EQ(upstream.exit_status()->signal(), SIGKILL);
}

TEST(Harness, Subprocess_ReadinessLinesRssAndTerminate) {
  // A stand-in for skiff: logs two readiness lines, exits 0 on SIGTERM.
  Subprocess p("sh", {"/bin/sh", "-c",
                      "trap 'echo bye >&2; exit 0' TERM; "
                      "echo 'I listener \"outbound\" listening on 127.0.0.1:4242' >&2; "
                      "echo 'I listener \"inbound\" listening on 127.0.0.1:4343' >&2; "
                      "echo to-stdout; while :; do sleep 0.05; done"});
  ASSERT_TRUE(p.wait_for_stderr(
      [](const std::string& err) { return parse_listening_lines(err).size() == 2; },
      Millis(10'000)));
  auto found = parse_listening_lines(p.err());
  EXPECT_EQ(found["outbound"], "127.0.0.1:4242");
  EXPECT_EQ(found["inbound"], "127.0.0.1:4343");
  EXPECT_GT(p.rss_kb(), 0);
  ExitStatus status = p.terminate(Millis(10'000));
  EXPECT_TRUE(status.exited()) << status.to_string();
  EXPECT_EQ(status.code(), 0);
  EXPECT_FALSE(p.running());
  EXPECT_EQ(p.rss_kb(), -1);
}

TEST(Harness, Subprocess_EarlyExitEndsWaitAndKillReaps) {
  Subprocess quitter("sh", {"/bin/sh", "-c", "echo oops >&2; exit 3"});
  // Never satisfied: returns when stderr closes, long before the timeout.
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(quitter.wait_for_stderr([](const std::string&) { return false; }, Millis(30'000)));
  EXPECT_LT(std::chrono::steady_clock::now() - start, Millis(10'000));
  auto status = quitter.wait_exit(Millis(10'000));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->code(), 3);
  EXPECT_NE(quitter.err().find("oops"), std::string::npos);

  Subprocess sleeper("sh", {"/bin/sh", "-c", "trap '' TERM; while :; do sleep 0.05; done"});
  EXPECT_FALSE(sleeper.wait_exit(Millis(50)).has_value());
  sleeper.kill();
  ASSERT_TRUE(sleeper.exit_status().has_value());
  EXPECT_EQ(sleeper.exit_status()->signal(), SIGKILL);
}

TEST(Harness, SkiffConfig_RendersRoutesClustersAndTimeouts) {
  SkiffConfig cfg;
  cfg.workers = 1;
  cfg.route({.service = "skiff.testing.TestService", .method = "Unary", .timeout = "300ms"});
  cfg.route({});
  cfg.cluster("backend", {"127.0.0.1:1", "127.0.0.1:2"});
  const std::string y = cfg.yaml();
  EXPECT_NE(y.find("workers: 1\n"), std::string::npos) << y;
  EXPECT_NE(y.find("- match: { service: \"skiff.testing.TestService\", method: \"Unary\" }"),
            std::string::npos)
      << y;
  EXPECT_NE(y.find("timeout: 300ms"), std::string::npos) << y;
  EXPECT_NE(y.find("- match: {}"), std::string::npos) << y;
  EXPECT_NE(y.find("endpoints: [ \"127.0.0.1:1\", \"127.0.0.1:2\" ]"), std::string::npos) << y;
}

TEST(Harness, ClosedPort_RefusesConnections) {
  ClosedPort port;
  auto stub = skiff::testing::TestService::NewStub(make_channel(port.address()));
  Request req;
  Response resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(in(Millis(10'000)));
  EXPECT_TRUE(has_code(stub->Unary(&ctx, req, &resp), StatusCode::UNAVAILABLE));
}

}  // namespace
}  // namespace skiff::it
