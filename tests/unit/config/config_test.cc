// Tests for config::load_*: a full config parses to the expected values, and every kind of bad
// config is rejected with an exact "file:line:col: message".
#include "config/config.h"

#include <gtest/gtest.h>

#include <string>

namespace skiff::config {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

// The full error text for |yaml|, or "loaded" if it is valid.
std::string error_of(const std::string& yaml) {
  auto config = load_string(yaml, "test.yaml");
  return config ? "loaded" : config.error().to_string();
}

// A valid config that bad configs below mostly change in one place.
constexpr const char* kMinimal = R"(listeners:
  - name: outbound
    address: 127.0.0.1:15001
    routes:
      - match: {}
        cluster: users
clusters:
  - name: users
    endpoints: [ "127.0.0.1:50051" ]
)";

TEST(ConfigLoad, FullConfigParsesEveryKey) {
  const std::string yaml = R"(# every key, most of them away from the default
workers: 8
drain_timeout: 2m
http2:
  max_concurrent_streams: 250
  initial_stream_window_bytes: 65535
  initial_connection_window_bytes: 2147483647
  max_header_list_bytes: 16777216
  max_header_count: 10000
  max_frame_bytes: 16777215
  stream_flush_timeout: 90s
listeners:
  - name: outbound
    address: 127.0.0.1:15001
    routes:
      - match: { service: user.UserService, method: GetUser, authority: Users.Local }
        cluster: users
        timeout: 250ms
      - match:
          service: user.UserService
        cluster: users
        timeout: 1h
      - match: {}
        cluster: other
  - name: v6.listener-2
    address: "[::1]:0"
    routes:
      - match: {}
        cluster: other
clusters:
  - name: users
    endpoints: [ "10.0.0.1:50051", "users-1.users.svc:443" ]
    load_balancing: round_robin
    connect_timeout: 1500ms
    max_connections_per_endpoint: 16
    idle_connection_timeout: 2s
    max_requests_per_connection: 1000
  - name: other
    endpoints:
      - "[fe80::1]:8080"
)";
  auto loaded = load_string(yaml, "full.yaml");
  ASSERT_TRUE(loaded) << loaded.error().to_string();
  const Config& config = *loaded;

  EXPECT_EQ(config.source, "full.yaml");
  EXPECT_EQ(config.workers, 8u);
  EXPECT_EQ(config.drain_timeout, minutes(2));
  EXPECT_EQ(config.http2.max_concurrent_streams, 250u);
  EXPECT_EQ(config.http2.initial_stream_window_bytes, 65535u);
  EXPECT_EQ(config.http2.initial_connection_window_bytes, 2147483647u);
  EXPECT_EQ(config.http2.max_header_list_bytes, 16u * 1024 * 1024);
  EXPECT_EQ(config.http2.max_header_count, 10000u);
  EXPECT_EQ(config.http2.max_frame_bytes, 16777215u);
  EXPECT_EQ(config.http2.stream_flush_timeout, seconds(90));

  ASSERT_EQ(config.listeners.size(), 2u);
  const Listener& outbound = config.listeners[0];
  EXPECT_EQ(outbound.name, "outbound");
  EXPECT_EQ(outbound.address.host, "127.0.0.1");
  EXPECT_EQ(outbound.address.port, 15001);
  EXPECT_EQ(outbound.address.pos.line, 14);
  EXPECT_EQ(outbound.address.pos.col, 14);
  EXPECT_EQ(outbound.pos.line, 13);
  EXPECT_EQ(outbound.pos.col, 5);
  ASSERT_EQ(outbound.routes.size(), 3u);

  const Route& get_user = outbound.routes[0];
  EXPECT_EQ(get_user.match.service, "user.UserService");
  EXPECT_EQ(get_user.match.method, "GetUser");
  EXPECT_EQ(get_user.match.authority, "Users.Local");  // kept as written; matching ignores case
  EXPECT_EQ(get_user.cluster, "users");
  EXPECT_EQ(get_user.timeout, milliseconds(250));
  EXPECT_EQ(get_user.pos.line, 16);
  EXPECT_EQ(get_user.pos.col, 9);

  const Route& service = outbound.routes[1];
  EXPECT_EQ(service.match.service, "user.UserService");
  EXPECT_EQ(service.match.method, "");
  EXPECT_EQ(service.match.authority, "");
  EXPECT_EQ(service.timeout, hours(1));

  const Route& catch_all = outbound.routes[2];
  EXPECT_EQ(catch_all.match.service, "");
  EXPECT_EQ(catch_all.match.method, "");
  EXPECT_EQ(catch_all.cluster, "other");
  EXPECT_FALSE(catch_all.timeout.has_value());

  const Listener& v6 = config.listeners[1];
  EXPECT_EQ(v6.name, "v6.listener-2");
  EXPECT_EQ(v6.address.host, "::1");
  EXPECT_EQ(v6.address.port, 0);

  ASSERT_EQ(config.clusters.size(), 2u);
  const Cluster& users = config.clusters[0];
  EXPECT_EQ(users.name, "users");
  ASSERT_EQ(users.endpoints.size(), 2u);
  EXPECT_EQ(users.endpoints[0].host, "10.0.0.1");
  EXPECT_EQ(users.endpoints[0].port, 50051);
  EXPECT_EQ(users.endpoints[1].host, "users-1.users.svc");
  EXPECT_EQ(users.endpoints[1].port, 443);
  EXPECT_EQ(users.load_balancing, LoadBalancing::kRoundRobin);
  EXPECT_EQ(users.connect_timeout, milliseconds(1500));
  EXPECT_EQ(users.max_connections_per_endpoint, 16u);
  EXPECT_EQ(users.idle_connection_timeout, seconds(2));
  EXPECT_EQ(users.max_requests_per_connection, 1000u);

  const Cluster& other = config.clusters[1];
  ASSERT_EQ(other.endpoints.size(), 1u);
  EXPECT_EQ(other.endpoints[0].host, "fe80::1");
  EXPECT_EQ(other.endpoints[0].port, 8080);
  EXPECT_EQ(other.endpoints[0].pos.line, 40);
  EXPECT_EQ(other.endpoints[0].pos.col, 9);
}

TEST(ConfigLoad, MinimalConfigGetsDefaults) {
  auto loaded = load_string(kMinimal, "min.yaml");
  ASSERT_TRUE(loaded) << loaded.error().to_string();
  const Config& config = *loaded;
  EXPECT_EQ(config.workers, 0u);  // auto
  EXPECT_EQ(config.drain_timeout, seconds(5));
  EXPECT_EQ(config.http2.max_concurrent_streams, 100u);
  EXPECT_EQ(config.http2.initial_stream_window_bytes, 256u * 1024);
  EXPECT_EQ(config.http2.initial_connection_window_bytes, 1024u * 1024);
  EXPECT_EQ(config.http2.max_header_list_bytes, 60u * 1024);
  EXPECT_EQ(config.http2.max_header_count, 100u);
  EXPECT_EQ(config.http2.max_frame_bytes, 16u * 1024);
  EXPECT_EQ(config.http2.stream_flush_timeout, seconds(60));
  ASSERT_EQ(config.clusters.size(), 1u);
  EXPECT_EQ(config.clusters[0].load_balancing, LoadBalancing::kRoundRobin);
  EXPECT_EQ(config.clusters[0].connect_timeout, seconds(1));
  EXPECT_EQ(config.clusters[0].max_connections_per_endpoint, 4u);
  EXPECT_EQ(config.clusters[0].idle_connection_timeout, seconds(30));
  EXPECT_EQ(config.clusters[0].max_requests_per_connection, std::nullopt);
  ASSERT_EQ(config.listeners.size(), 1u);
  ASSERT_EQ(config.listeners[0].routes.size(), 1u);
  EXPECT_FALSE(config.listeners[0].routes[0].timeout.has_value());
}

TEST(ConfigLoad, WorkersAutoAndRouteBeforeItsCluster) {
  EXPECT_EQ(load_string(std::string("workers: auto\n") + kMinimal, "t.yaml")->workers, 0u);
  EXPECT_EQ(load_string(std::string("workers: 1024\n") + kMinimal, "t.yaml")->workers, 1024u);
}

TEST(ConfigLoad, DurationUnits) {
  const auto drain = [](const std::string& duration) {
    auto config = load_string("drain_timeout: " + duration + "\n" + kMinimal, "t.yaml");
    return config ? config->drain_timeout : milliseconds(-1);
  };
  EXPECT_EQ(drain("0s"), milliseconds(0));
  EXPECT_EQ(drain("250ms"), milliseconds(250));
  EXPECT_EQ(drain("5s"), seconds(5));
  EXPECT_EQ(drain("\"5s\""), seconds(5));
  EXPECT_EQ(drain("2m"), minutes(2));
  EXPECT_EQ(drain("876000h"), hours(876000));
}

TEST(ConfigLoad, ExampleConfigsLoad) {
  for (const char* name : {"/config/skiff.yaml", "/config/demo.yaml"}) {
    const std::string path = std::string(SKIFF_SOURCE_DIR) + name;
    auto config = load_file(path);
    ASSERT_TRUE(config) << config.error().to_string();
    EXPECT_EQ(config->source, path);
    ASSERT_EQ(config->listeners.size(), 1u);
    const Listener& outbound = config->listeners[0];
    EXPECT_EQ(outbound.name, "outbound");
    EXPECT_EQ(outbound.address.host, "127.0.0.1");
    EXPECT_EQ(outbound.address.port, 15001);
    ASSERT_EQ(outbound.routes.size(), 3u);
    EXPECT_EQ(outbound.routes[0].match.service, "user.UserService");
    EXPECT_EQ(outbound.routes[0].match.method, "GetUser");
    EXPECT_EQ(outbound.routes[0].timeout, seconds(2));
    EXPECT_EQ(outbound.routes[1].match.service, "user.UserService");
    EXPECT_EQ(outbound.routes[1].match.method, "");
    EXPECT_EQ(outbound.routes[2].match.service, "");
    ASSERT_EQ(config->clusters.size(), 1u);
    EXPECT_EQ(config->clusters[0].name, "users");
    ASSERT_EQ(config->clusters[0].endpoints.size(), 1u);
    EXPECT_EQ(config->clusters[0].endpoints[0].host, "127.0.0.1");
  }
  const auto skiff = load_file(std::string(SKIFF_SOURCE_DIR) + "/config/skiff.yaml");
  EXPECT_EQ(skiff->clusters[0].endpoints[0].port, 50051);
  EXPECT_FALSE(skiff->clusters[0].tls);
  // The demo's frontend sidecar calls the users sidecar over mTLS.
  const auto demo = load_file(std::string(SKIFF_SOURCE_DIR) + "/config/demo.yaml");
  EXPECT_EQ(demo->workers, 1u);
  EXPECT_EQ(demo->clusters[0].endpoints[0].port, 15443);
  ASSERT_TRUE(demo->clusters[0].tls);
  EXPECT_EQ(demo->clusters[0].tls->cert.path, "certs/dev/frontend.crt");
  EXPECT_EQ(demo->clusters[0].tls->identities,
            std::vector<std::string>{"spiffe://mesh.local/ns/default/sa/users"});
}

TEST(ConfigLoad, DemoUsersSidecarConfigLoads) {
  const auto users = load_file(std::string(SKIFF_SOURCE_DIR) + "/config/demo-users.yaml");
  ASSERT_TRUE(users) << users.error().to_string();
  ASSERT_EQ(users->listeners.size(), 1u);
  const Listener& inbound = users->listeners[0];
  EXPECT_EQ(inbound.name, "inbound");
  EXPECT_EQ(inbound.address.port, 15443);
  ASSERT_TRUE(inbound.tls);
  EXPECT_EQ(inbound.tls->client_ca.path, "certs/dev/ca.crt");
  EXPECT_TRUE(inbound.tls->require_client_cert);
  ASSERT_EQ(inbound.routes.size(), 1u);
  EXPECT_EQ(inbound.routes[0].allow,
            std::vector<std::string>{"spiffe://mesh.local/ns/default/sa/frontend"});
  EXPECT_EQ(users->clusters[0].endpoints[0].port, 50051);
}

TEST(ConfigError, UnreadableFile) {
  auto config = load_file("/nonexistent/skiff.yaml");
  ASSERT_FALSE(config);
  EXPECT_EQ(config.error().file, "/nonexistent/skiff.yaml");
  EXPECT_EQ(config.error().line, 0);
  EXPECT_EQ(config.error().col, 0);
  EXPECT_EQ(config.error().to_string(),
            "/nonexistent/skiff.yaml: cannot read file: No such file or directory");
}

TEST(ConfigError, ToStringIsFileLineCol) {
  EXPECT_EQ((ConfigError{"a.yaml", 3, 7, "bad"}).to_string(), "a.yaml:3:7: bad");
}

TEST(ConfigError, UnknownTopLevelKey) {
  EXPECT_EQ(error_of(std::string(kMinimal) + "metrics:\n  address: 127.0.0.1:9901\n"),
            "test.yaml:10:1: unknown key 'metrics'; allowed keys: workers, drain_timeout, http2, "
            "admin, tracing, access_log, listeners, clusters");
}

TEST(ConfigError, UnknownKeySuggestsTheClosestOne) {
  EXPECT_EQ(error_of(R"(listeners:
  - name: outbound
    adress: 127.0.0.1:15001
)"),
            "test.yaml:3:5: listeners[0]: unknown key 'adress' (did you mean 'address'?); "
            "allowed keys: name, address, tls, routes");
}

TEST(ConfigError, UnknownKeyInMatch) {
  EXPECT_EQ(error_of(R"(listeners:
  - name: outbound
    address: 127.0.0.1:15001
    routes:
      - match: { service: a.B, path: /a.B/C }
        cluster: users
)"),
            "test.yaml:5:32: listeners[0].routes[0].match: unknown key 'path'; allowed keys: "
            "service, method, authority");
}

TEST(ConfigError, DuplicateKey) {
  EXPECT_EQ(error_of("workers: 2\nworkers: 3\n" + std::string(kMinimal)),
            "test.yaml:2:1: duplicate key 'workers'");
}

TEST(ConfigError, WrongTypes) {
  EXPECT_EQ(error_of("http2: [ 1 ]\n" + std::string(kMinimal)),
            "test.yaml:1:8: http2: expected a map, got a list");
  EXPECT_EQ(error_of("listeners: outbound\n"),
            "test.yaml:1:12: listeners: expected a list, got 'outbound'");
  EXPECT_EQ(error_of(R"(listeners:
  - name: { first: a }
)"),
            "test.yaml:2:11: listeners[0].name: expected a string, got a map");
  EXPECT_EQ(error_of("- listeners\n"), "test.yaml:1:1: expected a map, got a list");
}

TEST(ConfigError, IntegerGivenAsString) {
  EXPECT_EQ(error_of("http2:\n  max_frame_bytes: \"16384\"\n" + std::string(kMinimal)),
            "test.yaml:2:20: http2.max_frame_bytes: expected an integer, got the quoted string "
            "\"16384\"");
  EXPECT_EQ(error_of("workers: \"4\"\n" + std::string(kMinimal)),
            "test.yaml:1:10: workers: expected 'auto' or an integer, got the quoted string \"4\"");
  EXPECT_EQ(error_of("workers: 1.5\n" + std::string(kMinimal)),
            "test.yaml:1:10: workers: expected 'auto' or an integer, got '1.5'");
}

TEST(ConfigError, EmptyValueIsBlamedOnItsKey) {
  EXPECT_EQ(error_of("drain_timeout:\n" + std::string(kMinimal)),
            "test.yaml:1:1: drain_timeout: expected a duration such as 250ms or 5s, got an empty "
            "value");
}

TEST(ConfigError, BadDurations) {
  const auto drain = [](const std::string& duration) {
    return error_of("drain_timeout: " + duration + "\n" + kMinimal);
  };
  EXPECT_EQ(drain("5"),
            "test.yaml:1:16: drain_timeout: invalid duration '5': missing unit (ms, s, m or h)");
  EXPECT_EQ(drain("5x"),
            "test.yaml:1:16: drain_timeout: invalid duration '5x': unknown unit 'x' (use ms, s, "
            "m or h)");
  EXPECT_EQ(drain("5 s"),
            "test.yaml:1:16: drain_timeout: invalid duration '5 s': unknown unit ' s' (use ms, "
            "s, m or h)");
  EXPECT_EQ(drain("-5s"),
            "test.yaml:1:16: drain_timeout: invalid duration '-5s': must not be negative");
  EXPECT_EQ(drain("1.5s"),
            "test.yaml:1:16: drain_timeout: invalid duration '1.5s': fractions are not allowed; "
            "use a smaller unit (e.g. 1500ms)");
  EXPECT_EQ(drain("s"),
            "test.yaml:1:16: drain_timeout: invalid duration 's': expected an integer followed "
            "by ms, s, m or h (e.g. 250ms, 5s)");
  EXPECT_EQ(drain("876001h"),
            "test.yaml:1:16: drain_timeout: invalid duration '876001h': too large (at most "
            "876000h)");
  EXPECT_EQ(drain("99999999999999999999999ms"),
            "test.yaml:1:16: drain_timeout: invalid duration '99999999999999999999999ms': too "
            "large (at most 876000h)");
}

TEST(ConfigError, RouteTimeoutMustBePositive) {
  EXPECT_EQ(error_of(R"(listeners:
  - name: outbound
    address: 127.0.0.1:15001
    routes:
      - match: {}
        cluster: users
        timeout: 0ms
)"),
            "test.yaml:7:18: listeners[0].routes[0].timeout: must be greater than 0");
}

TEST(ConfigError, BadAddresses) {
  const auto address = [](const std::string& text) {
    return error_of("listeners:\n  - name: a\n    address: " + text + "\n");
  };
  EXPECT_EQ(address("localhost"),
            "test.yaml:3:14: listeners[0].address: invalid address 'localhost': missing port "
            "(expected host:port)");
  EXPECT_EQ(address("\":15001\""),
            "test.yaml:3:14: listeners[0].address: invalid address ':15001': empty host");
  EXPECT_EQ(address("::1:15001"),
            "test.yaml:3:14: listeners[0].address: invalid address '::1:15001': an IPv6 host "
            "must be in brackets, e.g. [::1]:8080");
  EXPECT_EQ(address("\"[::1:15001\""),
            "test.yaml:3:14: listeners[0].address: invalid address '[::1:15001': missing ']' "
            "after the IPv6 host");
  EXPECT_EQ(address("localhost:http"),
            "test.yaml:3:14: listeners[0].address: invalid address 'localhost:http': port "
            "'http' is not a number");
}

TEST(ConfigError, PortOutOfRange) {
  EXPECT_EQ(error_of("listeners:\n  - name: a\n    address: 127.0.0.1:65536\n"),
            "test.yaml:3:14: listeners[0].address: invalid address '127.0.0.1:65536': port "
            "65536 is out of range 0..65535");
  // Port 0 (ephemeral) is fine for a listener but not for an endpoint.
  EXPECT_EQ(error_of(R"(listeners:
  - name: outbound
    address: 127.0.0.1:0
    routes:
      - match: {}
        cluster: users
clusters:
  - name: users
    endpoints: [ "127.0.0.1:50051", "127.0.0.1:0" ]
)"),
            "test.yaml:9:37: clusters[0].endpoints[1]: invalid address '127.0.0.1:0': port 0 is "
            "out of range 1..65535");
}

TEST(ConfigError, DuplicateListenerName) {
  EXPECT_EQ(error_of(R"(listeners:
  - name: outbound
    address: 127.0.0.1:15001
    routes: [ { match: {}, cluster: users } ]
  - name: outbound
    address: 127.0.0.1:15002
    routes: [ { match: {}, cluster: users } ]
clusters:
  - name: users
    endpoints: [ "127.0.0.1:50051" ]
)"),
            "test.yaml:5:11: listeners[1].name: duplicate listener name 'outbound' (first at "
            "line 2)");
}

TEST(ConfigError, DuplicateListenerAddress) {
  EXPECT_EQ(error_of(R"(listeners:
  - name: a
    address: 127.0.0.1:15001
    routes: [ { match: {}, cluster: users } ]
  - name: b
    address: 127.0.0.1:15001
    routes: [ { match: {}, cluster: users } ]
clusters:
  - name: users
    endpoints: [ "127.0.0.1:50051" ]
)"),
            "test.yaml:6:14: listeners[1].address: address '127.0.0.1:15001' is already used "
            "by listener 'a' (line 3)");
}

TEST(ConfigError, DuplicateCluster) {
  EXPECT_EQ(error_of(std::string(kMinimal) + R"(  - name: users
    endpoints: [ "127.0.0.1:50052" ]
)"),
            "test.yaml:10:11: clusters[1].name: duplicate cluster name 'users' (first at line "
            "8)");
}

TEST(ConfigError, RouteToUndefinedCluster) {
  EXPECT_EQ(error_of(R"(listeners:
  - name: outbound
    address: 127.0.0.1:15001
    routes:
      - match: {}
        cluster: orders
clusters:
  - name: users
    endpoints: [ "127.0.0.1:50051" ]
  - name: billing
    endpoints: [ "127.0.0.1:50052" ]
)"),
            "test.yaml:6:18: listeners[0].routes[0].cluster: unknown cluster 'orders'; defined "
            "clusters: users, billing");
}

TEST(ConfigError, MethodWithoutService) {
  EXPECT_EQ(error_of(R"(listeners:
  - name: outbound
    address: 127.0.0.1:15001
    routes:
      - match: { method: GetUser }
        cluster: users
)"),
            "test.yaml:5:26: listeners[0].routes[0].match.method: a method match also needs "
            "'service'");
}

TEST(ConfigError, ServiceWithSlash) {
  EXPECT_EQ(error_of(R"(listeners:
  - name: outbound
    address: 127.0.0.1:15001
    routes:
      - match: { service: /user.UserService/GetUser }
        cluster: users
)"),
            "test.yaml:5:27: listeners[0].routes[0].match.service: '/user.UserService/GetUser' "
            "must not contain '/'");
}

TEST(ConfigError, EmptyListeners) {
  EXPECT_EQ(error_of("workers: 1\nlisteners: []\n"),
            "test.yaml:2:12: listeners: at least one listener is required");
}

TEST(ConfigError, EmptyRoutesAndEndpoints) {
  EXPECT_EQ(error_of("listeners:\n  - name: a\n    address: 127.0.0.1:1\n    routes: []\n"),
            "test.yaml:4:13: listeners[0].routes: at least one route is required");
  EXPECT_EQ(error_of(std::string(kMinimal) + "  - name: empty\n    endpoints: []\n"),
            "test.yaml:11:16: clusters[1].endpoints: at least one endpoint is required");
}

TEST(ConfigError, MissingRequiredKey) {
  EXPECT_EQ(error_of(R"(listeners:
  - name: outbound
    routes:
      - match: {}
        cluster: users
)"),
            "test.yaml:2:5: listeners[0]: missing required key 'address'");
  EXPECT_EQ(error_of("workers: 2\n"), "test.yaml:1:1: missing required key 'listeners'");
}

TEST(ConfigError, EmptyFile) {
  EXPECT_EQ(error_of(""), "test.yaml: the file is empty; a config needs 'listeners'");
}

TEST(ConfigError, YamlSyntaxError) {
  EXPECT_EQ(error_of("workers: 2\nlisteners: [ { name: a\n"),
            "test.yaml:3:1: invalid YAML: end of map flow not found");
  EXPECT_EQ(error_of("workers: 2\n  drain_timeout: 5s\n"),
            "test.yaml:2:16: invalid YAML: illegal map value");
}

TEST(ConfigError, MoreThanOneDocument) {
  EXPECT_EQ(error_of(std::string(kMinimal) + "---\nworkers: 2\n"),
            "test.yaml:11:1: expected one YAML document, found 2");
}

TEST(ConfigError, WorkersOutOfRange) {
  EXPECT_EQ(error_of("workers: 0\n" + std::string(kMinimal)),
            "test.yaml:1:10: workers: 0 is out of range 1..1024");
  EXPECT_EQ(error_of("workers: 1025\n" + std::string(kMinimal)),
            "test.yaml:1:10: workers: 1025 is out of range 1..1024");
}

TEST(ConfigError, Http2LimitOutOfRange) {
  EXPECT_EQ(error_of("http2:\n  initial_stream_window_bytes: 65534\n" + std::string(kMinimal)),
            "test.yaml:2:32: http2.initial_stream_window_bytes: 65534 is out of range "
            "65535..2147483647");
  EXPECT_EQ(error_of("http2:\n  max_frame_bytes: 16777216\n" + std::string(kMinimal)),
            "test.yaml:2:20: http2.max_frame_bytes: 16777216 is out of range 16384..16777215");
  EXPECT_EQ(error_of("http2:\n  stream_flush_timeout: 0s\n" + std::string(kMinimal)),
            "test.yaml:2:25: http2.stream_flush_timeout: must be greater than 0");
  EXPECT_EQ(
      error_of("http2:\n  max_concurrent_streams: 99999999999999999999\n" + std::string(kMinimal)),
      "test.yaml:2:27: http2.max_concurrent_streams: 99999999999999999999 is out of range "
      "1..2147483647");
}

TEST(ConfigError, BadClusterSettings) {
  EXPECT_EQ(error_of(std::string(kMinimal) + "    load_balancing: random\n"),
            "test.yaml:10:21: clusters[0].load_balancing: unknown load balancing policy "
            "'random'; allowed: round_robin, least_request, peak_ewma");
  EXPECT_EQ(error_of(std::string(kMinimal) + "    max_connections_per_endpoint: 0\n"),
            "test.yaml:10:35: clusters[0].max_connections_per_endpoint: 0 is out of range "
            "1..1024");
  EXPECT_EQ(error_of(std::string(kMinimal) + "    max_requests_per_connection: 1073741825\n"),
            "test.yaml:10:34: clusters[0].max_requests_per_connection: 1073741825 is out of "
            "range 1..1073741824");
  EXPECT_EQ(error_of(std::string(kMinimal) + "    connect_timeout: 0s\n"),
            "test.yaml:10:22: clusters[0].connect_timeout: must be greater than 0");
  EXPECT_EQ(error_of(std::string(kMinimal) + "    idle_connection_timeout: 0ms\n"),
            "test.yaml:10:30: clusters[0].idle_connection_timeout: must be greater than 0");
}

TEST(ConfigError, BadName) {
  EXPECT_EQ(error_of("listeners:\n  - name: \"out bound\"\n"),
            "test.yaml:2:11: listeners[0].name: invalid name 'out bound': use only letters, "
            "digits, '_', '.' and '-'");
}

}  // namespace
}  // namespace skiff::config
