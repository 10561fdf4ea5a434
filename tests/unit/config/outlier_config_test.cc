// Tests for the cluster key outlier_detection: values, defaults, and exact "file:line:col" errors.
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

TEST(OutlierConfig, ParsesEveryKeyAndDefaults) {
  Config config;
  ASSERT_EQ(cluster_error("    outlier_detection: { consecutive_failures: 3, base_ejection_time: "
                          "1s, max_ejection_time: 10s, max_ejection_percent: 50 }\n",
                          &config),
            "loaded");
  const auto& od = config.clusters.at(0).outlier_detection;
  ASSERT_TRUE(od.has_value());
  EXPECT_EQ(od->consecutive_failures, 3u);
  EXPECT_EQ(od->base_ejection_time, seconds(1));
  EXPECT_EQ(od->max_ejection_time, seconds(10));
  EXPECT_EQ(od->max_ejection_percent, 50u);
  EXPECT_EQ(od->pos.line, 10);

  ASSERT_EQ(cluster_error("    outlier_detection: {}\n", &config), "loaded");
  const auto& defaults = config.clusters.at(0).outlier_detection;
  ASSERT_TRUE(defaults.has_value());
  EXPECT_EQ(defaults->consecutive_failures, 5u);
  EXPECT_EQ(defaults->base_ejection_time, seconds(30));
  EXPECT_EQ(defaults->max_ejection_time, seconds(300));
  EXPECT_EQ(defaults->max_ejection_percent, 10u);

  // A base above the default max raises the max with it.
  ASSERT_EQ(cluster_error("    outlier_detection: { base_ejection_time: 10m }\n", &config),
            "loaded");
  EXPECT_EQ(config.clusters.at(0).outlier_detection->max_ejection_time, milliseconds(600000));

  ASSERT_EQ(cluster_error("", &config), "loaded");
  EXPECT_FALSE(config.clusters.at(0).outlier_detection.has_value());
}

TEST(OutlierConfig, RejectsBadValues) {
  EXPECT_EQ(cluster_error("    outlier_detection: { consecutive_failures: 0 }\n"),
            "test.yaml:10:48: clusters[0].outlier_detection.consecutive_failures: 0 is out of "
            "range 1..1000000");
  EXPECT_EQ(cluster_error("    outlier_detection: { base_ejection_time: 0s }\n"),
            "test.yaml:10:46: clusters[0].outlier_detection.base_ejection_time: must be greater "
            "than 0");
  EXPECT_EQ(cluster_error("    outlier_detection: { base_ejection_time: 10s, max_ejection_time: "
                          "5s }\n"),
            "test.yaml:10:70: clusters[0].outlier_detection.max_ejection_time: 5000ms is less than "
            "base_ejection_time (10000ms)");
  EXPECT_EQ(cluster_error("    outlier_detection: { max_ejection_percent: 101 }\n"),
            "test.yaml:10:48: clusters[0].outlier_detection.max_ejection_percent: 101 is out of "
            "range 0..100");
  EXPECT_EQ(cluster_error("    outlier_detection: { interval: 0s }\n"),
            "test.yaml:10:36: clusters[0].outlier_detection.interval: must be greater than 0");
  EXPECT_EQ(cluster_error("    outlier_detection: { intervall: 10s }\n"),
            "test.yaml:10:26: clusters[0].outlier_detection: unknown key 'intervall' (did you mean "
            "'interval'?); allowed keys: consecutive_failures, base_ejection_time, "
            "max_ejection_time, max_ejection_percent, interval");
}

TEST(OutlierConfig, Interval) {
  Config config;
  ASSERT_EQ(cluster_error("    outlier_detection: { interval: 2s }\n", &config), "loaded");
  EXPECT_EQ(config.clusters.at(0).outlier_detection->interval, std::chrono::seconds(2));
  ASSERT_EQ(cluster_error("    outlier_detection: {}\n", &config), "loaded");
  EXPECT_EQ(config.clusters.at(0).outlier_detection->interval, std::chrono::seconds(10));
}

}  // namespace
}  // namespace skiff::config
