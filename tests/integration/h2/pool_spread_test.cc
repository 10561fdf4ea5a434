// How the cluster pool places calls on an endpoint's connections, through the real skiff binary
// in front of a RefusingUpstream that records which connection each stream came on and holds its
// answers until the test releases them (so the calls stay in flight).
//
// Under light load (fewer calls in flight than max_connections_per_endpoint) a call takes an
// idle connection, and when none is idle skiff dials one for the calls after it (this call
// shares the least busy connection meanwhile). At the limit calls share the first connection
// with a free stream slot. One call at a time never needs a second connection, a failed extra
// connection does not take the endpoint out of service, and an idle one is closed. A
// connection is replaced after max_requests_per_connection calls, and a peer that accepts TCP
// but never answers as an HTTP/2 server counts as a connect failure.
#include <gtest/gtest.h>

#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "h2_fixture.h"
#include "refusing_upstream.h"

namespace skiff::it::h2 {
namespace {

constexpr Millis kCallDeadline{20'000};
constexpr Millis kObserveTimeout{10'000};

std::string config(const RefusingUpstream& upstream, const std::string& cluster_keys = "") {
  return h2_test_config(upstream.address(), "    max_connections_per_endpoint: 3\n" + cluster_keys);
}

RefusingUpstreamOptions upstream_options(bool hold, int max_accepts = 0) {
  RefusingUpstreamOptions options;
  options.hold_answers = hold;
  options.max_accepts = max_accepts;
  skiff::testing::Response resp;
  resp.set_payload("pooled");
  options.response_message = resp.SerializeAsString();
  return options;
}

grpc::Status unary(skiff::testing::TestService::Stub& stub, const std::string& payload) {
  skiff::testing::Request req;
  req.set_payload(payload);
  skiff::testing::Response resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(in(kCallDeadline));
  return stub.Unary(&ctx, req, &resp);
}

// The upstream connection (accept order) the call with |payload| came on, or -1.
int connection_of(const RefusingUpstream& upstream, const std::string& payload) {
  for (const UpstreamStream& s : upstream.streams()) {
    if (s.body.find(payload) != std::string::npos) return s.connection;
  }
  return -1;
}

// Waits until the upstream has seen |streams| request streams and |acks| SETTINGS ACKs (each
// connection skiff brought up acknowledges the upstream's SETTINGS once).
bool seen(const RefusingUpstream& upstream, int streams, int acks = 0) {
  return upstream.wait_until(
      [streams, acks](const RefusingUpstreamStats& s) {
        return s.seen >= streams && s.settings_acks >= acks;
      },
      kObserveTimeout);
}

// Waits until |n| upstream connections have been closed.
bool closed(const RefusingUpstream& upstream, int n) {
  return upstream.wait_until([n](const RefusingUpstreamStats& s) { return s.closed >= n; },
                             kObserveTimeout);
}

// Calls in background threads; the answers are released and the threads joined on every exit.
class HeldCalls {
 public:
  HeldCalls(RefusingUpstream& upstream, skiff::testing::TestService::Stub& stub)
      : upstream_(upstream), stub_(stub) {}
  ~HeldCalls() { join(); }
  void start(const std::string& payload) {
    statuses_.emplace_back();
    grpc::Status* out = &statuses_.back();
    threads_.emplace_back([this, out, payload] { *out = unary(stub_, payload); });
  }
  const std::deque<grpc::Status>& join() {
    upstream_.release_answers();
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
    return statuses_;
  }

 private:
  RefusingUpstream& upstream_;
  skiff::testing::TestService::Stub& stub_;
  std::deque<grpc::Status> statuses_;  // a deque: each thread keeps a pointer to its own
  std::vector<std::thread> threads_;
};

TEST(ClusterPoolSpread, CallsInFlightTakeIdleConnectionsUpToTheLimitThenShare) {
  RefusingUpstream upstream(upstream_options(/*hold=*/true));
  ASSERT_NE(upstream.port(), 0) << upstream.error();
  SkiffProcess skiff(config(upstream));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  HeldCalls calls(upstream, *stub);
  // A: the first connection is dialled for it.
  calls.start("call-A");
  ASSERT_TRUE(seen(upstream, 1, 1)) << upstream.describe();
  // B: A's connection is busy and none is idle: B shares it while a second one is dialled.
  // Wait until skiff has that one up (it acknowledged the upstream's SETTINGS on it).
  calls.start("call-B");
  ASSERT_TRUE(seen(upstream, 2, 2)) << upstream.describe();
  // C: two calls in flight, three connections allowed: C takes the idle second connection.
  calls.start("call-C");
  ASSERT_TRUE(seen(upstream, 3, 2)) << upstream.describe();
  // D: three calls in flight, at the limit: D shares the first connection, nothing is dialled.
  calls.start("call-D");
  ASSERT_TRUE(seen(upstream, 4, 2)) << upstream.describe();

  EXPECT_EQ(connection_of(upstream, "call-A"), 0) << upstream.describe();
  EXPECT_EQ(connection_of(upstream, "call-B"), 0) << upstream.describe();
  EXPECT_EQ(connection_of(upstream, "call-C"), 1) << upstream.describe();
  EXPECT_EQ(connection_of(upstream, "call-D"), 0) << upstream.describe();

  for (const grpc::Status& status : calls.join()) {
    EXPECT_TRUE(is_ok(status)) << it::describe(status) << "\n" << upstream.describe();
  }
  const RefusingUpstreamStats st = upstream.stats();
  EXPECT_EQ(st.connections, 2) << upstream.describe();
  EXPECT_EQ(st.answered, 4) << upstream.describe();
}

// The upstream accepts one connection and then refuses connects. The connection skiff dials
// for the second call fails while the first connection serves: that must not back off the
// endpoint (its only one) or fail calls; they share the working connection.
TEST(ClusterPoolSpread, AFailedExtraConnectionLeavesTheEndpointServing) {
  RefusingUpstream upstream(upstream_options(/*hold=*/true, /*max_accepts=*/1));
  ASSERT_NE(upstream.port(), 0) << upstream.error();
  SkiffProcess skiff(config(upstream));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  HeldCalls calls(upstream, *stub);

  calls.start("call-A");
  ASSERT_TRUE(seen(upstream, 1)) << upstream.describe();
  // B shares A's connection; the one dialled beside it is refused.
  calls.start("call-B");
  const std::string refused = "cluster backend: " + upstream.address() + ": ";
  ASSERT_TRUE(skiff.process().wait_for_stderr(
      [&refused](const std::string& err) { return err.find(refused) != std::string::npos; },
      kObserveTimeout))
      << "skiff never reported the refused extra connection";
  // C comes right after the failure (within the endpoint's reconnect backoff, had it been
  // backed off): the endpoint is still eligible.
  calls.start("call-C");

  for (const grpc::Status& status : calls.join()) {
    EXPECT_TRUE(is_ok(status)) << it::describe(status) << "\n" << upstream.describe();
  }
  const RefusingUpstreamStats st = upstream.stats();
  EXPECT_EQ(st.connections, 1) << upstream.describe();
  EXPECT_EQ(st.answered, 3) << upstream.describe();
  EXPECT_TRUE(skiff.process().wait_for_stderr(
      [](const std::string& err) {
        return err.find("(an existing connection still serves)") != std::string::npos;
      },
      Millis(0)));
}

// A connection dialled for a burst that carries no call for idle_connection_timeout is closed;
// the endpoint's first connection stays and serves the next call without a new dial.
TEST(ClusterPoolSpread, AnIdleExtraConnectionIsClosedTheFirstStays) {
  RefusingUpstream upstream(upstream_options(/*hold=*/true));
  ASSERT_NE(upstream.port(), 0) << upstream.error();
  SkiffProcess skiff(config(upstream, "    idle_connection_timeout: 200ms\n"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  {
    HeldCalls calls(upstream, *stub);
    calls.start("call-A");
    ASSERT_TRUE(seen(upstream, 1, 1)) << upstream.describe();
    // B shares A's connection while a second one is dialled (and never used).
    calls.start("call-B");
    ASSERT_TRUE(seen(upstream, 2, 2)) << upstream.describe();
    for (const grpc::Status& status : calls.join()) {
      EXPECT_TRUE(is_ok(status)) << it::describe(status) << "\n" << upstream.describe();
    }
  }
  ASSERT_TRUE(closed(upstream, 1)) << "the idle second connection was never closed\n"
                                   << upstream.describe();

  const grpc::Status status = unary(*stub, "call-C");
  ASSERT_TRUE(is_ok(status)) << it::describe(status) << "\n" << upstream.describe();
  EXPECT_EQ(connection_of(upstream, "call-C"), 0) << upstream.describe();
  const RefusingUpstreamStats st = upstream.stats();
  EXPECT_EQ(st.connections, 2) << upstream.describe();
  EXPECT_EQ(st.closed, 1) << upstream.describe();
}

// max_requests_per_connection: 2 (and one connection per endpoint): every second call retires
// its connection, which closes once the call is done; the next call gets a new connection.
// Stream-id exhaustion (2^30 streams) takes the same path.
TEST(ClusterPoolSpread, MaxRequestsPerConnectionReplacesTheConnection) {
  RefusingUpstream upstream(upstream_options(/*hold=*/false));
  ASSERT_NE(upstream.port(), 0) << upstream.error();
  SkiffProcess skiff(
      h2_test_config(upstream.address(),
                     "    max_connections_per_endpoint: 1\n    max_requests_per_connection: 2\n"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  for (int i = 0; i < 5; ++i) {
    const grpc::Status status = unary(*stub, "call-" + std::to_string(i));
    ASSERT_TRUE(is_ok(status)) << it::describe(status) << "\n" << upstream.describe();
  }
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(connection_of(upstream, "call-" + std::to_string(i)), i / 2) << upstream.describe();
  }
  EXPECT_TRUE(closed(upstream, 2)) << "the two used-up connections were not closed\n"
                                   << upstream.describe();
  EXPECT_EQ(upstream.stats().connections, 3) << upstream.describe();
}

// A connection that takes no new calls (here: used up by max_requests_per_connection: 1) but
// still carries one does not count against max_connections_per_endpoint: 1. The next call gets
// a new connection at once instead of waiting for the first call to finish.
TEST(ClusterPoolSpread, AConnectionGoingAwayDoesNotHoldBackANewOne) {
  RefusingUpstream upstream(upstream_options(/*hold=*/true));
  ASSERT_NE(upstream.port(), 0) << upstream.error();
  SkiffProcess skiff(
      h2_test_config(upstream.address(),
                     "    max_connections_per_endpoint: 1\n    max_requests_per_connection: 1\n"));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  HeldCalls calls(upstream, *stub);
  calls.start("call-A");
  ASSERT_TRUE(seen(upstream, 1)) << upstream.describe();
  calls.start("call-B");
  ASSERT_TRUE(seen(upstream, 2)) << "the second call waited for the first connection's call\n"
                                 << upstream.describe();
  EXPECT_EQ(connection_of(upstream, "call-A"), 0) << upstream.describe();
  EXPECT_EQ(connection_of(upstream, "call-B"), 1) << upstream.describe();
  for (const grpc::Status& status : calls.join()) {
    EXPECT_TRUE(is_ok(status)) << it::describe(status) << "\n" << upstream.describe();
  }
  EXPECT_TRUE(closed(upstream, 2)) << upstream.describe();
}

// The endpoint accepts TCP and closes at once, before any SETTINGS: each such connection is a
// connect failure, so the endpoint backs off (100 ms, then doubling) and calls in between fail
// fast without a dial. Before, every call dialled again.
TEST(ClusterPoolConnect, APeerThatClosesBeforeSettingsIsBackedOff) {
  RefusingUpstreamOptions options = upstream_options(/*hold=*/false);
  options.close_on_accept = true;
  RefusingUpstream upstream(options);
  ASSERT_NE(upstream.port(), 0) << upstream.error();
  SkiffProcess skiff(config(upstream));
  auto channel = make_channel(skiff.address());
  ASSERT_TRUE(connect_now(*channel));  // the calls below must fail at skiff, not at the client
  auto stub = skiff::testing::TestService::NewStub(channel);
  constexpr int kCalls = 10;
  for (int i = 0; i < kCalls; ++i) {
    EXPECT_TRUE(has_code(unary(*stub, "call-" + std::to_string(i)), grpc::StatusCode::UNAVAILABLE));
  }
  // Ten calls in a row outrun the backoff (100 + 200 + 400 + ... ms) many times over.
  EXPECT_LE(upstream.stats().connections, 4) << upstream.describe();
  const std::string warning = "cluster backend: " + upstream.address() + ": ";
  EXPECT_TRUE(skiff.process().wait_for_stderr(
      [&warning](const std::string& err) { return err.find(warning) != std::string::npos; },
      Millis(0)))
      << "no warning about the failed connection";
}

TEST(ClusterPoolSpread, OneCallAtATimeKeepsToOneConnection) {
  RefusingUpstream upstream(upstream_options(/*hold=*/false));
  ASSERT_NE(upstream.port(), 0) << upstream.error();
  SkiffProcess skiff(config(upstream));
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  for (int i = 0; i < 5; ++i) {
    const grpc::Status status = unary(*stub, "call-" + std::to_string(i));
    ASSERT_TRUE(is_ok(status)) << it::describe(status) << "\n" << upstream.describe();
  }
  const RefusingUpstreamStats st = upstream.stats();
  EXPECT_EQ(st.connections, 1) << upstream.describe();
  EXPECT_EQ(st.answered, 5) << upstream.describe();
}

}  // namespace
}  // namespace skiff::it::h2
