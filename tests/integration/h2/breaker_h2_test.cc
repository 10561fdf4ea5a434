// Client mistakes that skiff answers itself must not count as upstream failures: a malformed
// or zero grpc-timeout on a route with a circuit breaker leaves the breaker closed.
#include <gtest/gtest.h>

#include "h2_fixture.h"

namespace skiff::it::h2 {
namespace {

TEST(BreakerH2, ClientDeadlineMistakesDoNotOpenBreaker) {
  TestServer upstream;
  SkiffProcess skiff(
      "workers: 1\n"
      "listeners:\n"
      "  - name: outbound\n"
      "    address: 127.0.0.1:0\n"
      "    routes:\n"
      "      - match: { service: skiff.testing.TestService }\n"
      "        cluster: backend\n"
      "        circuit_breaker: { consecutive_failures: 2, open_for: 1h }\n"
      "clusters:\n"
      "  - name: backend\n"
      "    endpoints: [ \"" +
      upstream.address() + "\" ]\n");
  H2Client client(skiff.port());
  ASSERT_TRUE(client.connected()) << client.error();
  for (const char* timeout : {"abc", "0m", "-1S", "0n"}) {
    SCOPED_TRACE(timeout);
    StreamResult r = client.call(grpc_request_headers(kUnaryPath, {{"grpc-timeout", timeout}}),
                                 unary_request_body("x"));
    ASSERT_TRUE(r.grpc_status().has_value()) << r.describe();
    EXPECT_NE(*r.grpc_status(), 0) << r.describe();
  }
  // Four client mistakes, breaker threshold 2: the next valid call still goes through.
  StreamResult ok = client.call(grpc_request_headers(kUnaryPath), unary_request_body("y"));
  ASSERT_TRUE(ok.grpc_status().has_value()) << ok.describe();
  EXPECT_EQ(*ok.grpc_status(), 0) << ok.describe();
  EXPECT_EQ(upstream.calls("Unary"), 1);
}

}  // namespace
}  // namespace skiff::it::h2
