// The skiff process itself: graceful drain on SIGTERM, config errors and --check-config.
#include <gtest/gtest.h>

#include <iostream>
#include <regex>
#include <thread>

#include "harness.h"

namespace skiff::it {
namespace {

using grpc::StatusCode;
using skiff::testing::Request;
using skiff::testing::Response;
using Clock = std::chrono::steady_clock;

TEST(Lifecycle, Outbound_SigtermWithCallsInFlight_CallsCompleteAndExit0) {
  SkiffConfig cfg;
  cfg.drain_timeout = "10s";
  TestMesh mesh;
  mesh.server().skiff(cfg);

  // Some calls share one connection, others have their own.
  constexpr int kShared = 5;
  constexpr int kOwn = 5;
  constexpr int kCalls = kShared + kOwn;
  auto shared = skiff::testing::TestService::NewStub(mesh.channel());
  std::vector<std::unique_ptr<skiff::testing::TestService::Stub>> own;
  for (int i = 0; i < kOwn; ++i) own.push_back(mesh.client());

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

  ASSERT_TRUE(all_started) << "only " << mesh.upstream().calls() << " calls reached the upstream";
  for (int i = 0; i < kCalls; ++i) EXPECT_TRUE(is_ok(statuses[i])) << "call " << i;
  EXPECT_TRUE(exit.exited()) << exit.to_string();
  EXPECT_EQ(exit.code(), 0) << exit.to_string();
}

// A config that is valid except where |bad| says; the line numbers below rely on its layout.
std::string config_text(const std::string& drain_timeout, const std::string& cluster) {
  return "workers: 1\n"                                     // 1
         "drain_timeout: " + drain_timeout + "\n"           // 2
         "listeners:\n"                                     // 3
         "  - name: outbound\n"                             // 4
         "    address: 127.0.0.1:0\n"                       // 5
         "    routes:\n"                                    // 6
         "      - match: {}\n"                              // 7
         "        cluster: " + cluster + "\n"               // 8
         "clusters:\n"                                      // 9
         "  - name: backend\n"                              // 10
         "    endpoints: [ \"127.0.0.1:1\" ]\n";            // 11
}

// "file:line:col: message" for |path|; |line| < 0 accepts any line.
::testing::AssertionResult has_position(const std::string& err, const std::string& path,
                                        int line) {
  const std::string line_re = line < 0 ? "\\d+" : std::to_string(line);
  std::string escaped = std::regex_replace(path, std::regex(R"([.^$|()\[\]{}*+?\\])"), "\\$&");
  if (std::regex_search(err, std::regex(escaped + ":" + line_re + ":\\d+: \\S"))) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "no \"" << path << ":" << (line < 0 ? "N" : line_re)
                                       << ":COL: message\" on stderr:\n"
                                       << err;
}

TEST(Config, BadDuration_Exit2WithPosition) {
  TempDir dir;
  const std::string path = dir.write("bad.yaml", config_text("5 parsecs", "backend"));
  for (bool check_only : {false, true}) {
    std::vector<std::string> args{"--config", path};
    if (check_only) args.push_back("--check-config");
    RunResult r = run_skiff(args);
    EXPECT_EQ(r.status.code(), 2) << r.status.to_string() << (check_only ? " (--check-config)" : "");
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

}  // namespace
}  // namespace skiff::it
