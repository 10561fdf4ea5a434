// Tests for the config's TLS keys (listener tls, cluster tls) and route allow lists: what parses,
// and the exact "file:line:col: message" of every kind of mistake.
#include <gtest/gtest.h>

#include <string>

#include "config/config.h"

namespace skiff::config {
namespace {

std::string error_of(const std::string& yaml) {
  auto config = load_string(yaml, "test.yaml");
  return config ? "loaded" : config.error().to_string();
}

TEST(ConfigTls, FullMeshConfigParses) {
  const std::string yaml = R"(listeners:
  - name: inbound
    address: 0.0.0.0:15443
    tls:
      cert: certs/users.crt
      key: certs/users.key
      client_ca: certs/ca.crt
    routes:
      - match: { service: user.UserService, method: DeleteUser }
        cluster: local_app
        allow: [ "spiffe://mesh.local/ns/default/sa/admin" ]
      - match: {}
        cluster: local_app
        allow:
          - "spiffe://mesh.local/ns/default/*"
          - spiffe://other.mesh/ns/x/sa/y
  - name: public
    address: 0.0.0.0:443
    tls: { cert: a.crt, key: a.key, client_ca: ca.crt, require_client_cert: false }
    routes:
      - match: {}
        cluster: local_app
clusters:
  - name: local_app
    endpoints: [ "127.0.0.1:8080" ]
  - name: users
    endpoints: [ "users:15443" ]
    tls:
      ca: certs/ca.crt
      cert: certs/frontend.crt
      key: certs/frontend.key
      identities: [ "spiffe://mesh.local/ns/default/sa/users", "spiffe://mesh.local/ns/canary/*" ]
  - name: external
    endpoints: [ "api.example.com:443" ]
    tls: { server_name: api.example.com }
)";
  auto loaded = load_string(yaml, "mesh.yaml");
  ASSERT_TRUE(loaded) << loaded.error().to_string();
  const Config& c = *loaded;

  ASSERT_TRUE(c.listeners[0].tls);
  const ListenerTls& in = *c.listeners[0].tls;
  EXPECT_EQ(in.cert.path, "certs/users.crt");
  EXPECT_EQ(in.cert.pos.line, 5);
  EXPECT_EQ(in.cert.pos.col, 13);
  EXPECT_EQ(in.key.path, "certs/users.key");
  EXPECT_EQ(in.client_ca.path, "certs/ca.crt");
  EXPECT_TRUE(in.require_client_cert);
  EXPECT_EQ(c.listeners[0].routes[0].allow,
            std::vector<std::string>{"spiffe://mesh.local/ns/default/sa/admin"});
  EXPECT_EQ(c.listeners[0].routes[1].allow,
            (std::vector<std::string>{"spiffe://mesh.local/ns/default/*",
                                      "spiffe://other.mesh/ns/x/sa/y"}));
  ASSERT_TRUE(c.listeners[1].tls);
  EXPECT_FALSE(c.listeners[1].tls->require_client_cert);
  EXPECT_TRUE(c.listeners[1].routes[0].allow.empty());

  EXPECT_FALSE(c.clusters[0].tls);
  ASSERT_TRUE(c.clusters[1].tls);
  const ClusterTls& users = *c.clusters[1].tls;
  EXPECT_EQ(users.ca.path, "certs/ca.crt");
  EXPECT_EQ(users.cert.path, "certs/frontend.crt");
  EXPECT_EQ(users.key.path, "certs/frontend.key");
  EXPECT_EQ(users.key.pos.line, 31);
  EXPECT_TRUE(users.server_name.empty());
  EXPECT_EQ(users.identities.size(), 2u);
  ASSERT_TRUE(c.clusters[2].tls);
  EXPECT_EQ(c.clusters[2].tls->server_name, "api.example.com");
  EXPECT_TRUE(c.clusters[2].tls->ca.path.empty());
  EXPECT_TRUE(c.clusters[2].tls->cert.path.empty());
}

TEST(ConfigTls, PlaintextByDefault) {
  auto loaded = load_string(R"(listeners:
  - name: outbound
    address: 127.0.0.1:15001
    routes:
      - match: {}
        cluster: users
clusters:
  - name: users
    endpoints: [ "127.0.0.1:50051" ]
)",
                            "t.yaml");
  ASSERT_TRUE(loaded);
  EXPECT_FALSE(loaded->listeners[0].tls);
  EXPECT_FALSE(loaded->clusters[0].tls);
  EXPECT_TRUE(loaded->listeners[0].routes[0].allow.empty());
}

// A listener with |tls| (a flow map) and one route with |route_extra| lines.
std::string listener_with(const std::string& tls, const std::string& route_extra = "") {
  return "listeners:\n"
         "  - name: inbound\n"
         "    address: 127.0.0.1:0\n" +
         (tls.empty() ? std::string() : "    tls: " + tls + "\n") +
         "    routes:\n"
         "      - match: {}\n"
         "        cluster: app\n" +
         route_extra +
         "clusters:\n"
         "  - name: app\n"
         "    endpoints: [ \"127.0.0.1:8080\" ]\n";
}

TEST(ConfigTls, ListenerErrors) {
  EXPECT_EQ(error_of(listener_with("{ cert: a.crt }")),
            "test.yaml:4:10: listeners[0].tls: missing required key 'key'");
  EXPECT_EQ(error_of(listener_with("{ key: a.key }")),
            "test.yaml:4:10: listeners[0].tls: missing required key 'cert'");
  EXPECT_EQ(error_of(listener_with("{ cert: a.crt, key: a.key, clientca: ca.crt }")),
            "test.yaml:4:37: listeners[0].tls: unknown key 'clientca' (did you mean "
            "'client_ca'?); allowed keys: cert, key, client_ca, require_client_cert");
  EXPECT_EQ(error_of(listener_with("{ cert: \"\", key: a.key }")),
            "test.yaml:4:18: listeners[0].tls.cert: must not be empty");
  EXPECT_EQ(error_of(listener_with("{ cert: [a], key: a.key }")),
            "test.yaml:4:18: listeners[0].tls.cert: expected a string, got a list");
  EXPECT_EQ(error_of(listener_with("{ cert: a.crt, key: a.key, require_client_cert: true }")),
            "test.yaml:4:58: listeners[0].tls.require_client_cert: needs 'client_ca' (the CAs "
            "that client certificates are verified against)");
  EXPECT_EQ(error_of(listener_with(
                "{ cert: a.crt, key: a.key, client_ca: c, require_client_cert: \"no\" }")),
            "test.yaml:4:72: listeners[0].tls.require_client_cert: expected true or false, got "
            "the quoted string \"no\"");
  EXPECT_EQ(error_of(listener_with("yes")),
            "test.yaml:4:10: listeners[0].tls: expected a map, got 'yes'");
}

TEST(ConfigTls, AllowErrors) {
  const std::string mtls = "{ cert: a.crt, key: a.key, client_ca: ca.crt }";
  EXPECT_EQ(error_of(listener_with(mtls, "        allow: []\n")),
            "test.yaml:8:16: listeners[0].routes[0].allow: at least one identity is required "
            "(leave the key out to allow any)");
  EXPECT_EQ(error_of(listener_with(mtls, "        allow: spiffe://mesh.local/x\n")),
            "test.yaml:8:16: listeners[0].routes[0].allow: expected a list, got "
            "'spiffe://mesh.local/x'");
  EXPECT_EQ(
      error_of(listener_with(mtls, "        allow: [ \"spiffe://mesh.local/*\", frontend ]\n")),
      "test.yaml:8:43: listeners[0].routes[0].allow[1]: 'frontend' is not a SPIFFE ID "
      "(expected spiffe://trust-domain/path)");
  EXPECT_EQ(error_of(listener_with(mtls, "        allow: [ \"spiffe://mesh.local/ns/*/sa/x\" ]\n")),
            "test.yaml:8:18: listeners[0].routes[0].allow[0]: 'spiffe://mesh.local/ns/*/sa/x': "
            "'*' is allowed only as the whole last path segment");
  EXPECT_EQ(error_of(listener_with(mtls, "        allow: [ \"spiffe://Mesh/x\" ]\n")),
            "test.yaml:8:18: listeners[0].routes[0].allow[0]: 'spiffe://Mesh/x': the trust "
            "domain may contain only a-z 0-9 . - _ (found 'M')");
  // Without client certificates nobody has an identity: an allow list could never pass.
  EXPECT_EQ(error_of(listener_with("", "        allow: [ \"*\" ]\n")),
            "test.yaml:7:16: listeners[0].routes[0].allow: needs a listener with "
            "'tls.client_ca': without client certificates no caller has an identity to allow");
  EXPECT_EQ(error_of(listener_with("{ cert: a.crt, key: a.key }", "        allow: [ \"*\" ]\n")),
            "test.yaml:8:16: listeners[0].routes[0].allow: needs a listener with "
            "'tls.client_ca': without client certificates no caller has an identity to allow");
  EXPECT_EQ(error_of(listener_with(mtls, "        allow: [ \"*\" ]\n")), "loaded");
}

// A cluster with |tls| (a flow map).
std::string cluster_with(const std::string& tls) {
  return "listeners:\n"
         "  - name: outbound\n"
         "    address: 127.0.0.1:0\n"
         "    routes:\n"
         "      - match: {}\n"
         "        cluster: users\n"
         "clusters:\n"
         "  - name: users\n"
         "    endpoints: [ \"127.0.0.1:15443\" ]\n"
         "    tls: " +
         tls + "\n";
}

TEST(ConfigTls, ClusterErrors) {
  EXPECT_EQ(error_of(cluster_with("{ ca: ca.crt }")),
            "test.yaml:10:10: clusters[0].tls: set 'identities' (the SPIFFE identities a mesh "
            "upstream may present) or 'server_name' (the DNS name in a non-mesh upstream's "
            "certificate); without either, any certificate from the CA would be accepted");
  EXPECT_EQ(error_of(cluster_with("{ ca: ca.crt, cert: f.crt, identities: [ \"*\" ] }")),
            "test.yaml:10:30: clusters[0].tls.cert: needs 'key' too (the private key of this "
            "client certificate)");
  EXPECT_EQ(error_of(cluster_with("{ ca: ca.crt, key: f.key, identities: [ \"*\" ] }")),
            "test.yaml:10:29: clusters[0].tls.key: needs 'cert' too (the client certificate of "
            "this key)");
  EXPECT_EQ(error_of(cluster_with("{ ca: ca.crt, identities: [] }")),
            "test.yaml:10:36: clusters[0].tls.identities: at least one identity is required "
            "(leave the key out to allow any)");
  EXPECT_EQ(error_of(cluster_with("{ ca: ca.crt, identities: [ \"spiffe://mesh.local\" ] }")),
            "test.yaml:10:38: clusters[0].tls.identities[0]: 'spiffe://mesh.local': a workload "
            "identity needs a path (spiffe://mesh.local/...)");
  EXPECT_EQ(error_of(cluster_with("{ server_name: \"https://api.example.com\" }")),
            "test.yaml:10:25: clusters[0].tls.server_name: invalid server name "
            "'https://api.example.com': expected a DNS name such as users.example.com");
  EXPECT_EQ(error_of(cluster_with("{ server_name: api.example.com, sni: x }")),
            "test.yaml:10:42: clusters[0].tls: unknown key 'sni'; allowed keys: ca, cert, key, "
            "server_name, identities");
  EXPECT_EQ(error_of(cluster_with("{ server_name: api.example.com }")), "loaded");
  EXPECT_EQ(error_of(cluster_with("{ ca: c, identities: [ \"spiffe://mesh.local/*\" ] }")),
            "loaded");
}

}  // namespace
}  // namespace skiff::config
