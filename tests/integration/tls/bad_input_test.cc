// Every bad TLS client the issue lists, against a real skiff mTLS listener: each handshake is
// refused (during it, or for TLS 1.3 client certificates with an alert right after the
// client's Finished) and not one HTTP/2 byte comes back; nothing reaches the upstream.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sstream>

#include "harness.h"
#include "tls_fixture.h"

namespace skiff::it::tls {
namespace {

class InboundMtlsBadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_file_ = dir_.write("ca.crt", ca_.cert_pem());
    auto [cert, key] = write_pem(dir_, "users", ca_.svid(kUsersId));
    std::tie(frontend_cert_, frontend_key_) = write_pem(dir_, "frontend", ca_.svid(kFrontendId));
    std::ostringstream y;
    y << "workers: 2\n"
      << "listeners:\n"
      << "  - name: inbound\n"
      << "    address: 127.0.0.1:0\n"
      << "    tls: { cert: " << cert << ", key: " << key << ", client_ca: " << ca_file_ << " }\n"
      << "    routes:\n"
      << "      - match: {}\n"
      << "        cluster: backend\n"
      << "clusters:\n"
      << "  - name: backend\n"
      << "    endpoints: [ \"" << upstream_.address() << "\" ]\n";
    SkiffOptions options;
    options.listeners = {"inbound"};
    options.log_level = "debug";  // every refusal is logged with its reason at debug level
    skiff_ = std::make_unique<SkiffProcess>(y.str(), options);
  }

  void TearDown() override {
    // Whatever was refused, skiff still serves a good client, and nothing reached the upstream.
    ProbeResult good = probe(good_options());
    EXPECT_TRUE(good.accepted()) << good.describe();
    EXPECT_EQ(upstream_.calls(), 0);
  }

  ProbeOptions good_options() const {
    ProbeOptions o;
    o.ca_file = ca_file_;
    o.cert_file = frontend_cert_;
    o.key_file = frontend_key_;
    return o;
  }

  // Options presenting a client certificate issued by |ca| per |spec|.
  ProbeOptions with_client(const TestCa& ca, const LeafSpec& spec, const std::string& name) {
    ProbeOptions o = good_options();
    std::tie(o.cert_file, o.key_file) = write_pem(dir_, name, ca.issue(spec));
    return o;
  }

  ProbeResult probe(const ProbeOptions& o) { return probe_tls(skiff_->port("inbound"), o); }

  // skiff logged why it refused a connection.
  ::testing::AssertionResult refused_because(const std::string& reason) {
    const std::string needle = "refused: TLS handshake failed: ";
    bool found = skiff_->process().wait_for_stderr(
        [&](const std::string& err) {
          for (size_t at = err.find(needle); at != std::string::npos;
               at = err.find(needle, at + 1)) {
            size_t eol = err.find('\n', at);
            if (err.substr(at, eol - at).find(reason) != std::string::npos) return true;
          }
          return false;
        },
        Millis(10'000));
    if (found) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "no refusal because of \"" << reason << "\" in:\n"
                                         << skiff_->process().err();
  }

  TempDir dir_;
  TestCa ca_;
  std::string ca_file_, frontend_cert_, frontend_key_;
  TestServer upstream_;
  std::unique_ptr<SkiffProcess> skiff_;
};

LeafSpec spiffe_leaf(const std::vector<std::string>& uris) {
  LeafSpec spec;
  spec.uris = uris;
  spec.dns = {"localhost"};
  return spec;
}

TEST_F(InboundMtlsBadInput, GoodClientGetsSettings) {
  ProbeResult r = probe(good_options());
  ASSERT_TRUE(r.accepted()) << r.describe();
  EXPECT_EQ(r.alpn, "h2");
  EXPECT_EQ(r.version, "TLSv1.3");
  EXPECT_EQ(r.peer_uri, kUsersId);
}

TEST_F(InboundMtlsBadInput, Tls12GoodClientGetsSettings) {
  ProbeOptions o = good_options();
  o.max_version = TLS1_2_VERSION;
  ProbeResult r = probe(o);
  ASSERT_TRUE(r.accepted()) << r.describe();
  EXPECT_EQ(r.version, "TLSv1.2");
}

TEST_F(InboundMtlsBadInput, NoClientCertificate) {
  ProbeOptions o = good_options();
  o.cert_file.clear();
  o.key_file.clear();
  ProbeResult r = probe(o);
  EXPECT_TRUE(r.refused()) << r.describe();
  EXPECT_NE((r.handshake_error + r.read_error).find("certificate required"), std::string::npos)
      << r.describe();
  EXPECT_TRUE(refused_because("peer did not return a certificate"));
}

TEST_F(InboundMtlsBadInput, NoClientCertificateTls12) {
  ProbeOptions o = good_options();
  o.cert_file.clear();
  o.key_file.clear();
  o.max_version = TLS1_2_VERSION;
  ProbeResult r = probe(o);
  EXPECT_TRUE(r.refused()) << r.describe();
  EXPECT_FALSE(r.handshake_ok) << r.describe();
}

TEST_F(InboundMtlsBadInput, UnknownCa) {
  TestCa rogue("rogue CA");
  ProbeResult r = probe(with_client(rogue, spiffe_leaf({kFrontendId}), "rogue"));
  EXPECT_TRUE(r.refused()) << r.describe();
  EXPECT_NE((r.handshake_error + r.read_error).find("unknown ca"), std::string::npos)
      << r.describe();
  EXPECT_TRUE(
      refused_because("client certificate rejected: unable to get local issuer certificate"));
}

TEST_F(InboundMtlsBadInput, ExpiredCertificate) {
  LeafSpec spec = spiffe_leaf({kFrontendId});
  spec.not_before_s = -2 * 86400;
  spec.not_after_s = -86400;
  ProbeResult r = probe(with_client(ca_, spec, "expired"));
  EXPECT_TRUE(r.refused()) << r.describe();
  EXPECT_NE((r.handshake_error + r.read_error).find("certificate expired"), std::string::npos)
      << r.describe();
  EXPECT_TRUE(refused_because("client certificate rejected: certificate has expired"));
}

TEST_F(InboundMtlsBadInput, CaFlaggedLeaf) {
  LeafSpec spec = spiffe_leaf({kFrontendId});
  spec.ca = true;
  ProbeResult r = probe(with_client(ca_, spec, "ca-leaf"));
  EXPECT_TRUE(r.refused()) << r.describe();
  EXPECT_TRUE(refused_because(
      "client certificate rejected: the leaf certificate is a CA (basicConstraints CA:TRUE)"));
}

TEST_F(InboundMtlsBadInput, TwoUriSans) {
  ProbeResult r = probe(with_client(ca_, spiffe_leaf({kFrontendId, kAdminId}), "two-uris"));
  EXPECT_TRUE(r.refused()) << r.describe();
  EXPECT_TRUE(refused_because(
      "client certificate rejected: the certificate has 2 URI SANs; an X509-SVID has exactly one"));
}

TEST_F(InboundMtlsBadInput, NonSpiffeUri) {
  ProbeResult r =
      probe(with_client(ca_, spiffe_leaf({"https://mesh.local/ns/default/sa/frontend"}), "https"));
  EXPECT_TRUE(r.refused()) << r.describe();
  EXPECT_TRUE(
      refused_because("client certificate rejected: URI SAN "
                      "'https://mesh.local/ns/default/sa/frontend' is not a SPIFFE ID"));
}

TEST_F(InboundMtlsBadInput, NoUriSan) {
  ProbeResult r = probe(with_client(ca_, spiffe_leaf({}), "dns-only"));
  EXPECT_TRUE(r.refused()) << r.describe();
  EXPECT_TRUE(refused_because(
      "client certificate rejected: the certificate has no URI SAN (no SPIFFE identity)"));
}

TEST_F(InboundMtlsBadInput, Tls10ClientHello) {
  ProbeOptions o = good_options();
  o.min_version = TLS1_VERSION;
  o.max_version = TLS1_VERSION;
  ProbeResult r = probe(o);
  EXPECT_TRUE(r.refused()) << r.describe();
  EXPECT_FALSE(r.handshake_ok);
  EXPECT_NE(r.handshake_error.find("protocol version"), std::string::npos) << r.describe();
  EXPECT_TRUE(refused_because("unsupported protocol"));
}

TEST_F(InboundMtlsBadInput, Tls11ClientHello) {
  ProbeOptions o = good_options();
  o.min_version = TLS1_1_VERSION;
  o.max_version = TLS1_1_VERSION;
  ProbeResult r = probe(o);
  EXPECT_TRUE(r.refused()) << r.describe();
  EXPECT_FALSE(r.handshake_ok);
  EXPECT_NE(r.handshake_error.find("protocol version"), std::string::npos) << r.describe();
}

TEST_F(InboundMtlsBadInput, NoAlpn) {
  ProbeOptions o = good_options();
  o.alpn.clear();
  ProbeResult r = probe(o);
  EXPECT_TRUE(r.refused()) << r.describe();
  EXPECT_FALSE(r.handshake_ok);
  EXPECT_NE(r.handshake_error.find("no application protocol"), std::string::npos) << r.describe();
  EXPECT_TRUE(refused_because("the client offered no ALPN protocols (h2 is required)"));
}

TEST_F(InboundMtlsBadInput, AlpnWithoutH2) {
  ProbeOptions o = good_options();
  o.alpn = {"http/1.1", "spdy/3"};
  ProbeResult r = probe(o);
  EXPECT_TRUE(r.refused()) << r.describe();
  EXPECT_FALSE(r.handshake_ok);
  EXPECT_NE(r.handshake_error.find("no application protocol"), std::string::npos) << r.describe();
  EXPECT_TRUE(refused_because("the client's ALPN list does not offer h2"));
}

TEST_F(InboundMtlsBadInput, GoodClientSpeaksHttp2) {
  RawH2Connection conn(skiff_->port("inbound"), good_options());
  ASSERT_TRUE(conn.handshake_ok()) << conn.error();
  EXPECT_TRUE(conn.ping(Millis(10'000))) << conn.error();
}

TEST_F(InboundMtlsBadInput, PlaintextHttp2Preface) {
  // An h2c client on the TLS port: at most a TLS alert record comes back, never HTTP/2.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(skiff_->port("inbound")));
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string preface = std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") +
                              std::string("\x00\x00\x00\x04\x00\x00\x00\x00\x00", 9);
  ASSERT_EQ(::send(fd, preface.data(), preface.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(preface.size()));
  std::string received;
  char buf[4096];
  ssize_t n = 0;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) received.append(buf, static_cast<size_t>(n));
  ::close(fd);
  EXPECT_EQ(n, 0) << "skiff should close the connection";  // not a receive timeout
  if (!received.empty()) {
    EXPECT_EQ(received[0], '\x15') << "only a TLS alert record may come back";
  }
}

// Resumption would skip certificate verification against the current trust configuration
// (Envoy CVE-2022-21654): skiff issues no tickets and keeps no session cache.
TEST_F(InboundMtlsBadInput, NoSessionResumption) {
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    ProbeOptions o = good_options();
    o.max_version = version;
    std::string detail;
    EXPECT_FALSE(session_resumed(skiff_->port("inbound"), o, &detail)) << detail;
    EXPECT_NE(detail.find("second: handshake ok"), std::string::npos) << detail;
  }
}

TEST_F(InboundMtlsBadInput, StalledHandshakeIsClosedAfterTenSeconds) {
  // Half a ClientHello, then silence: the handshake deadline (10 s) closes the connection.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  timeval tv{30, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(skiff_->port("inbound")));
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string partial("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11);
  ASSERT_EQ(::send(fd, partial.data(), partial.size(), MSG_NOSIGNAL), 11);
  const auto start = std::chrono::steady_clock::now();
  char buf[256];
  ssize_t n = 0;
  std::string received;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) received.append(buf, static_cast<size_t>(n));
  const auto waited = std::chrono::steady_clock::now() - start;
  ::close(fd);
  EXPECT_EQ(n, 0) << "expected the server to close the connection";
  EXPECT_GE(waited, std::chrono::seconds(9));
  EXPECT_LT(waited, std::chrono::seconds(25));
  if (!received.empty()) {
    EXPECT_EQ(received[0], '\x15') << "only a TLS alert record may come back";
  }
}

// A connection still in its TLS handshake has nothing in flight: a drain closes it at once
// instead of waiting out the 10 s handshake timeout (drain_timeout here is 20 s).
TEST(InboundTlsDrain, AStalledHandshakeDoesNotHoldTheDrain) {
  TempDir dir;
  TestCa ca;
  auto [cert, key] = write_pem(dir, "users", ca.svid(kUsersId));
  std::ostringstream y;
  y << "workers: 1\n"
    << "drain_timeout: 20s\n"
    << "listeners:\n"
    << "  - name: inbound\n"
    << "    address: 127.0.0.1:0\n"
    << "    tls: { cert: " << cert << ", key: " << key << " }\n"
    << "    routes:\n"
    << "      - match: {}\n"
    << "        cluster: backend\n"
    << "clusters:\n"
    << "  - name: backend\n"
    << "    endpoints: [ \"127.0.0.1:1\" ]\n";
  SkiffOptions options;
  options.listeners = {"inbound"};
  options.log_level = "debug";
  SkiffProcess skiff(y.str(), options);
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(skiff.port("inbound")));
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string partial("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11);
  ASSERT_EQ(::send(fd, partial.data(), partial.size(), MSG_NOSIGNAL), 11);
  // skiff has the connection (its handshake has begun) before the signal.
  ASSERT_TRUE(skiff.process().wait_for_stderr(
      [](const std::string& err) { return err.find(" accepted") != std::string::npos; },
      Millis(10'000)))
      << skiff.process().err();
  const auto start = std::chrono::steady_clock::now();
  ExitStatus exit = skiff.terminate(Millis(30'000));
  const auto took = std::chrono::steady_clock::now() - start;
  ::close(fd);
  EXPECT_EQ(exit.code(), 0) << exit.to_string();
  EXPECT_LT(took, std::chrono::seconds(5)) << "the drain waited for the handshake";
  EXPECT_NE(skiff.process().err().find("draining during the TLS handshake"), std::string::npos)
      << skiff.process().err();
}

}  // namespace
}  // namespace skiff::it::tls
