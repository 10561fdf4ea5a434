// Tests for the route policy keys: rate_limit, circuit_breaker and the message size limits parse
// to the expected values, and bad values are rejected with an exact "file:line:col: message".
#include <gtest/gtest.h>

#include <string>

#include "config/config.h"
#include "route_yaml.h"

namespace skiff::config {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(RoutePolicyConfig, ParsesEveryKey) {
  const std::string yaml = R"(listeners:
  - name: outbound
    address: 127.0.0.1:15001
    routes:
      - match: { service: user.UserService, method: GetUser }
        cluster: users
        rate_limit: { rps: 0.5, burst: 20, status: unavailable }
        circuit_breaker:
          consecutive_failures: 3
          open_for: 1500ms
          half_open_probes: 2
        max_request_message_bytes: 1048576
        max_response_message_bytes: 2147483647
      - match: { service: user.UserService }
        cluster: users
        rate_limit: { rps: 1e3 }
        circuit_breaker: {}
      - match: {}
        cluster: users
clusters:
  - name: users
    endpoints: [ "127.0.0.1:50051" ]
)";
  auto loaded = load_string(yaml, "policy.yaml");
  ASSERT_TRUE(loaded) << loaded.error().to_string();
  const std::vector<Route>& routes = loaded->listeners.at(0).routes;
  ASSERT_EQ(routes.size(), 3u);

  const Route& full = routes[0];
  ASSERT_TRUE(full.rate_limit);
  EXPECT_DOUBLE_EQ(full.rate_limit->rps, 0.5);
  EXPECT_EQ(full.rate_limit->burst, 20u);
  EXPECT_TRUE(full.rate_limit->unavailable);
  EXPECT_EQ(full.rate_limit->pos.line, 7);
  EXPECT_EQ(full.rate_limit->pos.col, 21);
  ASSERT_TRUE(full.circuit_breaker);
  EXPECT_EQ(full.circuit_breaker->consecutive_failures, 3u);
  EXPECT_EQ(full.circuit_breaker->open_for, milliseconds(1500));
  EXPECT_EQ(full.circuit_breaker->half_open_probes, 2u);
  EXPECT_EQ(full.circuit_breaker->pos.line, 9);
  EXPECT_EQ(full.circuit_breaker->pos.col, 11);
  EXPECT_EQ(full.max_request_message_bytes, 1048576u);
  EXPECT_EQ(full.max_response_message_bytes, 2147483647u);

  const Route& defaults = routes[1];
  ASSERT_TRUE(defaults.rate_limit);
  EXPECT_DOUBLE_EQ(defaults.rate_limit->rps, 1000.0);
  EXPECT_EQ(defaults.rate_limit->burst, 1u);
  EXPECT_FALSE(defaults.rate_limit->unavailable);
  ASSERT_TRUE(defaults.circuit_breaker);
  EXPECT_EQ(defaults.circuit_breaker->consecutive_failures, 5u);
  EXPECT_EQ(defaults.circuit_breaker->open_for, seconds(10));
  EXPECT_EQ(defaults.circuit_breaker->half_open_probes, 1u);
  EXPECT_EQ(defaults.circuit_breaker->pos.line, 17);
  EXPECT_EQ(defaults.circuit_breaker->pos.col, 26);
  EXPECT_FALSE(defaults.max_request_message_bytes);
  EXPECT_FALSE(defaults.max_response_message_bytes);

  const Route& none = routes[2];
  EXPECT_FALSE(none.rate_limit);
  EXPECT_FALSE(none.circuit_breaker);
  EXPECT_FALSE(none.max_request_message_bytes);
  EXPECT_FALSE(none.max_response_message_bytes);
}

TEST(RoutePolicyConfig, RateLimitStatusResourceExhaustedAndRangeEnds) {
  auto loaded = load_string(R"(listeners:
  - name: outbound
    address: 127.0.0.1:15001
    routes:
      - match: {}
        cluster: users
        rate_limit: { rps: 0.001, burst: 1, status: resource_exhausted }
        max_request_message_bytes: 1
clusters:
  - name: users
    endpoints: [ "127.0.0.1:50051" ]
)",
                            "t.yaml");
  ASSERT_TRUE(loaded) << loaded.error().to_string();
  const Route& route = loaded->listeners.at(0).routes.at(0);
  EXPECT_DOUBLE_EQ(route.rate_limit->rps, 0.001);
  EXPECT_FALSE(route.rate_limit->unavailable);
  EXPECT_EQ(route.max_request_message_bytes, 1u);
  EXPECT_EQ(route_error("        rate_limit: { rps: 1000000000 }\n"), "loaded");
}

TEST(RoutePolicyConfigError, RpsZero) {
  EXPECT_EQ(route_error("        rate_limit: { rps: 0 }\n"),
            "test.yaml:7:28: listeners[0].routes[0].rate_limit.rps: 0 is out of range "
            "0.001..1e9");
}

TEST(RoutePolicyConfigError, RpsTooLarge) {
  EXPECT_EQ(route_error("        rate_limit: { rps: 1.5e9 }\n"),
            "test.yaml:7:28: listeners[0].routes[0].rate_limit.rps: 1.5e9 is out of range "
            "0.001..1e9");
}

TEST(RoutePolicyConfigError, RpsNotANumber) {
  EXPECT_EQ(route_error("        rate_limit: { rps: \"10\" }\n"),
            "test.yaml:7:28: listeners[0].routes[0].rate_limit.rps: expected a number, got the "
            "quoted string \"10\"");
  EXPECT_EQ(route_error("        rate_limit: { rps: inf }\n"),
            "test.yaml:7:28: listeners[0].routes[0].rate_limit.rps: expected a number, got "
            "'inf'");
  EXPECT_EQ(route_error("        rate_limit: { rps: 0x10 }\n"),
            "test.yaml:7:28: listeners[0].routes[0].rate_limit.rps: expected a number, got "
            "'0x10'");
}

TEST(RoutePolicyConfigError, RpsMissing) {
  EXPECT_EQ(route_error("        rate_limit: { burst: 5 }\n"),
            "test.yaml:7:21: listeners[0].routes[0].rate_limit: missing required key 'rps'");
}

TEST(RoutePolicyConfigError, BurstZero) {
  EXPECT_EQ(route_error("        rate_limit: { rps: 10, burst: 0 }\n"),
            "test.yaml:7:39: listeners[0].routes[0].rate_limit.burst: 0 is out of range "
            "1..2147483647");
}

TEST(RoutePolicyConfigError, BurstTooLargeForRps) {
  EXPECT_EQ(route_error("        rate_limit: { rps: 0.001, burst: 100000 }\n"), "loaded");
  EXPECT_EQ(route_error("        rate_limit: { rps: 0.001, burst: 100001 }\n"),
            "test.yaml:7:42: listeners[0].routes[0].rate_limit.burst: 100001 is too large for rps "
            "0.001: burst / rps must be at most 1e8 (about 3 years of tokens)");
}

TEST(RoutePolicyConfigError, BadStatus) {
  EXPECT_EQ(route_error("        rate_limit: { rps: 10, status: aborted }\n"),
            "test.yaml:7:40: listeners[0].routes[0].rate_limit.status: unknown status 'aborted'; "
            "allowed: resource_exhausted, unavailable");
}

TEST(RoutePolicyConfigError, RateLimitKey) {
  EXPECT_EQ(route_error("        rate_limit: { rps: 10, key: peer }\n"),
            "test.yaml:7:37: listeners[0].routes[0].rate_limit.key: unknown key 'peer'; allowed: "
            "identity, { header: NAME }");
  EXPECT_EQ(route_error("        rate_limit: { rps: 10, key: { header: \"\" } }\n"),
            "test.yaml:7:47: listeners[0].routes[0].rate_limit.key.header: expected a request "
            "header name (not empty, not a pseudo-header)");
  EXPECT_EQ(route_error("        rate_limit: { rps: 10, key: { header: \":path\" } }\n"),
            "test.yaml:7:47: listeners[0].routes[0].rate_limit.key.header: expected a request "
            "header name (not empty, not a pseudo-header)");
  EXPECT_EQ(route_error("        rate_limit: { rps: 10, key: { name: x } }\n"),
            "test.yaml:7:39: listeners[0].routes[0].rate_limit.key: unknown key 'name'; allowed "
            "keys: header");
  EXPECT_EQ(route_error("        rate_limit:\n          rps: 10\n          max_keys: 4096\n"),
            "test.yaml:9:21: listeners[0].routes[0].rate_limit.max_keys: needs 'key' (identity or "
            "{ header: NAME })");
  EXPECT_EQ(route_error("        rate_limit: { rps: 10, key: identity, max_keys: 3 }\n"),
            "test.yaml:7:57: listeners[0].routes[0].rate_limit.max_keys: 3 is out of range "
            "4..1048576");
  EXPECT_EQ(route_error("        rate_limit: { rps: 10, key: { header: X-User }, max_keys: 64 }\n"),
            "loaded");
}

TEST(RoutePolicyConfigError, MessageRateLimitAndFailureCodes) {
  EXPECT_EQ(route_error("        message_rate_limit: { rps: 10, burst: 5 }\n"), "loaded");
  EXPECT_EQ(route_error("        message_rate_limit: { burst: 5 }\n"),
            "test.yaml:7:29: listeners[0].routes[0].message_rate_limit: missing required key "
            "'rps'");
  EXPECT_EQ(route_error("        message_rate_limit: { rps: 10, status: unavailable }\n"),
            "test.yaml:7:40: listeners[0].routes[0].message_rate_limit: unknown key 'status'; "
            "allowed keys: rps, burst");
  EXPECT_EQ(route_error("        failure_codes: [ unavailable, internal ]\n"), "loaded");
  EXPECT_EQ(route_error("        failure_codes: []\n"),
            "test.yaml:7:24: listeners[0].routes[0].failure_codes: at least one status is "
            "required");
}

TEST(RoutePolicyConfigError, OpenForNegative) {
  EXPECT_EQ(route_error("        circuit_breaker: { open_for: -1s }\n"),
            "test.yaml:7:38: listeners[0].routes[0].circuit_breaker.open_for: invalid duration "
            "'-1s': must not be negative");
}

TEST(RoutePolicyConfigError, OpenForWithoutUnit) {
  EXPECT_EQ(route_error("        circuit_breaker: { open_for: 10 }\n"),
            "test.yaml:7:38: listeners[0].routes[0].circuit_breaker.open_for: invalid duration "
            "'10': missing unit (ms, s, m or h)");
}

TEST(RoutePolicyConfigError, OpenForZero) {
  EXPECT_EQ(route_error("        circuit_breaker: { open_for: 0s }\n"),
            "test.yaml:7:38: listeners[0].routes[0].circuit_breaker.open_for: must be greater "
            "than 0");
}

TEST(RoutePolicyConfigError, ConsecutiveFailuresZero) {
  EXPECT_EQ(route_error("        circuit_breaker:\n          consecutive_failures: 0\n"),
            "test.yaml:8:33: listeners[0].routes[0].circuit_breaker.consecutive_failures: 0 is "
            "out of range 1..1000000");
}

TEST(RoutePolicyConfigError, HalfOpenProbesTooLarge) {
  EXPECT_EQ(route_error("        circuit_breaker: { half_open_probes: 1001 }\n"),
            "test.yaml:7:46: listeners[0].routes[0].circuit_breaker.half_open_probes: 1001 is "
            "out of range 1..1000");
}

TEST(RoutePolicyConfigError, UnknownKeyInCircuitBreaker) {
  EXPECT_EQ(route_error("        circuit_breaker: { consecutive_failure: 3 }\n"),
            "test.yaml:7:28: listeners[0].routes[0].circuit_breaker: unknown key "
            "'consecutive_failure' (did you mean 'consecutive_failures'?); allowed keys: "
            "consecutive_failures, open_for, half_open_probes");
}

TEST(RoutePolicyConfigError, MaxRequestMessageBytesZero) {
  EXPECT_EQ(route_error("        max_request_message_bytes: 0\n"),
            "test.yaml:7:36: listeners[0].routes[0].max_request_message_bytes: 0 is out of range "
            "1..2147483647");
}

TEST(RoutePolicyConfigError, MaxResponseMessageBytesTooLarge) {
  EXPECT_EQ(route_error("        max_response_message_bytes: 2147483648\n"),
            "test.yaml:7:37: listeners[0].routes[0].max_response_message_bytes: 2147483648 is "
            "out of range 1..2147483647");
}

TEST(RoutePolicyConfigError, MaxRequestMessageBytesString) {
  EXPECT_EQ(route_error("        max_request_message_bytes: 4MiB\n"),
            "test.yaml:7:36: listeners[0].routes[0].max_request_message_bytes: expected an "
            "integer, got '4MiB'");
}

TEST(RoutePolicyConfigError, ScalarWhereAMapIsExpected) {
  EXPECT_EQ(route_error("        rate_limit: 100\n"),
            "test.yaml:7:21: listeners[0].routes[0].rate_limit: expected a map, got '100'");
  EXPECT_EQ(route_error("        circuit_breaker: [ 5 ]\n"),
            "test.yaml:7:26: listeners[0].routes[0].circuit_breaker: expected a map, got a list");
}

TEST(RoutePolicyConfigError, MapWhereAScalarIsExpected) {
  EXPECT_EQ(route_error("        max_response_message_bytes: { bytes: 10 }\n"),
            "test.yaml:7:37: listeners[0].routes[0].max_response_message_bytes: expected an "
            "integer, got a map");
  EXPECT_EQ(route_error("        rate_limit: { rps: { value: 1 } }\n"),
            "test.yaml:7:28: listeners[0].routes[0].rate_limit.rps: expected a number, got a map");
}

TEST(RoutePolicyConfig, GrpcTimeoutOffset) {
  EXPECT_EQ(route_error("        grpc_timeout_offset: 50ms\n"), "loaded");
  EXPECT_EQ(route_error("        grpc_timeout_offset: -5ms\n"),
            "test.yaml:7:30: listeners[0].routes[0].grpc_timeout_offset: invalid duration '-5ms': "
            "must not be negative");
}

TEST(RoutePolicyConfigError, UnknownRouteKeyListsTheNewKeys) {
  EXPECT_EQ(route_error("        message_rate: { rps: 10 }\n"),
            "test.yaml:7:9: listeners[0].routes[0]: unknown key 'message_rate'; allowed "
            "keys: match, cluster, timeout, grpc_timeout_offset, allow, rate_limit, "
            "message_rate_limit, "
            "circuit_breaker, retry, hedging, failure_codes, max_request_message_bytes, "
            "max_response_message_bytes");
}

}  // namespace
}  // namespace skiff::config
