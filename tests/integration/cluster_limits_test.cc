// Cluster thresholds (cluster `circuit_breaker`) through the real binary: max_requests rejects
// the call over the limit before it reaches the upstream; max_connections refuses to dial a
// second connection; max_retries lets one retry be in flight and answers the others as without
// retry. max_pending_requests is tested in h2/cluster_limits_pending_test.cc, against a raw
// upstream that allows one stream per connection and holds its answers.
#include <gtest/gtest.h>

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

// One worker; one catch-all route (with |route_keys|) to cluster "backend" = |endpoints| with
// |cluster_keys| (indented cluster keys).
std::string config_for(const std::vector<const TestServer*>& endpoints,
                       const std::string& cluster_keys, const std::string& route_keys = "") {
  return catch_all_config(endpoints, route_keys, cluster_keys);
}

grpc::Status unary(Stub& stub, const Request& req) { return unary_call(stub, req, kCallDeadline); }

TEST(ClusterLimits, MaxRequestsRejectsTheCallOverTheLimit) {
  TestServer server;
  SkiffProcess skiff(config_for({&server}, "    circuit_breaker: { max_requests: 2 }\n"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  ASSERT_TRUE(unary(*stub, Request()).ok());  // connection up

  Request slow;
  slow.set_delay_ms(1500);
  std::vector<grpc::Status> slow_status(2);
  std::vector<std::thread> callers;
  for (int i = 0; i < 2; ++i) {
    callers.emplace_back([&, i] { slow_status[i] = unary(*stub, slow); });
  }
  ASSERT_TRUE(server.wait_for_calls(3, Millis(5'000)));

  grpc::Status rejected = unary(*stub, Request());
  EXPECT_EQ(rejected.error_code(), StatusCode::UNAVAILABLE);
  EXPECT_EQ(rejected.error_message(),
            "cluster \"backend\" circuit open: max_requests (2) active requests");
  EXPECT_EQ(server.calls("Unary"), 3);  // the rejected call never reached the upstream

  for (std::thread& c : callers) c.join();
  EXPECT_TRUE(slow_status[0].ok()) << slow_status[0].error_message();
  EXPECT_TRUE(slow_status[1].ok()) << slow_status[1].error_message();
  // The slow calls returned their units.
  EXPECT_TRUE(unary(*stub, Request()).ok());
  EXPECT_EQ(server.calls("Unary"), 4);
}

TEST(ClusterLimits, MaxConnectionsRefusesToDialAnotherEndpoint) {
  TestServer a;
  TestServer b;
  SkiffProcess skiff(config_for({&a, &b}, "    circuit_breaker: { max_connections: 1 }\n"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  // Round robin: the first call connects to one endpoint; the second picks the other, which
  // has no connection and may not get one.
  grpc::Status first = unary(*stub, Request());
  grpc::Status second = unary(*stub, Request());
  EXPECT_TRUE(first.ok()) << first.error_message();
  EXPECT_EQ(second.error_code(), StatusCode::UNAVAILABLE);
  EXPECT_EQ(second.error_message(), "cluster \"backend\" circuit open: max_connections (1)");
  EXPECT_EQ(a.calls("Unary") + b.calls("Unary"), 1);
  // Back on the connected endpoint: served over its connection.
  EXPECT_TRUE(unary(*stub, Request()).ok());
}

// Three calls whose every attempt fails UNAVAILABLE after 1s: all three fail their first
// attempt at about the same moment. With max_retries: 1, the first to fail retries (holding
// the unit through its second attempt); the other two are answered without a retry.
TEST(ClusterLimits, MaxRetriesCapsRetriesInFlight) {
  TestServer server;
  SkiffProcess skiff(config_for(
      {&server}, "    circuit_breaker: { max_retries: 1 }\n",
      "        retry: { max_attempts: 2, on: [unavailable], backoff: { initial: 1ms, max: 1ms } "
      "}\n"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  ASSERT_TRUE(unary(*stub, Request()).ok());  // connection up

  Request failing;
  failing.set_delay_ms(1000);
  failing.set_respond_status(static_cast<int>(StatusCode::UNAVAILABLE));
  failing.set_respond_message("try again");
  std::vector<grpc::Status> status(3);
  std::vector<std::thread> callers;
  for (int i = 0; i < 3; ++i) {
    callers.emplace_back([&, i] { status[i] = unary(*stub, failing); });
  }
  for (std::thread& c : callers) c.join();
  for (const grpc::Status& s : status) {
    EXPECT_EQ(s.error_code(), StatusCode::UNAVAILABLE);
    EXPECT_EQ(s.error_message(), "try again");
  }
  // 1 + 3 first attempts + 1 retry (without the limit: 1 + 6).
  EXPECT_EQ(server.calls("Unary"), 5);
}

}  // namespace
}  // namespace skiff::it
