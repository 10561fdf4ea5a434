// Tests for the route key `retry`: values and defaults parse as documented (docs/config.md), the
// names in `on` keep their positions for server/, and bad values are rejected with an exact
// "file:line:col: message".
#include <gtest/gtest.h>

#include <string>

#include "config/config.h"
#include "route_yaml.h"

namespace skiff::config {
namespace {

using std::chrono::milliseconds;

TEST(RouteRetryConfig, ParsesEveryKey) {
  const std::string yaml = R"(listeners:
  - name: outbound
    address: 127.0.0.1:15001
    routes:
      - match: { service: user.UserService, method: GetUser }
        cluster: users
        retry:
          max_attempts: 5
          on: [Unavailable, deadline_exceeded, connect-failure,
               RESET, per_try_timeout, refused_stream, not_a_code]
          per_try_timeout: 500ms
          backoff: { initial: 10ms, max: 1s, multiplier: 1.5 }
          buffer_bytes: 16777216
      - match: { service: user.UserService }
        cluster: users
        retry: {}
      - match: {}
        cluster: users
        retry:
          max_attempts: 1
          backoff: { initial: 250ms }
          buffer_bytes: 0
      - match: { authority: other }
        cluster: users
clusters:
  - name: users
    endpoints: [ "127.0.0.1:50051" ]
)";
  auto loaded = load_string(yaml, "retry.yaml");
  ASSERT_TRUE(loaded) << loaded.error().to_string();
  const std::vector<Route>& routes = loaded->listeners.at(0).routes;
  ASSERT_EQ(routes.size(), 4u);

  ASSERT_TRUE(routes[0].retry);
  const Retry& full = *routes[0].retry;
  EXPECT_EQ(full.max_attempts, 5u);
  // Names are lower-cased but otherwise kept as written ('-' stays '-'); unknown names are left
  // for server/ to reject at their position.
  struct Expected {
    std::string name;
    int line;
    int col;
  };
  const std::vector<Expected> expected = {
      {"unavailable", 9, 16}, {"deadline_exceeded", 9, 29}, {"connect-failure", 9, 48},
      {"reset", 10, 16},      {"per_try_timeout", 10, 23},  {"refused_stream", 10, 40},
      {"not_a_code", 10, 56},
  };
  ASSERT_EQ(full.on.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(full.on[i].name, expected[i].name) << i;
    EXPECT_EQ(full.on[i].pos.line, expected[i].line) << i;
    EXPECT_EQ(full.on[i].pos.col, expected[i].col) << i;
  }
  EXPECT_EQ(full.per_try_timeout, milliseconds(500));
  EXPECT_EQ(full.backoff_initial, milliseconds(10));
  EXPECT_EQ(full.backoff_max, milliseconds(1000));
  EXPECT_DOUBLE_EQ(full.backoff_multiplier, 1.5);
  EXPECT_EQ(full.buffer_bytes, 16777216u);
  EXPECT_EQ(full.pos.line, 8);
  EXPECT_EQ(full.pos.col, 11);

  ASSERT_TRUE(routes[1].retry);
  const Retry& defaults = *routes[1].retry;
  EXPECT_EQ(defaults.max_attempts, 2u);
  EXPECT_TRUE(defaults.on.empty());
  EXPECT_FALSE(defaults.per_try_timeout);
  EXPECT_EQ(defaults.backoff_initial, milliseconds(25));
  EXPECT_EQ(defaults.backoff_max, milliseconds(250));
  EXPECT_DOUBLE_EQ(defaults.backoff_multiplier, 2.0);
  EXPECT_EQ(defaults.buffer_bytes, 65536u);
  EXPECT_EQ(defaults.pos.line, 16);
  EXPECT_EQ(defaults.pos.col, 16);

  // Range ends, and initial equal to the default max.
  ASSERT_TRUE(routes[2].retry);
  const Retry& ends = *routes[2].retry;
  EXPECT_EQ(ends.max_attempts, 1u);
  EXPECT_EQ(ends.backoff_initial, milliseconds(250));
  EXPECT_EQ(ends.backoff_max, milliseconds(250));
  EXPECT_EQ(ends.buffer_bytes, 0u);

  EXPECT_FALSE(routes[3].retry);
}

TEST(RouteRetryConfig, RangeEndsAreAccepted) {
  EXPECT_EQ(route_error("        retry: { backoff: { multiplier: 1 } }\n"), "loaded");
  EXPECT_EQ(route_error("        retry: { backoff: { multiplier: 10 } }\n"), "loaded");
  EXPECT_EQ(route_error("        retry: { backoff: { initial: 100ms, max: 100ms } }\n"), "loaded");
  EXPECT_EQ(route_error("        retry: { on: [ 14 ] }\n"), "loaded");
}

TEST(RouteRetryConfigError, MaxAttemptsZero) {
  EXPECT_EQ(route_error("        retry: { max_attempts: 0 }\n"),
            "test.yaml:7:32: listeners[0].routes[0].retry.max_attempts: 0 is out of range 1..5");
}

TEST(RouteRetryConfigError, MaxAttemptsSix) {
  EXPECT_EQ(route_error("        retry:\n          max_attempts: 6\n"),
            "test.yaml:8:25: listeners[0].routes[0].retry.max_attempts: 6 is out of range 1..5");
}

TEST(RouteRetryConfigError, OnEmptyList) {
  EXPECT_EQ(route_error("        retry: { on: [] }\n"),
            "test.yaml:7:22: listeners[0].routes[0].retry.on: at least one status is required "
            "(leave the key out to retry the route's failure codes)");
}

TEST(RouteRetryConfigError, OnNotAList) {
  EXPECT_EQ(route_error("        retry: { on: unavailable }\n"),
            "test.yaml:7:22: listeners[0].routes[0].retry.on: expected a list, got "
            "'unavailable'");
}

TEST(RouteRetryConfigError, OnEntryNotAString) {
  EXPECT_EQ(route_error("        retry:\n          on: [ unavailable, { code: 14 } ]\n"),
            "test.yaml:8:30: listeners[0].routes[0].retry.on[1]: expected a string, got a map");
  EXPECT_EQ(route_error("        retry: { on: [ [ reset ] ] }\n"),
            "test.yaml:7:24: listeners[0].routes[0].retry.on[0]: expected a string, got a list");
}

TEST(RouteRetryConfigError, UnknownKeyInRetry) {
  EXPECT_EQ(route_error("        retry: { max_attempts: 3, retry_on: [ reset ] }\n"),
            "test.yaml:7:35: listeners[0].routes[0].retry: unknown key 'retry_on'; allowed keys: "
            "max_attempts, on, per_try_timeout, backoff, buffer_bytes");
  EXPECT_EQ(route_error("        retry:\n          replay_buffer_bytes: 1024\n"),
            "test.yaml:8:11: listeners[0].routes[0].retry: unknown key 'replay_buffer_bytes'; "
            "allowed keys: max_attempts, on, per_try_timeout, backoff, buffer_bytes");
}

TEST(RouteRetryConfigError, UnknownKeyInBackoff) {
  EXPECT_EQ(route_error("        retry:\n          backoff: { initial: 10ms, maximum: 1s }\n"),
            "test.yaml:8:37: listeners[0].routes[0].retry.backoff: unknown key 'maximum'; "
            "allowed keys: initial, max, multiplier");
  EXPECT_EQ(route_error("        retry:\n          backoff: { multipler: 3 }\n"),
            "test.yaml:8:22: listeners[0].routes[0].retry.backoff: unknown key 'multipler' (did "
            "you mean 'multiplier'?); allowed keys: initial, max, multiplier");
}

TEST(RouteRetryConfigError, MultiplierBelowOne) {
  EXPECT_EQ(route_error("        retry:\n          backoff: { multiplier: 0.5 }\n"),
            "test.yaml:8:34: listeners[0].routes[0].retry.backoff.multiplier: 0.5 is out of "
            "range 1..10");
}

TEST(RouteRetryConfigError, MultiplierAboveTen) {
  EXPECT_EQ(route_error("        retry:\n          backoff: { multiplier: 10.5 }\n"),
            "test.yaml:8:34: listeners[0].routes[0].retry.backoff.multiplier: 10.5 is out of "
            "range 1..10");
}

TEST(RouteRetryConfigError, MaxLessThanInitial) {
  EXPECT_EQ(route_error("        retry:\n          backoff: { initial: 100ms, max: 50ms }\n"),
            "test.yaml:8:43: listeners[0].routes[0].retry.backoff.max: 50ms is less than initial "
            "(100ms)");
  EXPECT_EQ(route_error("        retry:\n          backoff: { max: 10ms }\n"),
            "test.yaml:8:27: listeners[0].routes[0].retry.backoff.max: 10ms is less than initial "
            "(25ms)");
}

TEST(RouteRetryConfigError, InitialAboveTheDefaultMax) {
  EXPECT_EQ(route_error("        retry:\n          backoff: { initial: 1s }\n"),
            "test.yaml:8:31: listeners[0].routes[0].retry.backoff.initial: 1s is more than the "
            "default max (250ms); set max too");
}

TEST(RouteRetryConfigError, InitialZero) {
  EXPECT_EQ(route_error("        retry:\n          backoff: { initial: 0ms }\n"),
            "test.yaml:8:31: listeners[0].routes[0].retry.backoff.initial: must be greater than "
            "0");
}

TEST(RouteRetryConfigError, PerTryTimeoutZero) {
  EXPECT_EQ(route_error("        retry: { per_try_timeout: 0ms }\n"),
            "test.yaml:7:35: listeners[0].routes[0].retry.per_try_timeout: must be greater than "
            "0");
}

TEST(RouteRetryConfigError, PerTryTimeoutWithoutUnit) {
  EXPECT_EQ(route_error("        retry: { per_try_timeout: 500 }\n"),
            "test.yaml:7:35: listeners[0].routes[0].retry.per_try_timeout: invalid duration "
            "'500': missing unit (ms, s, m or h)");
}

TEST(RouteRetryConfigError, BufferBytesTooLarge) {
  EXPECT_EQ(route_error("        retry: { buffer_bytes: 16777217 }\n"),
            "test.yaml:7:32: listeners[0].routes[0].retry.buffer_bytes: 16777217 is out of range "
            "0..16777216");
}

TEST(RouteRetryConfigError, BufferBytesNegative) {
  EXPECT_EQ(route_error("        retry: { buffer_bytes: -1 }\n"),
            "test.yaml:7:32: listeners[0].routes[0].retry.buffer_bytes: -1 is out of range "
            "0..16777216");
}

TEST(RouteRetryConfigError, RetryNotAMap) {
  EXPECT_EQ(route_error("        retry: 3\n"),
            "test.yaml:7:16: listeners[0].routes[0].retry: expected a map, got '3'");
  EXPECT_EQ(route_error("        retry: { backoff: 25ms }\n"),
            "test.yaml:7:27: listeners[0].routes[0].retry.backoff: expected a map, got '25ms'");
}

}  // namespace
}  // namespace skiff::config
