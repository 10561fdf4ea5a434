// Tests for the cluster keys load_balancing and peak_ewma: values, defaults, and exact
// "file:line:col" errors.
#include <gtest/gtest.h>

#include <string>

#include "config/config.h"
#include "route_yaml.h"

namespace skiff::config {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// The one cluster, with two endpoints, has |cluster_keys| (indented 4 spaces, from line 10).
std::string cluster_error(const std::string& cluster_keys, Config* out = nullptr) {
  return load_with(cluster_keys, out, R"("127.0.0.1:50051", "127.0.0.1:50052")");
}

TEST(LoadBalancingConfig, DefaultIsRoundRobin) {
  Config config;
  ASSERT_EQ(cluster_error("", &config), "loaded");
  EXPECT_EQ(config.clusters.at(0).load_balancing, LoadBalancing::kRoundRobin);
  EXPECT_FALSE(config.clusters.at(0).peak_ewma.has_value());
}

TEST(LoadBalancingConfig, AcceptsEveryPolicy) {
  Config config;
  ASSERT_EQ(cluster_error("    load_balancing: round_robin\n", &config), "loaded");
  EXPECT_EQ(config.clusters.at(0).load_balancing, LoadBalancing::kRoundRobin);
  ASSERT_EQ(cluster_error("    load_balancing: least_request\n", &config), "loaded");
  EXPECT_EQ(config.clusters.at(0).load_balancing, LoadBalancing::kLeastRequest);
  ASSERT_EQ(cluster_error("    load_balancing: peak_ewma\n", &config), "loaded");
  EXPECT_EQ(config.clusters.at(0).load_balancing, LoadBalancing::kPeakEwma);
  // Without a peak_ewma block the estimator's defaults apply (server/ uses PeakEwmaParams{}).
  EXPECT_FALSE(config.clusters.at(0).peak_ewma.has_value());
}

TEST(LoadBalancingConfig, NamesRoundTrip) {
  EXPECT_EQ(to_string(LoadBalancing::kRoundRobin), "round_robin");
  EXPECT_EQ(to_string(LoadBalancing::kLeastRequest), "least_request");
  EXPECT_EQ(to_string(LoadBalancing::kPeakEwma), "peak_ewma");
}

TEST(LoadBalancingConfig, UnknownPolicyListsAllThree) {
  EXPECT_EQ(cluster_error("    load_balancing: least_requests\n"),
            "test.yaml:10:21: clusters[0].load_balancing: unknown load balancing policy "
            "'least_requests'; allowed: round_robin, least_request, peak_ewma");
  EXPECT_EQ(cluster_error("    load_balancing: ROUND_ROBIN\n"),
            "test.yaml:10:21: clusters[0].load_balancing: unknown load balancing policy "
            "'ROUND_ROBIN'; allowed: round_robin, least_request, peak_ewma");
}

TEST(LoadBalancingConfig, PeakEwmaParsesEveryKey) {
  Config config;
  ASSERT_EQ(cluster_error("    load_balancing: peak_ewma\n"
                          "    peak_ewma: { decay: 5s, default_rtt: 50ms, "
                          "resource_exhausted_penalty: 2s }\n",
                          &config),
            "loaded");
  const auto& p = config.clusters.at(0).peak_ewma;
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->decay, seconds(5));
  EXPECT_EQ(p->default_rtt, milliseconds(50));
  EXPECT_EQ(p->resource_exhausted_penalty, seconds(2));
  EXPECT_EQ(p->pos.line, 11);
}

TEST(LoadBalancingConfig, PeakEwmaDefaultsAndPenaltyOff) {
  Config config;
  ASSERT_EQ(cluster_error("    load_balancing: peak_ewma\n    peak_ewma: {}\n", &config), "loaded");
  const auto& p = config.clusters.at(0).peak_ewma;
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->decay, seconds(10));
  EXPECT_EQ(p->default_rtt, milliseconds(30));
  EXPECT_EQ(p->resource_exhausted_penalty, seconds(5));

  ASSERT_EQ(cluster_error("    load_balancing: peak_ewma\n"
                          "    peak_ewma: { resource_exhausted_penalty: 0ms }\n",
                          &config),
            "loaded");
  EXPECT_EQ(config.clusters.at(0).peak_ewma->resource_exhausted_penalty, milliseconds(0));
}

TEST(LoadBalancingConfig, PeakEwmaOrderOfKeysDoesNotMatter) {
  Config config;
  ASSERT_EQ(cluster_error("    peak_ewma: { decay: 1s }\n    load_balancing: peak_ewma\n", &config),
            "loaded");
  EXPECT_EQ(config.clusters.at(0).peak_ewma->decay, seconds(1));
}

TEST(LoadBalancingConfig, PeakEwmaOnlyWithPeakEwma) {
  EXPECT_EQ(cluster_error("    peak_ewma: { decay: 1s }\n"),
            "test.yaml:10:16: clusters[0].peak_ewma: only valid with load_balancing: peak_ewma "
            "(this cluster uses round_robin)");
  EXPECT_EQ(cluster_error("    load_balancing: least_request\n    peak_ewma: {}\n"),
            "test.yaml:11:16: clusters[0].peak_ewma: only valid with load_balancing: peak_ewma "
            "(this cluster uses least_request)");
}

TEST(LoadBalancingConfig, PeakEwmaErrors) {
  const std::string lb = "    load_balancing: peak_ewma\n";
  EXPECT_EQ(cluster_error(lb + "    peak_ewma: { decay: 0s }\n"),
            "test.yaml:11:25: clusters[0].peak_ewma.decay: must be greater than 0");
  EXPECT_EQ(cluster_error(lb + "    peak_ewma: { default_rtt: 0ms }\n"),
            "test.yaml:11:31: clusters[0].peak_ewma.default_rtt: must be greater than 0");
  EXPECT_EQ(cluster_error(lb + "    peak_ewma: { resource_exhausted_penalty: -1s }\n"),
            "test.yaml:11:46: clusters[0].peak_ewma.resource_exhausted_penalty: invalid duration "
            "'-1s': must not be negative");
  EXPECT_EQ(cluster_error(lb + "    peak_ewma: { decay: 10 }\n"),
            "test.yaml:11:25: clusters[0].peak_ewma.decay: invalid duration '10': missing unit "
            "(ms, s, m or h)");
  EXPECT_TRUE(cluster_error(lb + "    peak_ewma: { window: 10s }\n")
                  .starts_with("test.yaml:11:18: clusters[0].peak_ewma: unknown key 'window'"));
  EXPECT_EQ(cluster_error(lb + "    peak_ewma: 10s\n"),
            "test.yaml:11:16: clusters[0].peak_ewma: expected a map, got '10s'");
}

}  // namespace
}  // namespace skiff::config
