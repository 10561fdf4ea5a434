// The skiff process itself: graceful drain on SIGTERM, config errors and --check-config.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <iostream>
#include <mutex>
#include <regex>
#include <thread>

#include "harness.h"

namespace skiff::it {
namespace {

using grpc::StatusCode;
using skiff::testing::Request;
using skiff::testing::Response;
using Clock = std::chrono::steady_clock;

// Tests learn skiff's ports from these lines; the contract puts them on stderr.
TEST(Lifecycle, ReadinessLinesOnStderr) {
  TestMesh mesh;
  mesh.server().skiff();
  const std::string err = mesh.proxy().process().err();
  const auto found = parse_listening_lines(err);
  ASSERT_TRUE(found.contains("outbound"))
      << "no 'listener \"outbound\" listening on HOST:PORT' line on skiff's stderr";
  EXPECT_EQ(found.at("outbound"), mesh.proxy().address());
}

TEST(Lifecycle, Outbound_SigtermWithCallsInFlight_CallsCompleteAndExit0) {
  SkiffConfig cfg;
  cfg.drain_timeout = "10s";
  TestMesh mesh;
  mesh.server().skiff(cfg);

  // Some calls share one connection, others have their own; every connection is up first.
  constexpr int kShared = 5;
  constexpr int kOwn = 5;
  constexpr int kCalls = kShared + kOwn;
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < 1 + kOwn; ++i) {
    channels.push_back(mesh.channel());
    ASSERT_TRUE(connect_now(*channels.back())) << "channel " << i << " never connected";
  }
  auto shared = skiff::testing::TestService::NewStub(channels[0]);
  std::vector<std::unique_ptr<skiff::testing::TestService::Stub>> own;
  for (int i = 0; i < kOwn; ++i) {
    own.push_back(skiff::testing::TestService::NewStub(channels[1 + i]));
  }

  std::vector<grpc::Status> statuses(kCalls);
  std::vector<std::thread> threads;
  for (int i = 0; i < kCalls; ++i) {
    auto* stub = i < kShared ? shared.get() : own[i - kShared].get();
    threads.emplace_back([stub, &statuses, i] {
      Request req;
      req.set_delay_ms(500);
      req.set_payload("in-flight-" + std::to_string(i));
      Response resp;
      grpc::ClientContext ctx;
      ctx.set_deadline(in(Millis(30'000)));
      statuses[i] = stub->Unary(&ctx, req, &resp);
      if (statuses[i].ok() && resp.payload() != req.payload()) {
        statuses[i] = grpc::Status(StatusCode::DATA_LOSS, "wrong payload: " + resp.payload());
      }
    });
  }
  // Every call has reached the upstream (and is sleeping there) before the signal.
  const bool all_started = mesh.upstream().wait_for_calls(kCalls, Millis(10'000));
  const auto signalled = Clock::now();
  ExitStatus exit = mesh.proxy().terminate(Millis(20'000));
  const auto exited_after = std::chrono::duration<double>(Clock::now() - signalled);
  for (auto& t : threads) t.join();
  std::cout << "[ info ] skiff exited " << exited_after.count() << " s after SIGTERM ("
            << exit.to_string() << ")" << std::endl;

  for (int i = 0; i < kCalls; ++i) EXPECT_TRUE(is_ok(statuses[i])) << "call " << i;
  ASSERT_TRUE(all_started) << "only " << mesh.upstream().calls() << " calls reached the upstream";
  EXPECT_TRUE(exit.exited()) << exit.to_string();
  EXPECT_EQ(exit.code(), 0) << exit.to_string();
}

// The readiness line means signals are handled: SIGTERM at once is a clean, quick exit 0.
TEST(Lifecycle, SigtermRightAfterReady_Exit0) {
  for (int i = 0; i < 5; ++i) {
    TestMesh mesh;
    mesh.server().skiff();
    const auto start = Clock::now();
    ExitStatus exit = mesh.proxy().terminate(Millis(10'000));
    EXPECT_EQ(exit.code(), 0) << "attempt " << i << ": " << exit.to_string();
    EXPECT_LT(Clock::now() - start, Millis(5'000)) << "idle skiff should not wait out the drain";
  }
}

// skiff does not reload its config: SIGHUP (whose default action would kill it) is logged and
// changes nothing; a call in flight completes and a SIGTERM still drains to exit 0.
TEST(Lifecycle, SighupIsLoggedAndServingGoesOn) {
  TestMesh mesh;
  mesh.server().skiff();
  auto stub = mesh.client();
  grpc::Status status;
  std::thread call([&] {
    Request req;
    req.set_delay_ms(1000);
    req.set_payload("through a SIGHUP");
    Response resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(in(Millis(30'000)));
    status = stub->Unary(&ctx, req, &resp);
    if (status.ok() && resp.payload() != req.payload()) {
      status = grpc::Status(StatusCode::DATA_LOSS, "wrong payload: " + resp.payload());
    }
  });
  const bool started = mesh.upstream().wait_for_calls(1, Millis(10'000));
  ::kill(mesh.proxy().pid(), SIGHUP);
  const bool logged = mesh.proxy().process().wait_for_stderr(
      [](const std::string& err) { return err.find("received SIGHUP") != std::string::npos; },
      Millis(10'000));
  call.join();
  ASSERT_TRUE(started) << "the call never reached the upstream";
  EXPECT_TRUE(logged) << mesh.proxy().process().err();
  EXPECT_TRUE(is_ok(status)) << it::describe(status);
  EXPECT_FALSE(mesh.proxy().process().wait_exit(Millis(0)).has_value()) << "SIGHUP ended skiff";
  ExitStatus exit = mesh.proxy().terminate(Millis(10'000));
  EXPECT_EQ(exit.code(), 0) << exit.to_string();
}

// Clients keep calling while skiff drains: a call skiff accepted must complete OK; a call it
// did not accept (sent after the GOAWAY, or after the listener closed) must be refused with
// UNAVAILABLE. Nothing else, e.g. CANCELLED from a stream cut mid-call, is acceptable.
TEST(Lifecycle, Outbound_SigtermUnderLoad_CallsEndOkOrUnavailable) {
  TestMesh mesh;
  mesh.server().skiff();
  constexpr int kClients = 4;
  std::vector<std::unique_ptr<skiff::testing::TestService::Stub>> stubs;
  for (int i = 0; i < kClients; ++i) {
    auto channel = mesh.channel();
    ASSERT_TRUE(connect_now(*channel)) << "client " << i << " never connected";
    stubs.push_back(skiff::testing::TestService::NewStub(channel));
  }
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0};
  std::atomic<int> unavailable{0};
  std::mutex mu;
  std::vector<std::string> other;
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      // Keep calling until skiff is gone (or refuses twice in a row), then stop.
      int refused_in_a_row = 0;
      while (!stop.load() && refused_in_a_row < 2) {
        Request req;
        req.set_payload("load");
        req.set_delay_ms(c % 2 == 0 ? 0 : 20);
        Response resp;
        grpc::ClientContext ctx;
        ctx.set_deadline(in(Millis(20'000)));
        grpc::Status s = stubs[c]->Unary(&ctx, req, &resp);
        if (s.ok()) {
          ok.fetch_add(1);
          refused_in_a_row = 0;
        } else if (s.error_code() == StatusCode::UNAVAILABLE) {
          unavailable.fetch_add(1);
          ++refused_in_a_row;
        } else {
          std::lock_guard lock(mu);
          other.push_back(describe(s));
          refused_in_a_row = 0;
        }
      }
    });
  }
  const bool loaded = mesh.upstream().wait_for_calls(200, Millis(20'000));
  ExitStatus exit = mesh.proxy().terminate(Millis(20'000));
  // Once skiff has exited, every client's next call is refused: they all stop on their own.
  for (auto& t : threads) t.join();
  stop.store(true);
  std::cout << "[ info ] under load: " << ok.load() << " OK, " << unavailable.load()
            << " UNAVAILABLE, " << other.size() << " other; skiff " << exit.to_string()
            << std::endl;
  EXPECT_TRUE(loaded);
  for (const auto& o : other) ADD_FAILURE() << "a call during the drain ended with " << o;
  // Every call that reached the upstream was accepted by skiff, so it must have completed.
  EXPECT_EQ(ok.load(), mesh.upstream().calls())
      << "skiff cut calls it had already forwarded (the client saw UNAVAILABLE)";
  EXPECT_EQ(exit.code(), 0) << exit.to_string();
}

// A valid config with two holes. The tests rely on its layout: drain_timeout is on line 2,
// the route's cluster on line 8.
std::string config_text(const std::string& drain_timeout, const std::string& cluster) {
  std::string text = R"(workers: 1
drain_timeout: @DRAIN@
listeners:
  - name: outbound
    address: 127.0.0.1:0
    routes:
      - match: {}
        cluster: @CLUSTER@
clusters:
  - name: backend
    endpoints: [ "127.0.0.1:1" ]
)";
  text.replace(text.find("@DRAIN@"), 7, drain_timeout);
  text.replace(text.find("@CLUSTER@"), 9, cluster);
  return text;
}

// "file:line:col: message" for |path|; |line| < 0 accepts any line.
::testing::AssertionResult has_position(const std::string& err, const std::string& path, int line) {
  const std::string line_re = line < 0 ? "\\d+" : std::to_string(line);
  std::string escaped = std::regex_replace(path, std::regex(R"([.^$|()\[\]{}*+?\\])"), "\\$&");
  if (std::regex_search(err, std::regex(escaped + ":" + line_re + ":\\d+: \\S"))) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "no \"" << path << ":" << (line < 0 ? "N" : line_re) << ":COL: message\" on stderr:\n"
         << err;
}

TEST(Config, BadDuration_Exit2WithPosition) {
  TempDir dir;
  const std::string path = dir.write("bad.yaml", config_text("5 parsecs", "backend"));
  for (bool check_only : {false, true}) {
    std::vector<std::string> args{"--config", path};
    if (check_only) args.push_back("--check-config");
    RunResult r = run_skiff(args);
    EXPECT_EQ(r.status.code(), 2) << r.status.to_string()
                                  << (check_only ? " (--check-config)" : "");
    EXPECT_TRUE(has_position(r.err, path, 2)) << (check_only ? "(--check-config)" : "");
    EXPECT_EQ(r.err.find("listening on"), std::string::npos) << r.err;
  }
}

TEST(Config, UnknownCluster_Exit2WithPosition) {
  TempDir dir;
  const std::string path = dir.write("bad.yaml", config_text("5s", "nowhere"));
  RunResult r = run_skiff({"--config", path});
  EXPECT_EQ(r.status.code(), 2) << r.status.to_string();
  EXPECT_TRUE(has_position(r.err, path, -1));
  EXPECT_NE(r.err.find("nowhere"), std::string::npos) << r.err;
}

TEST(Config, YamlSyntaxError_Exit2WithPosition) {
  TempDir dir;
  std::string text = config_text("5s", "backend");
  text.replace(text.find(" ]\n"), 3, "\n");  // unterminated flow sequence
  const std::string path = dir.write("bad.yaml", text);
  RunResult r = run_skiff({"--config", path, "--check-config"});
  EXPECT_EQ(r.status.code(), 2) << r.status.to_string();
  EXPECT_TRUE(has_position(r.err, path, -1));
}

TEST(Config, CheckConfigGood_Exit0) {
  TempDir dir;
  const std::string path = dir.write("good.yaml", config_text("5s", "backend"));
  RunResult r = run_skiff({"--config", path, "--check-config"});
  EXPECT_EQ(r.status.code(), 0) << r.status.to_string() << "\n" << r.err;
  EXPECT_EQ(r.err.find("listening on"), std::string::npos) << "--check-config must not serve";
}

// A second skiff on a port the first one serves exits 1 ("address in use") instead of quietly
// sharing it through SO_REUSEPORT and taking half of the connections.
TEST(Lifecycle, ListenerPortServedByAnotherSkiff_Exit1) {
  TestMesh mesh;
  mesh.server().skiff();
  TempDir dir;
  std::string text = config_text("1s", "backend");
  text.replace(text.find("127.0.0.1:0"), 11, mesh.proxy().address());
  RunResult r = run_skiff({"--config", dir.write("second.yaml", text)});
  EXPECT_EQ(r.status.code(), 1) << r.status.to_string() << "\n" << r.err;
  EXPECT_NE(r.err.find("listener \"outbound\": bind " + mesh.proxy().address() +
                       ": Address already in use"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find("listening on"), std::string::npos) << r.err;
  EXPECT_TRUE(mesh.proxy().process().running()) << "the first skiff was disturbed";
}

}  // namespace
}  // namespace skiff::it
