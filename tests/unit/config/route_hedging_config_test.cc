// Tests for the route key `hedging` and the cluster key `retry_throttling`: values and defaults
// parse as documented (docs/policies.md), and bad values are rejected with an exact
// "file:line:col: message".
#include <gtest/gtest.h>

#include <string>

#include "config/config.h"
#include "route_yaml.h"

namespace skiff::config {
namespace {

using std::chrono::milliseconds;

TEST(RouteHedgingConfig, ParsesEveryKey) {
  Config config;
  ASSERT_EQ(route_error("        hedging:\n"
                        "          max_attempts: 3\n"
                        "          hedging_delay: 50ms\n"
                        "          non_fatal_codes: [UNAVAILABLE, refused-stream]\n"
                        "          buffer_bytes: 1024\n",
                        &config),
            "loaded");
  ASSERT_EQ(config.listeners.size(), 1u);
  const Route& route = config.listeners[0].routes.at(0);
  ASSERT_TRUE(route.hedging);
  EXPECT_FALSE(route.retry);
  EXPECT_EQ(route.hedging->max_attempts, 3u);
  EXPECT_EQ(route.hedging->hedging_delay, milliseconds(50));
  ASSERT_EQ(route.hedging->non_fatal.size(), 2u);
  EXPECT_EQ(route.hedging->non_fatal[0].name, "unavailable");
  EXPECT_EQ(route.hedging->non_fatal[1].name, "refused-stream");
  EXPECT_EQ(route.hedging->non_fatal[1].pos.line, 10);
  EXPECT_EQ(route.hedging->buffer_bytes, 1024u);
}

TEST(RouteHedgingConfig, Defaults) {
  Config config;
  ASSERT_EQ(route_error("        hedging: { hedging_delay: 0ms }\n", &config), "loaded");
  ASSERT_EQ(config.listeners.size(), 1u);
  const Hedging& hedging = *config.listeners[0].routes.at(0).hedging;
  EXPECT_EQ(hedging.max_attempts, 2u);
  EXPECT_EQ(hedging.hedging_delay, milliseconds(0));
  EXPECT_TRUE(hedging.non_fatal.empty()) << "A6: without non_fatal_codes every error is fatal";
  EXPECT_EQ(hedging.buffer_bytes, 64u * 1024);
}

TEST(RouteHedgingConfigError, DelayIsRequired) {
  EXPECT_EQ(route_error("        hedging: { max_attempts: 3 }\n"),
            "test.yaml:7:18: listeners[0].routes[0].hedging: missing required key "
            "'hedging_delay'");
}

TEST(RouteHedgingConfigError, MaxAttemptsOutOfRange) {
  EXPECT_EQ(route_error("        hedging: { hedging_delay: 1ms, max_attempts: 6 }\n"),
            "test.yaml:7:54: listeners[0].routes[0].hedging.max_attempts: 6 is out of range "
            "1..5");
}

TEST(RouteHedgingConfigError, NotTogetherWithRetry) {
  EXPECT_EQ(route_error("        retry: { max_attempts: 3 }\n"
                        "        hedging: { hedging_delay: 10ms }\n"),
            "test.yaml:8:18: listeners[0].routes[0].hedging: a route has either retry or "
            "hedging, not both (as in gRPC service config); hedging is for idempotent methods "
            "only");
}

TEST(RouteHedgingConfigError, UnknownKey) {
  EXPECT_EQ(route_error("        hedging: { hedging_delay: 10ms, delay: 5ms }\n"),
            "test.yaml:7:41: listeners[0].routes[0].hedging: unknown key 'delay'; allowed keys: "
            "max_attempts, hedging_delay, non_fatal_codes, buffer_bytes");
}

TEST(RetryThrottlingConfig, DefaultsAndValues) {
  Config defaults;
  ASSERT_EQ(load_with("", &defaults), "loaded");
  EXPECT_EQ(defaults.clusters.at(0).retry_throttling.max_tokens, 10u);
  EXPECT_DOUBLE_EQ(defaults.clusters.at(0).retry_throttling.token_ratio, 0.1);

  Config config;
  ASSERT_EQ(load_with("    retry_throttling: { max_tokens: 100, token_ratio: 0.5 }\n", &config),
            "loaded");
  EXPECT_EQ(config.clusters.at(0).retry_throttling.max_tokens, 100u);
  EXPECT_DOUBLE_EQ(config.clusters.at(0).retry_throttling.token_ratio, 0.5);
}

TEST(RetryThrottlingConfigError, OutOfRange) {
  EXPECT_EQ(load_with("    retry_throttling: { max_tokens: 0 }\n"),
            "test.yaml:10:37: clusters[0].retry_throttling.max_tokens: 0 is out of range "
            "1..1000");
  EXPECT_EQ(load_with("    retry_throttling: { token_ratio: 0 }\n"),
            "test.yaml:10:38: clusters[0].retry_throttling.token_ratio: 0 is out of range "
            "0.001..1000");
}

}  // namespace
}  // namespace skiff::config
