// Tests for the top-level keys admin, tracing and access_log: values, defaults, and exact
// "file:line:col: message" errors.
#include <gtest/gtest.h>

#include <string>

#include "config/config.h"
#include "route_yaml.h"

namespace skiff::config {
namespace {

// --- absent ------------------------------------------------------------------------------------

TEST(ObservabilityConfig, AllOffWhenAbsent) {
  Config config;
  ASSERT_EQ(load_with("", &config), "loaded");
  EXPECT_FALSE(config.admin.has_value());
  EXPECT_FALSE(config.tracing.has_value());
  EXPECT_FALSE(config.access_log.has_value());
}

// --- admin -------------------------------------------------------------------------------------

TEST(ObservabilityConfig, AdminDefaultsTo127001Port9901) {
  Config config;
  ASSERT_EQ(load_with("admin: {}\n", &config), "loaded");
  ASSERT_TRUE(config.admin.has_value());
  EXPECT_EQ(config.admin->address.host, "127.0.0.1");
  EXPECT_EQ(config.admin->address.port, 9901);
  EXPECT_EQ(config.admin->pos.line, 10);
}

TEST(ObservabilityConfig, AdminExplicitAddress) {
  Config config;
  ASSERT_EQ(load_with("admin:\n  address: 0.0.0.0:9902\n", &config), "loaded");
  ASSERT_TRUE(config.admin.has_value());
  EXPECT_EQ(config.admin->address.host, "0.0.0.0");
  EXPECT_EQ(config.admin->address.port, 9902);
  EXPECT_EQ(config.admin->address.pos.line, 11);
  EXPECT_EQ(config.admin->address.pos.col, 12);

  // Port 0: any free port (the bound one is logged).
  ASSERT_EQ(load_with("admin: { address: 127.0.0.1:0 }\n", &config), "loaded");
  EXPECT_EQ(config.admin->address.port, 0);
}

TEST(ObservabilityConfig, AdminBadAddress) {
  EXPECT_EQ(load_with("admin: { address: \"[::1]:9901\" }\n"),
            "test.yaml:10:19: admin.address: invalid address '[::1]:9901': the admin server "
            "listens on IPv4 only (e.g. 0.0.0.0:9901 or 127.0.0.1:9901)");
  EXPECT_EQ(load_with("admin:\n  address: 127.0.0.1\n"),
            "test.yaml:11:12: admin.address: invalid address '127.0.0.1': missing port "
            "(expected host:port)");
  EXPECT_EQ(load_with("admin: { address: 127.0.0.1:99999 }\n"),
            "test.yaml:10:19: admin.address: invalid address '127.0.0.1:99999': port 99999 is "
            "out of range 0..65535");
  EXPECT_EQ(load_with("admin: { address: \"127.0.0.1:http\" }\n"),
            "test.yaml:10:19: admin.address: invalid address '127.0.0.1:http': port 'http' is "
            "not a number");
  EXPECT_EQ(load_with("admin: { port: 9901 }\n"),
            "test.yaml:10:10: admin: unknown key 'port'; allowed keys: address");
  EXPECT_EQ(load_with("admin: 9901\n"), "test.yaml:10:8: admin: expected a map, got '9901'");
}

// --- tracing -----------------------------------------------------------------------------------

TEST(ObservabilityConfig, TracingDefaults) {
  Config config;
  ASSERT_EQ(load_with("tracing: {}\n", &config), "loaded");
  ASSERT_TRUE(config.tracing.has_value());
  EXPECT_DOUBLE_EQ(config.tracing->sample_rate, 0.01);
  EXPECT_EQ(config.tracing->zipkin_url, "");
  EXPECT_EQ(config.tracing->service_name, "skiff");
  EXPECT_EQ(config.tracing->max_queue, 10000u);
  EXPECT_EQ(config.tracing->pos.line, 10);
}

TEST(ObservabilityConfig, TracingEveryKey) {
  Config config;
  ASSERT_EQ(load_with(R"(tracing:
  sample_rate: 0.25
  zipkin_url: http://127.0.0.1:9411/api/v2/spans
  service_name: frontend-sidecar
  max_queue: 500
)",
                      &config),
            "loaded");
  ASSERT_TRUE(config.tracing.has_value());
  EXPECT_DOUBLE_EQ(config.tracing->sample_rate, 0.25);
  EXPECT_EQ(config.tracing->zipkin_url, "http://127.0.0.1:9411/api/v2/spans");
  EXPECT_EQ(config.tracing->service_name, "frontend-sidecar");
  EXPECT_EQ(config.tracing->max_queue, 500u);

  // The bounds themselves, and a host name with the default port.
  ASSERT_EQ(load_with("tracing: { sample_rate: 0 }\n", &config), "loaded");
  EXPECT_DOUBLE_EQ(config.tracing->sample_rate, 0.0);
  ASSERT_EQ(load_with("tracing: { sample_rate: 1 }\n", &config), "loaded");
  EXPECT_DOUBLE_EQ(config.tracing->sample_rate, 1.0);
  ASSERT_EQ(load_with("tracing: { zipkin_url: \"http://zipkin.example/api/v2/spans\" }\n", &config),
            "loaded");
  EXPECT_EQ(config.tracing->zipkin_url, "http://zipkin.example/api/v2/spans");
}

TEST(ObservabilityConfig, TracingSampleRateOutOfRange) {
  EXPECT_EQ(load_with("tracing:\n  sample_rate: 1.5\n"),
            "test.yaml:11:16: tracing.sample_rate: 1.5 is out of range 0..1");
  EXPECT_EQ(load_with("tracing: { sample_rate: -0.1 }\n"),
            "test.yaml:10:25: tracing.sample_rate: -0.1 is out of range 0..1");
  EXPECT_EQ(load_with("tracing: { sample_rate: \"0.5\" }\n"),
            "test.yaml:10:25: tracing.sample_rate: expected a number, got the quoted string "
            "\"0.5\"");
}

TEST(ObservabilityConfig, TracingZipkinUrlNeedsHttp) {
  EXPECT_EQ(load_with("tracing:\n  zipkin_url: 127.0.0.1:9411/api/v2/spans\n"),
            "test.yaml:11:15: tracing.zipkin_url: invalid URL '127.0.0.1:9411/api/v2/spans': "
            "expected http://host:port/path (Zipkin's is http://HOST:9411/api/v2/spans)");
  EXPECT_EQ(load_with("tracing: { zipkin_url: \"ftp://zipkin/api/v2/spans\" }\n"),
            "test.yaml:10:24: tracing.zipkin_url: invalid URL 'ftp://zipkin/api/v2/spans': "
            "expected http://host:port/path (Zipkin's is http://HOST:9411/api/v2/spans)");
  EXPECT_EQ(load_with("tracing: { zipkin_url: \"http:///api/v2/spans\" }\n"),
            "test.yaml:10:24: tracing.zipkin_url: no host: expected http://host:port/path");
}

// The exporter speaks plain HTTP only (civetweb's client verifies no certificate), and would
// not send credentials: both are refused rather than accepted and silently not honoured.
TEST(ObservabilityConfig, TracingZipkinUrlWithoutHttpsOrCredentials) {
  EXPECT_EQ(load_with("tracing: { zipkin_url: \"https://zipkin.example:443/api/v2/spans\" }\n"),
            "test.yaml:10:24: tracing.zipkin_url: https is not supported: spans are sent over "
            "plain HTTP, to a collector in the pod or on the node (Zipkin's is "
            "http://HOST:9411/api/v2/spans)");
  // The password is not echoed, even with an '@' in it.
  const std::string error =
      load_with("tracing: { zipkin_url: \"http://user:p@ss@127.0.0.1:9411/api/v2/spans\" }\n");
  EXPECT_EQ(error,
            "test.yaml:10:24: tracing.zipkin_url: credentials in the URL are not supported (they "
            "would not be sent)");
  EXPECT_EQ(error.find("p@ss"), std::string::npos);
  // An '@' in the path is no credential.
  EXPECT_EQ(load_with("tracing: { zipkin_url: \"http://127.0.0.1:9411/spans@v2\" }\n"), "loaded");
}

TEST(ObservabilityConfig, TracingEmptyServiceName) {
  EXPECT_EQ(load_with("tracing:\n  service_name: \"\"\n"),
            "test.yaml:11:17: tracing.service_name: must not be empty");
}

TEST(ObservabilityConfig, TracingMaxQueueRange) {
  EXPECT_EQ(load_with("tracing: { max_queue: 0 }\n"),
            "test.yaml:10:23: tracing.max_queue: 0 is out of range 1..10000000");
}

TEST(ObservabilityConfig, TracingUnknownKey) {
  EXPECT_EQ(load_with("tracing:\n  sample_rate: 1\n  zipkin: http://127.0.0.1:9411/api/v2/spans\n"),
            "test.yaml:12:3: tracing: unknown key 'zipkin'; allowed keys: sample_rate, "
            "zipkin_url, service_name, max_queue");
  // A near miss gets a hint.
  EXPECT_EQ(load_with("tracing: { sample_ratio: 1 }\n"),
            "test.yaml:10:12: tracing: unknown key 'sample_ratio' (did you mean 'sample_rate'?); "
            "allowed keys: sample_rate, zipkin_url, service_name, max_queue");
}

// --- access_log --------------------------------------------------------------------------------

TEST(ObservabilityConfig, AccessLogDefaults) {
  Config config;
  ASSERT_EQ(load_with("access_log: {}\n", &config), "loaded");
  ASSERT_TRUE(config.access_log.has_value());
  EXPECT_EQ(config.access_log->path, "-");
  EXPECT_DOUBLE_EQ(config.access_log->sample_rate, 1.0);
  EXPECT_EQ(config.access_log->pos.line, 10);
}

TEST(ObservabilityConfig, AccessLogEveryKey) {
  Config config;
  ASSERT_EQ(
      load_with("access_log:\n  path: /var/log/skiff/access.log\n  sample_rate: 0.5\n", &config),
      "loaded");
  ASSERT_TRUE(config.access_log.has_value());
  EXPECT_EQ(config.access_log->path, "/var/log/skiff/access.log");
  EXPECT_DOUBLE_EQ(config.access_log->sample_rate, 0.5);
}

TEST(ObservabilityConfig, AccessLogBadValues) {
  EXPECT_EQ(load_with("access_log:\n  path: \"\"\n"),
            "test.yaml:11:9: access_log.path: must not be empty (use \"-\" for stdout)");
  EXPECT_EQ(load_with("access_log: { sample_rate: 2 }\n"),
            "test.yaml:10:28: access_log.sample_rate: 2 is out of range 0..1");
  EXPECT_EQ(load_with("access_log: { file: /tmp/x }\n"),
            "test.yaml:10:15: access_log: unknown key 'file'; allowed keys: path, sample_rate");
}

}  // namespace
}  // namespace skiff::config
