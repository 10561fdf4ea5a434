// Load balancing through the real binary: two upstreams, one slow (or rate limiting, or
// failing). round_robin splits evenly; least_request and peak_ewma send most calls to the fast
// one; ejected endpoints get nothing under any policy; a retry avoids the endpoint it left.
// Each skiff runs one worker, so every call shares one per-worker view of the endpoints.
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace skiff::it {
namespace {

using grpc::StatusCode;
using skiff::testing::Request;
using skiff::testing::Response;
using Stub = skiff::testing::TestService::Stub;

constexpr Millis kCallDeadline(10'000);

// One worker; one catch-all route (with |route_keys|) to cluster "backend" = |a|, |b| with
// |cluster_keys| (indented cluster keys).
std::string config_for(const TestServer& a, const TestServer& b, const std::string& cluster_keys,
                       const std::string& route_keys = "") {
  return catch_all_config({&a, &b}, route_keys, cluster_keys);
}

grpc::Status unary(Stub& stub, const Request& req) { return unary_call(stub, req, kCallDeadline); }

// |n| calls, one at a time; returns how many were OK.
int sequential(Stub& stub, const Request& req, int n) {
  int ok = 0;
  for (int i = 0; i < n; ++i) ok += unary(stub, req).ok() ? 1 : 0;
  return ok;
}

// |n| calls shared by |threads| callers, each with one call in flight; returns how many were OK.
int concurrent(Stub& stub, const Request& req, int n, int threads) {
  std::atomic<int> left{n};
  std::atomic<int> ok{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < threads; ++t) {
    callers.emplace_back([&] {
      while (left.fetch_sub(1) > 0) {
        if (unary(stub, req).ok()) ok.fetch_add(1);
      }
    });
  }
  for (std::thread& c : callers) c.join();
  return ok.load();
}

// Calls each server started during |run|.
template <typename Run>
std::pair<int, int> tally(TestServer& a, TestServer& b, Run run) {
  const int a0 = a.calls("Unary");
  const int b0 = b.calls("Unary");
  run();
  return {a.calls("Unary") - a0, b.calls("Unary") - b0};
}

TEST(LoadBalancing, Outbound_RoundRobinSplitsEvenlyDespiteASlowEndpoint) {
  TestServer fast(0);
  TestServer slow(1);
  slow.set_unary_delay(Millis(20));
  SkiffProcess skiff(config_for(fast, slow, "    load_balancing: round_robin\n"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  auto [to_fast, to_slow] = tally(fast, slow, [&] { EXPECT_EQ(sequential(*stub, {}, 100), 100); });
  EXPECT_EQ(to_fast + to_slow, 100);
  EXPECT_GE(to_slow, 35) << "fast " << to_fast << ", slow " << to_slow;
  EXPECT_GE(to_fast, 35) << "fast " << to_fast << ", slow " << to_slow;
}

TEST(LoadBalancing, Outbound_PeakEwmaSendsMostCallsToTheFastEndpoint) {
  TestServer fast(0);
  TestServer slow(1);
  slow.set_unary_delay(Millis(50));
  SkiffProcess skiff(config_for(fast, slow, "    load_balancing: peak_ewma\n"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  ASSERT_EQ(sequential(*stub, {}, 20), 20);  // warm-up: both endpoints get an estimate
  auto [to_fast, to_slow] = tally(fast, slow, [&] { EXPECT_EQ(sequential(*stub, {}, 200), 200); });
  EXPECT_EQ(to_fast + to_slow, 200);
  EXPECT_GT(to_fast, 160) << "fast " << to_fast << ", slow " << to_slow;
}

TEST(LoadBalancing, Outbound_LeastRequestSendsMostConcurrentCallsToTheFastEndpoint) {
  TestServer fast(0);
  TestServer slow(1);
  slow.set_unary_delay(Millis(200));
  SkiffProcess skiff(config_for(fast, slow, "    load_balancing: least_request\n"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  ASSERT_EQ(concurrent(*stub, {}, 20, 8), 20);  // warm-up: connections to both endpoints
  // The slow endpoint piles up calls in flight; P2C sends new ones to the one with fewer.
  auto [to_fast, to_slow] =
      tally(fast, slow, [&] { EXPECT_EQ(concurrent(*stub, {}, 200, 8), 200); });
  EXPECT_EQ(to_fast + to_slow, 200);
  EXPECT_GT(to_fast, 160) << "fast " << to_fast << ", slow " << to_slow;
}

// Server 0 answers RESOURCE_EXHAUSTED at once; server 1 answers OK after 20 ms. Peak EWMA
// counts a RESOURCE_EXHAUSTED reply as resource_exhausted_penalty, so the fast rejections do not
// attract the traffic; with the penalty off they do.
TEST(LoadBalancing, Outbound_PeakEwmaPenalisesFastResourceExhausted) {
  TestServer limited(0);
  TestServer ok(1);
  ok.set_unary_delay(Millis(20));
  Request req;
  req.set_respond_status(static_cast<int>(StatusCode::RESOURCE_EXHAUSTED));
  req.set_fail_on_server(1);  // server 0 only

  {
    // default_rtt 1ms: an endpoint not tried yet looks fastest, so both get tried first.
    SkiffProcess skiff(config_for(limited, ok,
                                  "    load_balancing: peak_ewma\n"
                                  "    peak_ewma: { default_rtt: 1ms }\n"));
    auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
    sequential(*stub, req, 10);  // warm-up
    int answered_ok = 0;
    auto [to_limited, to_ok] =
        tally(limited, ok, [&] { answered_ok = sequential(*stub, req, 100); });
    EXPECT_EQ(to_limited + to_ok, 100);
    EXPECT_EQ(answered_ok, to_ok);
    EXPECT_GT(to_ok, 80) << "rate limited " << to_limited << ", ok " << to_ok;
  }
  {
    SkiffProcess skiff(config_for(limited, ok,
                                  "    load_balancing: peak_ewma\n"
                                  "    peak_ewma: { default_rtt: 1ms, "
                                  "resource_exhausted_penalty: 0ms }\n"));
    auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
    sequential(*stub, req, 10);
    auto [to_limited, to_ok] = tally(limited, ok, [&] { sequential(*stub, req, 100); });
    EXPECT_EQ(to_limited + to_ok, 100);
    EXPECT_GT(to_limited, 60) << "without the penalty: rate limited " << to_limited << ", ok "
                              << to_ok;
  }
}

// Attempts abandoned every way (per-try timeout then retry, the call's deadline, the caller's
// cancel) still leave the active-request counts balanced: once the slow endpoint is fast again,
// least_request splits sequential calls between both. A leaked count would starve it.
TEST(LoadBalancing, Outbound_LeastRequestCountsStayBalancedWhenAttemptsAreAbandoned) {
  TestServer a(0);
  TestServer b(1);
  a.set_unary_delay(Millis(300));
  SkiffProcess skiff(config_for(a, b, "    load_balancing: least_request\n",
                                "        retry: { max_attempts: 2, on: [per_try_timeout], "
                                "per_try_timeout: 30ms }\n"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  // Per-try timeouts on the slow endpoint, retried on the other one (until the retry budget
  // runs out: then the call ends with the timed-out attempt).
  concurrent(*stub, {}, 40, 4);
  // Deadlines (skiff's and the caller's) that end calls while their attempt is in flight.
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&] {
      for (int i = 0; i < 10; ++i) {
        grpc::ClientContext ctx;
        ctx.set_deadline(in(Millis(20)));
        Response resp;
        stub->Unary(&ctx, {}, &resp);
      }
    });
  }
  for (std::thread& c : callers) c.join();
  EXPECT_GT(a.calls("Unary"), 0);

  a.set_unary_delay(Millis(0));
  // Let the slow endpoint's abandoned handlers finish (they stop at the cancel).
  ASSERT_TRUE(a.wait_for_finished(a.calls("Unary"), Millis(5'000)));
  auto [to_a, to_b] = tally(a, b, [&] { EXPECT_EQ(sequential(*stub, {}, 100), 100); });
  EXPECT_GE(to_a, 25) << "a " << to_a << ", b " << to_b;
  EXPECT_GE(to_b, 25) << "a " << to_a << ", b " << to_b;
}

class LoadBalancingEjection : public ::testing::TestWithParam<std::string> {};

// Server 0 fails every call (UNAVAILABLE, fast: peak EWMA would favour it) until outlier
// detection ejects it; then it gets no traffic under either P2C policy.
TEST_P(LoadBalancingEjection, Outbound_EjectedEndpointGetsNoTraffic) {
  TestServer bad(0);
  TestServer good(1);
  good.set_unary_delay(Millis(5));
  SkiffProcess skiff(config_for(
      bad, good,
      "    load_balancing: " + GetParam() + "\n" +
          // An endpoint not tried yet must look fastest, or the bad one might never be picked.
          (GetParam() == "peak_ewma" ? "    peak_ewma: { default_rtt: 1ms }\n" : "") +
          "    outlier_detection: { consecutive_failures: 2, base_ejection_time: 30s,\n"
          "                         max_ejection_percent: 50 }\n"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  Request req;
  req.set_respond_status(static_cast<int>(StatusCode::UNAVAILABLE));
  req.set_fail_on_server(1);

  int failures = 0;
  for (int i = 0; i < 40 && failures < 2; ++i) {
    if (!unary(*stub, req).ok()) ++failures;
  }
  ASSERT_EQ(failures, 2) << "the failing endpoint was never picked twice";
  const int bad_calls = bad.calls("Unary");
  EXPECT_EQ(bad_calls, 2);

  EXPECT_EQ(sequential(*stub, req, 30), 30);
  EXPECT_EQ(concurrent(*stub, req, 30, 4), 30);
  EXPECT_EQ(bad.calls("Unary"), bad_calls);
}

INSTANTIATE_TEST_SUITE_P(Policies, LoadBalancingEjection,
                         ::testing::Values("least_request", "peak_ewma"),
                         [](const auto& info) { return info.param; });

// A retry goes to the other endpoint: with least_request both endpoints are idle between
// sequential calls, so without avoiding the previous endpoint half the retries would go back
// to the failing one.
TEST(LoadBalancing, Outbound_RetryAvoidsThePreviousEndpoint) {
  TestServer bad(0);
  TestServer good(1);
  SkiffProcess skiff(config_for(
      bad, good, "    load_balancing: least_request\n",
      "        retry: { max_attempts: 2, on: [unavailable], backoff: { initial: 1ms, max: 5ms } "
      "}\n"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  Request req;
  req.set_respond_status(static_cast<int>(StatusCode::UNAVAILABLE));
  req.set_fail_on_server(1);

  // Four first attempts on the failing endpoint stay within the retry budget (gRFC A6 throttling
  // allows about five failures).
  int calls = 0;
  int ok = 0;
  for (; calls < 60 && bad.calls("Unary") < 4; ++calls) ok += unary(*stub, req).ok() ? 1 : 0;
  ASSERT_EQ(bad.calls("Unary"), 4);
  for (const CallRecord& r : bad.records()) {
    EXPECT_EQ(r.metadata.count("grpc-previous-rpc-attempts"), 0u) << "a retry went back";
  }
  // Every call ends OK on the good endpoint, retried or not.
  EXPECT_EQ(ok, calls);
  EXPECT_EQ(good.calls("Unary"), calls);
}

}  // namespace
}  // namespace skiff::it
