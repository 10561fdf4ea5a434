// Cluster threshold max_pending_requests through the real skiff binary, made deterministic by a
// RefusingUpstream that allows one stream per connection (SETTINGS_MAX_CONCURRENT_STREAMS 1) and
// holds its answers until the test releases them: with one worker and one connection per
// endpoint, the first call occupies the only stream slot, the second waits in the pool's queue
// (the one pending unit), and the third overflows max_pending_requests: it is answered
// UNAVAILABLE without reaching the upstream, marked `skiff-rejected: overflow`, and not retried
// (nor hedged) although the route retries (hedges) UNAVAILABLE: load shedding. Released, the
// first two succeed. The shed call is no verdict on the method either: the route's breaker,
// which one failure opens, lets a fourth call through.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "h2_fixture.h"
#include "metrics_scrape.h"
#include "refusing_upstream.h"

namespace skiff::it::h2 {
namespace {

using Clock = std::chrono::steady_clock;

// Calls 1 and 2 stay held while the test polls /metrics: generous on a loaded machine.
constexpr Millis kCallDeadline{20'000};
constexpr Millis kObserveTimeout{10'000};

// |policy|: the route's retry or hedging line.
std::string config(const RefusingUpstream& upstream, const std::string& policy) {
  return "workers: 1\n"
         "drain_timeout: 1s\n"
         "admin:\n"
         "  address: 127.0.0.1:0\n"
         "listeners:\n"
         "  - name: outbound\n"
         "    address: 127.0.0.1:0\n"
         "    routes:\n"
         "      - match: { service: skiff.testing.TestService }\n"
         "        cluster: backend\n"
         "        " +
         policy +
         "\n"
         "        circuit_breaker: { consecutive_failures: 1, open_for: 1m }\n"
         "clusters:\n"
         "  - name: backend\n"
         "    endpoints: [ \"" +
         upstream.address() +
         "\" ]\n"
         "    max_connections_per_endpoint: 1\n"
         "    circuit_breaker: { max_pending_requests: 1 }\n";
}

std::string response_message() {
  skiff::testing::Response resp;
  resp.set_payload("from the refusing upstream");
  return resp.SerializeAsString();
}

struct CallResult {
  grpc::Status status;
  skiff::testing::Response response;
};

CallResult unary(skiff::testing::TestService::Stub& stub, const std::string& payload) {
  CallResult r;
  skiff::testing::Request req;
  req.set_payload(payload);
  grpc::ClientContext ctx;
  ctx.set_deadline(in(kCallDeadline));
  r.status = stub.Unary(&ctx, req, &r.response);
  return r;
}

// skiff_cluster_active{cluster="backend",resource=|resource|} in |metrics| is |value|.
bool active_is(const std::string& metrics, const std::string& resource, double value) {
  return metric_value(metrics, "skiff_cluster_active",
                      {"cluster=\"backend\"", "resource=\"" + resource + "\""}) == value;
}

// Background calls, always released and joined (even when an assertion returns early).
class HeldCalls {
 public:
  explicit HeldCalls(RefusingUpstream& upstream) : upstream_(upstream) {}
  ~HeldCalls() { join(); }
  void start(skiff::testing::TestService::Stub& stub, CallResult& out, std::string payload) {
    threads_.emplace_back([&stub, &out, payload] { out = unary(stub, payload); });
  }
  void join() {
    upstream_.release_answers();
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

 private:
  RefusingUpstream& upstream_;
  std::vector<std::thread> threads_;
};

class ClusterPending : public ::testing::TestWithParam<std::string> {};

INSTANTIATE_TEST_SUITE_P(RetryOrHedging, ClusterPending,
                         ::testing::Values("retry: { max_attempts: 3, on: [unavailable] }",
                                           "hedging: { max_attempts: 2, hedging_delay: 1m, "
                                           "non_fatal_codes: [unavailable] }"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param.starts_with("retry") ? "Retry" : "Hedging";
                         });

TEST_P(ClusterPending, ThirdCallOverMaxPendingRequestsUnavailableHeldCallsSucceed) {
  RefusingUpstreamOptions options;
  options.max_concurrent_streams = 1;
  options.hold_answers = true;
  options.response_message = response_message();
  RefusingUpstream upstream(options);
  ASSERT_NE(upstream.port(), 0) << upstream.error();
  SkiffOptions skiff_options;
  skiff_options.listeners = {"outbound", "admin"};
  SkiffProcess skiff(config(upstream, GetParam()), skiff_options);
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));

  CallResult first;
  CallResult second;
  HeldCalls calls(upstream);

  // 1: takes the only stream slot of the only connection; the upstream holds its answer. Wait
  // until skiff has also acknowledged the upstream's SETTINGS (MAX_CONCURRENT_STREAMS 1), so its
  // session is known to be full before the second call arrives.
  calls.start(*stub, first, "first");
  ASSERT_TRUE(upstream.wait_until(
      [](const RefusingUpstreamStats& s) { return s.seen >= 1 && s.settings_acks >= 1; },
      kObserveTimeout))
      << upstream.describe();

  // 2: no free stream slot and no second connection allowed: it waits as the one pending request.
  calls.start(*stub, second, "second");
  std::string metrics;
  ASSERT_TRUE(metrics_until(
      skiff, [](const std::string& m) { return active_is(m, "pending_requests", 1); }, metrics))
      << "pending_requests never reached 1:\n"
      << metrics << "\n"
      << upstream.describe();

  // 3: over max_pending_requests: answered at once, never forwarded, never retried.
  H2Client raw(skiff.port());
  StreamResult third = raw.call(grpc_request_headers(kUnaryPath), unary_request_body("third"));
  ASSERT_TRUE(third.closed) << raw.error();
  EXPECT_TRUE(third.trailers_only()) << third.describe();
  EXPECT_EQ(third.grpc_status(), 14) << third.describe();
  EXPECT_EQ(third.trailer("grpc-message"),
            "cluster \"backend\" circuit open: max_pending_requests (1)");
  EXPECT_EQ(third.trailer("skiff-rejected"), "overflow") << third.describe();
  EXPECT_EQ(upstream.stats().seen, 1) << upstream.describe();
  ASSERT_TRUE(metrics_until(
      skiff,
      [](const std::string& m) {
        // Every skiff_retries_total series is 0 (and the scrape has the call's series).
        std::istringstream lines(m);
        bool seen = false;
        for (std::string line; std::getline(lines, line);) {
          if (line.rfind("skiff_retries_total{", 0) != 0) continue;
          seen = true;
          if (line.substr(line.rfind(' ') + 1) != "0") return false;
        }
        return seen;
      },
      metrics))
      << "the overflow was retried:\n"
      << metrics;

  // Released: the first is answered, its slot goes to the second, answered too.
  calls.join();
  ASSERT_TRUE(is_ok(first.status)) << it::describe(first.status) << "\n" << upstream.describe();
  EXPECT_EQ(first.response.payload(), "from the refusing upstream");
  ASSERT_TRUE(is_ok(second.status)) << it::describe(second.status) << "\n" << upstream.describe();
  EXPECT_EQ(second.response.payload(), "from the refusing upstream");

  // 4: the breaker (open after one failure) was given no verdict on the shed call.
  const CallResult fourth = unary(*stub, "fourth");
  EXPECT_TRUE(is_ok(fourth.status)) << it::describe(fourth.status);

  RefusingUpstreamStats st = upstream.stats();
  EXPECT_EQ(st.connections, 1) << upstream.describe();
  EXPECT_EQ(st.seen, 3) << upstream.describe();
  EXPECT_EQ(st.answered, 3) << upstream.describe();
  for (const UpstreamStream& s : upstream.streams()) {
    EXPECT_EQ(s.body.find("third"), std::string::npos) << "the third call reached the upstream";
  }

  // Every unit is back (a call's units are released as its downstream stream closes, which may
  // be just after the client saw its status).
  EXPECT_TRUE(metrics_until(
      skiff,
      [](const std::string& m) {
        return active_is(m, "pending_requests", 0) && active_is(m, "requests", 0);
      },
      metrics))
      << metrics;
}

}  // namespace
}  // namespace skiff::it::h2
