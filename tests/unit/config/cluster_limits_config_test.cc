// Tests for the cluster key circuit_breaker (cluster thresholds): values, defaults, and exact
// "file:line:col" errors. The route key of the same name (the method breaker) is separate.
#include <gtest/gtest.h>

#include <string>

#include "config/config.h"
#include "route_yaml.h"

namespace skiff::config {
namespace {

// The one cluster has |cluster_keys| (indented 4 spaces, from line 10).
std::string cluster_error(const std::string& cluster_keys, Config* out = nullptr) {
  return load_with(cluster_keys, out);
}

TEST(ClusterLimitsConfig, ParsesEveryKey) {
  Config config;
  ASSERT_EQ(cluster_error("    circuit_breaker: { max_connections: 10, max_pending_requests: 20, "
                          "max_requests: 30, max_retries: 4 }\n",
                          &config),
            "loaded");
  const ClusterCircuitBreaker& cb = config.clusters.at(0).circuit_breaker;
  EXPECT_EQ(cb.max_connections, 10u);
  EXPECT_EQ(cb.max_pending_requests, 20u);
  EXPECT_EQ(cb.max_requests, 30u);
  EXPECT_EQ(cb.max_retries, 4u);
  EXPECT_EQ(cb.pos.line, 10);
}

TEST(ClusterLimitsConfig, EnvoyDefaultsWhenAbsentOrPartial) {
  Config config;
  ASSERT_EQ(cluster_error("", &config), "loaded");
  const ClusterCircuitBreaker& absent = config.clusters.at(0).circuit_breaker;
  EXPECT_EQ(absent.max_connections, 1024u);
  EXPECT_EQ(absent.max_pending_requests, 1024u);
  EXPECT_EQ(absent.max_requests, 1024u);
  EXPECT_EQ(absent.max_retries, 3u);

  ASSERT_EQ(cluster_error("    circuit_breaker: { max_requests: 2 }\n", &config), "loaded");
  const ClusterCircuitBreaker& partial = config.clusters.at(0).circuit_breaker;
  EXPECT_EQ(partial.max_requests, 2u);
  EXPECT_EQ(partial.max_connections, 1024u);
  EXPECT_EQ(partial.max_pending_requests, 1024u);
  EXPECT_EQ(partial.max_retries, 3u);

  ASSERT_EQ(cluster_error("    circuit_breaker: { max_retries: 1000000 }\n", &config), "loaded");
  EXPECT_EQ(config.clusters.at(0).circuit_breaker.max_retries, 1000000u);
}

TEST(ClusterLimitsConfig, RejectsBadValues) {
  EXPECT_EQ(cluster_error("    circuit_breaker: { max_connections: 0 }\n"),
            "test.yaml:10:41: clusters[0].circuit_breaker.max_connections: 0 is out of range "
            "1..1000000");
  EXPECT_EQ(cluster_error("    circuit_breaker: { max_pending_requests: 1000001 }\n"),
            "test.yaml:10:46: clusters[0].circuit_breaker.max_pending_requests: 1000001 is out of "
            "range 1..1000000");
  EXPECT_EQ(cluster_error("    circuit_breaker: { max_requests: -1 }\n"),
            "test.yaml:10:38: clusters[0].circuit_breaker.max_requests: -1 is out of range "
            "1..1000000");
  EXPECT_EQ(cluster_error("    circuit_breaker: { max_retries: 0 }\n"),
            "test.yaml:10:37: clusters[0].circuit_breaker.max_retries: 0 is out of range "
            "1..1000000");
}

TEST(ClusterLimitsConfig, RejectsUnknownKeys) {
  // The method breaker's keys belong on a route, not a cluster.
  EXPECT_EQ(cluster_error("    circuit_breaker: { consecutive_failures: 5 }\n"),
            "test.yaml:10:24: clusters[0].circuit_breaker: unknown key 'consecutive_failures'; "
            "allowed keys: max_connections, max_pending_requests, max_requests, max_retries, "
            "retry_budget");
}

TEST(ClusterLimitsConfig, EnvoyRetryBudget) {
  Config config;
  ASSERT_EQ(load_with("    circuit_breaker:\n"
                      "      retry_budget: { budget_percent: 25.5, min_retry_concurrency: 0 }\n",
                      &config),
            "loaded");
  const auto& budget = config.clusters.at(0).circuit_breaker.retry_budget;
  ASSERT_TRUE(budget);
  EXPECT_DOUBLE_EQ(budget->budget_percent, 25.5);
  EXPECT_EQ(budget->min_retry_concurrency, 0u);

  Config defaults;
  ASSERT_EQ(load_with("    circuit_breaker: { retry_budget: {} }\n", &defaults), "loaded");
  EXPECT_DOUBLE_EQ(defaults.clusters.at(0).circuit_breaker.retry_budget->budget_percent, 20.0);
  EXPECT_EQ(defaults.clusters.at(0).circuit_breaker.retry_budget->min_retry_concurrency, 3u);

  EXPECT_EQ(cluster_error("    circuit_breaker: { retry_budget: { budget_percent: 101 } }\n"),
            "test.yaml:10:56: clusters[0].circuit_breaker.retry_budget.budget_percent: 101 is "
            "out of range 0..100");
}

}  // namespace
}  // namespace skiff::config
