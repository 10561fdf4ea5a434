// mTLS through the real skiff binary: TLS termination (grpc++ TLS client -> skiff -> plaintext
// server), TLS origination (plaintext client -> skiff -> grpc++ server requiring client
// certificates), the two-sidecar chain with the verified identity header at the server, server
// identity checks on upstreams, and per-route authorization.
#include <gtest/gtest.h>

#include <sstream>

#include "harness.h"
#include "tls_fixture.h"

namespace skiff::it::tls {
namespace {

using grpc::StatusCode;
using skiff::testing::Request;
using skiff::testing::Response;
using skiff::testing::TestService;

constexpr Millis kCallDeadline(20'000);
constexpr const char* kIdentityHeader = "x-skiff-peer-identity";

// A CA and the usual SVIDs, written to a temporary directory.
struct Certs {
  TempDir dir;
  TestCa ca;
  std::string ca_file;
  Pem frontend, users, admin;
  std::pair<std::string, std::string> frontend_files, users_files, admin_files;

  Certs()
      : ca_file(dir.write("ca.crt", ca.cert_pem())),
        frontend(ca.svid(kFrontendId)),
        users(ca.svid(kUsersId)),
        admin(ca.svid(kAdminId)),
        frontend_files(write_pem(dir, "frontend", frontend)),
        users_files(write_pem(dir, "users", users)),
        admin_files(write_pem(dir, "admin", admin)) {}
};

// An inbound (mTLS) listener named "inbound" with |routes_yaml| (indented list items) and a
// cluster "backend" at |backend|.
std::string inbound_yaml(const Certs& c, const std::string& backend,
                         const std::string& routes_yaml =
                             "      - match: {}\n"
                             "        cluster: backend\n",
                         const std::string& tls_extra = "") {
  std::ostringstream y;
  y << "workers: 2\n"
    << "listeners:\n"
    << "  - name: inbound\n"
    << "    address: 127.0.0.1:0\n"
    << "    tls:\n"
    << "      cert: " << c.users_files.first << "\n"
    << "      key: " << c.users_files.second << "\n"
    << "      client_ca: " << c.ca_file << "\n"
    << tls_extra << "    routes:\n"
    << routes_yaml << "clusters:\n"
    << "  - name: backend\n"
    << "    endpoints: [ \"" << backend << "\" ]\n";
  return y.str();
}

// A plaintext "outbound" listener forwarding everything to cluster "backend" at |backend| over
// TLS with |tls_yaml| (the lines of the cluster's tls map).
std::string outbound_yaml(const std::string& backend, const std::string& tls_yaml) {
  std::ostringstream y;
  y << "workers: 2\n"
    << "listeners:\n"
    << "  - name: outbound\n"
    << "    address: 127.0.0.1:0\n"
    << "    routes:\n"
    << "      - match: {}\n"
    << "        cluster: backend\n"
    << "clusters:\n"
    << "  - name: backend\n"
    << "    endpoints: [ \"" << backend << "\" ]\n"
    << "    connect_timeout: 5s\n"
    << "    tls:\n"
    << tls_yaml;
  return y.str();
}

SkiffOptions listening(const std::string& listener) {
  SkiffOptions options;
  options.listeners = {listener};
  return options;
}

grpc::Status unary(TestService::Stub& stub, const std::string& payload, Response* resp,
                   const std::vector<std::pair<std::string, std::string>>& metadata = {}) {
  grpc::ClientContext ctx;
  ctx.set_deadline(in(kCallDeadline));
  for (const auto& [k, v] : metadata) ctx.AddMetadata(k, v);
  Request req;
  req.set_payload(payload);
  return stub.Unary(&ctx, req, resp);
}

std::vector<std::string> values(const std::multimap<std::string, std::string>& md,
                                const std::string& key) {
  std::vector<std::string> out;
  auto [b, e] = md.equal_range(key);
  for (auto it = b; it != e; ++it) out.push_back(it->second);
  return out;
}

TEST(InboundMtls, TlsClientToPlaintextServer_IdentityHeaderReplacesSpoofedOne) {
  Certs c;
  TestServer upstream;
  SkiffProcess skiff(inbound_yaml(c, upstream.address(),
                                  "      - match: {}\n"
                                  "        cluster: backend\n"
                                  "        allow: [ \"" +
                                      kFrontendId + "\" ]\n"),
                     listening("inbound"));
  auto stub =
      TestService::NewStub(make_tls_channel(skiff.address("inbound"), c.ca.cert_pem(), c.frontend));
  Response resp;
  // The client claims to be admin in the header; only the certificate counts.
  ASSERT_TRUE(is_ok(unary(*stub, "hello", &resp, {{kIdentityHeader, kAdminId}})));
  EXPECT_EQ(resp.payload(), "hello");
  ASSERT_EQ(upstream.calls(), 1);
  EXPECT_EQ(values(upstream.records()[0].metadata, kIdentityHeader),
            std::vector<std::string>{kFrontendId});
}

TEST(OutboundMtls, PlaintextClientToMtlsServer) {
  Certs c;
  TlsGrpcServer upstream(c.ca.cert_pem(), c.users);
  SkiffProcess skiff(
      outbound_yaml(upstream.address(), "      ca: " + c.ca_file + "\n" +
                                            "      cert: " + c.frontend_files.first + "\n" +
                                            "      key: " + c.frontend_files.second + "\n" +
                                            "      identities: [ \"" + kUsersId + "\" ]\n"),
      listening("outbound"));
  auto stub = TestService::NewStub(make_channel(skiff.address("outbound")));
  Response resp;
  ASSERT_TRUE(is_ok(unary(*stub, "over mTLS", &resp, {{kIdentityHeader, kAdminId}})));
  EXPECT_EQ(resp.payload(), "over mTLS");
  // The upstream verified skiff's client certificate; the plaintext caller had no identity,
  // so its spoofed header was dropped and none was added.
  ASSERT_EQ(upstream.peer_ids(), std::vector<std::string>{kFrontendId});
  EXPECT_TRUE(values(upstream.metadata()[0], kIdentityHeader).empty());
}

TEST(OutboundMtls, TrustDomainPatternAcceptsUpstream) {
  Certs c;
  TlsGrpcServer upstream(c.ca.cert_pem(), c.users);
  SkiffProcess skiff(
      outbound_yaml(upstream.address(), "      ca: " + c.ca_file + "\n" +
                                            "      cert: " + c.frontend_files.first + "\n" +
                                            "      key: " + c.frontend_files.second + "\n" +
                                            "      identities: [ \"spiffe://mesh.local/*\" ]\n"),
      listening("outbound"));
  auto stub = TestService::NewStub(make_channel(skiff.address("outbound")));
  Response resp;
  EXPECT_TRUE(is_ok(unary(*stub, "x", &resp)));
}

TEST(OutboundTls, DnsServerName) {
  Certs c;
  TlsGrpcServer upstream(c.ca.cert_pem(), c.users);  // DNS SAN "localhost"
  const std::string base = "      ca: " + c.ca_file + "\n" +
                           "      cert: " + c.frontend_files.first + "\n" +
                           "      key: " + c.frontend_files.second + "\n";
  {
    SkiffProcess skiff(outbound_yaml(upstream.address(), base + "      server_name: localhost\n"),
                       listening("outbound"));
    auto stub = TestService::NewStub(make_channel(skiff.address("outbound")));
    Response resp;
    EXPECT_TRUE(is_ok(unary(*stub, "x", &resp)));
  }
  SkiffProcess skiff(outbound_yaml(upstream.address(), base + "      server_name: users.example\n"),
                     listening("outbound"));
  auto stub = TestService::NewStub(make_channel(skiff.address("outbound")));
  Response resp;
  grpc::Status status = unary(*stub, "x", &resp);
  ASSERT_TRUE(has_code(status, StatusCode::UNAVAILABLE));
  EXPECT_NE(status.error_message().find("hostname mismatch"), std::string::npos)
      << describe(status);
  EXPECT_EQ(upstream.calls(), 1);  // only the first skiff's call
}

// Upstream presents a valid certificate from the right CA, but for another identity: the
// handshake is abandoned before skiff's Finished, so not one request byte reaches it.
TEST(OutboundMtls, UpstreamWrongIdentity_UnavailableAndNoRequestByte) {
  Certs c;
  Pem other = c.ca.svid(kOtherId);
  auto [other_cert, other_key] = write_pem(c.dir, "other", other);
  RawTlsServer upstream(other_cert, other_key, c.ca_file);
  SkiffProcess skiff(
      outbound_yaml(upstream.address(), "      ca: " + c.ca_file + "\n" +
                                            "      cert: " + c.frontend_files.first + "\n" +
                                            "      key: " + c.frontend_files.second + "\n" +
                                            "      identities: [ \"" + kUsersId + "\" ]\n"),
      listening("outbound"));
  auto stub = TestService::NewStub(make_channel(skiff.address("outbound")));
  Response resp;
  grpc::Status status = unary(*stub, "secret", &resp);
  ASSERT_TRUE(has_code(status, StatusCode::UNAVAILABLE));
  EXPECT_NE(status.error_message().find("server identity " + kOtherId +
                                        " does not match the expected [" + kUsersId + "]"),
            std::string::npos)
      << describe(status);
  ASSERT_TRUE(upstream.wait_for_connections(1, Millis(10'000)));
  EXPECT_EQ(upstream.handshakes(), 0);
  EXPECT_EQ(upstream.app_bytes(), 0u);
}

// The control for the test above: the same raw upstream with the expected identity completes
// the handshake and receives skiff's HTTP/2 connection preface.
TEST(OutboundMtls, RawUpstreamWithRightIdentityReceivesPreface) {
  Certs c;
  RawTlsServer upstream(c.users_files.first, c.users_files.second, c.ca_file);
  SkiffProcess skiff(
      outbound_yaml(upstream.address(), "      ca: " + c.ca_file + "\n" +
                                            "      cert: " + c.frontend_files.first + "\n" +
                                            "      key: " + c.frontend_files.second + "\n" +
                                            "      identities: [ \"" + kUsersId + "\" ]\n"),
      listening("outbound"));
  auto stub = TestService::NewStub(make_channel(skiff.address("outbound")));
  grpc::ClientContext ctx;
  ctx.set_deadline(in(Millis(1500)));  // the raw upstream never answers
  Response resp;
  Request req;
  (void)stub->Unary(&ctx, req, &resp);
  const auto deadline = std::chrono::steady_clock::now() + Millis(10'000);
  while (upstream.app_bytes() < 24 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(Millis(10));  // polling an observable counter
  }
  EXPECT_GE(upstream.handshakes(), 1);
  EXPECT_GE(upstream.app_bytes(), 24u);  // at least "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
}

TEST(OutboundMtls, UpstreamFromUnknownCa_Unavailable) {
  Certs c;
  TestCa rogue("rogue CA");
  TlsGrpcServer upstream(c.ca.cert_pem(), rogue.svid(kUsersId));
  SkiffProcess skiff(
      outbound_yaml(upstream.address(), "      ca: " + c.ca_file + "\n" +
                                            "      cert: " + c.frontend_files.first + "\n" +
                                            "      key: " + c.frontend_files.second + "\n" +
                                            "      identities: [ \"" + kUsersId + "\" ]\n"),
      listening("outbound"));
  auto stub = TestService::NewStub(make_channel(skiff.address("outbound")));
  Response resp;
  grpc::Status status = unary(*stub, "x", &resp);
  ASSERT_TRUE(has_code(status, StatusCode::UNAVAILABLE));
  EXPECT_NE(status.error_message().find("server certificate rejected: unable to get local "
                                        "issuer certificate"),
            std::string::npos)
      << describe(status);
  EXPECT_EQ(upstream.calls(), 0);
}

TEST(InboundMtls, MethodNotAuthorized_PermissionDeniedNothingSentUpstream) {
  Certs c;
  TestServer upstream;
  Pem stranger = c.ca.svid("spiffe://other.mesh/ns/default/sa/frontend");
  SkiffProcess skiff(
      inbound_yaml(c, upstream.address(),
                   "      - match: { service: skiff.testing.TestService, method: Unary }\n"
                   "        cluster: backend\n"
                   "        allow: [ \"" +
                       kAdminId +
                       "\" ]\n"
                       "      - match: {}\n"
                       "        cluster: backend\n"
                       "        allow: [ \"spiffe://mesh.local/ns/default/*\" ]\n"),
      listening("inbound"));
  const std::string address = skiff.address("inbound");
  auto frontend = TestService::NewStub(make_tls_channel(address, c.ca.cert_pem(), c.frontend));
  Response resp;
  grpc::Status status = unary(*frontend, "x", &resp);
  ASSERT_TRUE(has_code(status, StatusCode::PERMISSION_DENIED));
  EXPECT_EQ(status.error_message(),
            "caller " + kFrontendId + " is not allowed to call /skiff.testing.TestService/Unary");
  EXPECT_EQ(upstream.calls(), 0);

  // Another method of the same service falls through to the namespace-wide route.
  grpc::ClientContext stream_ctx;
  stream_ctx.set_deadline(in(kCallDeadline));
  Request req;
  req.set_response_count(3);
  auto reader = frontend->ServerStream(&stream_ctx, req);
  int n = 0;
  while (reader->Read(&resp)) ++n;
  EXPECT_TRUE(is_ok(reader->Finish()));
  EXPECT_EQ(n, 3);

  auto admin = TestService::NewStub(make_tls_channel(address, c.ca.cert_pem(), c.admin));
  EXPECT_TRUE(is_ok(unary(*admin, "x", &resp)));

  // Same CA, other trust domain: no route lets it in.
  auto other = TestService::NewStub(make_tls_channel(address, c.ca.cert_pem(), stranger));
  grpc::ClientContext other_ctx;
  other_ctx.set_deadline(in(kCallDeadline));
  auto other_reader = other->ServerStream(&other_ctx, req);
  while (other_reader->Read(&resp)) {
  }
  grpc::Status other_status = other_reader->Finish();
  EXPECT_TRUE(has_code(other_status, StatusCode::PERMISSION_DENIED));
  EXPECT_EQ(upstream.calls(), 2);  // the frontend's stream and the admin's unary call
}

TEST(InboundTls, OptionalClientCertificate) {
  Certs c;
  TestServer upstream;
  SkiffProcess skiff(inbound_yaml(c, upstream.address(),
                                  "      - match: { service: skiff.testing.TestService, method: "
                                  "ServerStream }\n"
                                  "        cluster: backend\n"
                                  "        allow: [ \"*\" ]\n"
                                  "      - match: {}\n"
                                  "        cluster: backend\n",
                                  "      require_client_cert: false\n"),
                     listening("inbound"));
  // No client certificate: allowed where no allow list applies, denied where one does.
  auto anonymous =
      TestService::NewStub(make_tls_channel(skiff.address("inbound"), c.ca.cert_pem(), Pem{}));
  Response resp;
  ASSERT_TRUE(is_ok(unary(*anonymous, "x", &resp)));
  ASSERT_EQ(upstream.calls(), 1);
  EXPECT_TRUE(values(upstream.records()[0].metadata, kIdentityHeader).empty());
  grpc::ClientContext ctx;
  ctx.set_deadline(in(kCallDeadline));
  Request req;
  auto reader = anonymous->ServerStream(&ctx, req);
  while (reader->Read(&resp)) {
  }
  grpc::Status status = reader->Finish();
  ASSERT_TRUE(has_code(status, StatusCode::PERMISSION_DENIED));
  EXPECT_EQ(status.error_message(),
            "/skiff.testing.TestService/ServerStream requires a verified caller identity (mTLS)");
  // A certificate, when sent, is verified and becomes the identity.
  auto frontend =
      TestService::NewStub(make_tls_channel(skiff.address("inbound"), c.ca.cert_pem(), c.frontend));
  ASSERT_TRUE(is_ok(unary(*frontend, "y", &resp)));
  ASSERT_EQ(upstream.calls(), 2);
  EXPECT_EQ(values(upstream.records()[1].metadata, kIdentityHeader),
            std::vector<std::string>{kFrontendId});
}

TEST(PlaintextListener, StripsSpoofedIdentityHeader) {
  TestMesh mesh;
  auto client = mesh.server().skiff().client();
  Response resp;
  ASSERT_TRUE(is_ok(unary(*client, "x", &resp, {{kIdentityHeader, kAdminId}})));
  ASSERT_EQ(mesh.upstream().calls(), 1);
  EXPECT_TRUE(values(mesh.upstream().records()[0].metadata, kIdentityHeader).empty());
}

// The demo topology with certs/gen-dev-certs.sh: client -> skiff (frontend, h2c) -> mTLS ->
// skiff (users) -> server, which sees the frontend's verified identity and nothing else.
TEST(Mesh, TwoSidecarChain_IdentityHeaderAtServer) {
  TempDir dir;
  {
    Subprocess gen("gen-dev-certs",
                   {"/bin/bash", std::string(source_dir()) + "/certs/gen-dev-certs.sh", dir.path(),
                    "frontend", "users"});
    auto status = gen.wait_exit(Millis(30'000));
    ASSERT_TRUE(status && status->exited() && status->code() == 0)
        << (status ? status->to_string() : "still running") << "\n"
        << gen.err();
  }
  const std::string d = dir.path() + "/";
  TestServer app;
  SkiffProcess users(
      "workers: 2\n"
      "listeners:\n"
      "  - name: inbound\n"
      "    address: 127.0.0.1:0\n"
      "    tls: { cert: " +
          d + "users.crt, key: " + d + "users.key, client_ca: " + d +
          "ca.crt }\n"
          "    routes:\n"
          "      - match: { service: skiff.testing.TestService }\n"
          "        cluster: local_app\n"
          "        allow: [ \"" +
          kFrontendId +
          "\" ]\n"
          "clusters:\n"
          "  - name: local_app\n"
          "    endpoints: [ \"" +
          app.address() + "\" ]\n",
      listening("inbound"));
  SkiffProcess frontend(
      "workers: 2\n"
      "listeners:\n"
      "  - name: outbound\n"
      "    address: 127.0.0.1:0\n"
      "    routes:\n"
      "      - match: {}\n"
      "        cluster: users\n"
      "clusters:\n"
      "  - name: users\n"
      "    endpoints: [ \"" +
          users.address("inbound") +
          "\" ]\n"
          "    tls:\n"
          "      ca: " +
          d +
          "ca.crt\n"
          "      cert: " +
          d +
          "frontend.crt\n"
          "      key: " +
          d +
          "frontend.key\n"
          "      identities: [ \"" +
          kUsersId + "\" ]\n",
      listening("outbound"));
  auto stub = TestService::NewStub(make_channel(frontend.address("outbound")));
  // A large message crosses both hops in full-size TLS records, both ways.
  const std::string big = pattern_bytes(4 << 20);
  Response resp;
  ASSERT_TRUE(is_ok(unary(*stub, big, &resp, {{kIdentityHeader, kAdminId}})));
  EXPECT_EQ(resp.payload(), big);

  grpc::ClientContext ctx;
  ctx.set_deadline(in(kCallDeadline));
  Request req;
  req.set_response_count(50);
  req.set_payload("s");
  auto reader = stub->ServerStream(&ctx, req);
  int n = 0;
  while (reader->Read(&resp)) ++n;
  ASSERT_TRUE(is_ok(reader->Finish()));
  EXPECT_EQ(n, 50);

  ASSERT_EQ(app.calls(), 2);
  for (const CallRecord& record : app.records()) {
    EXPECT_EQ(values(record.metadata, kIdentityHeader), std::vector<std::string>{kFrontendId})
        << record.method;
  }
  // Calls the inbound sidecar does not route are not authorized to reach the app at all.
  auto other = skiff::testing::OtherService::NewStub(make_channel(frontend.address("outbound")));
  grpc::ClientContext other_ctx;
  other_ctx.set_deadline(in(kCallDeadline));
  EXPECT_TRUE(has_code(other->Ping(&other_ctx, req, &resp), StatusCode::UNIMPLEMENTED));
  EXPECT_EQ(app.calls(), 2);
}

}  // namespace
}  // namespace skiff::it::tls
