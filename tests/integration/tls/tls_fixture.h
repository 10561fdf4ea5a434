// Test helpers for mTLS through the real skiff binary: certificates made with OpenSSL at run time
// (a CA, good and deliberately bad leaves), a raw OpenSSL client that reports exactly how a
// handshake ended and whether any HTTP/2 byte followed, a raw OpenSSL server that counts the
// application bytes it receives, and a grpc++ server that requires client certificates.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "testing.grpc.pb.h"

namespace skiff::it::tls {

inline const std::string kTrustDomain = "mesh.local";
inline const std::string kFrontendId = "spiffe://mesh.local/ns/default/sa/frontend";
inline const std::string kUsersId = "spiffe://mesh.local/ns/default/sa/users";
inline const std::string kAdminId = "spiffe://mesh.local/ns/default/sa/admin";
inline const std::string kOtherId = "spiffe://mesh.local/ns/default/sa/other";

struct Pem {
  std::string cert;
  std::string key;
};

struct LeafSpec {
  std::string cn = "leaf";
  std::vector<std::string> uris;  // URI SANs
  std::vector<std::string> dns;   // DNS SANs
  bool ca = false;                // basicConstraints CA:TRUE (an invalid SVID leaf)
  long not_before_s = -3600;      // relative to now
  long not_after_s = 30L * 86400;
  uint64_t serial = 0;  // 0 = a fresh random serial
};

// A CA made at run time (EC P-256, self-signed), issuing leaves with EC P-256 keys.
class TestCa {
 public:
  explicit TestCa(const std::string& cn = "skiff test CA");
  ~TestCa();
  TestCa(const TestCa&) = delete;
  TestCa& operator=(const TestCa&) = delete;

  const std::string& cert_pem() const { return pem_.cert; }
  Pem issue(const LeafSpec& spec) const;
  // A well-formed X509-SVID for |spiffe_id| with a DNS SAN "localhost" and |serial|.
  Pem svid(const std::string& spiffe_id, uint64_t serial = 0) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  Pem pem_;
};

// The certificate's serial number as upper-case hex without leading zeros ("1A2B").
std::string serial_hex(const std::string& cert_pem);

// Writes |pem| as |dir|/|name|.crt and |name|.key; returns the two paths.
std::pair<std::string, std::string> write_pem(const TempDir& dir, const std::string& name,
                                              const Pem& pem);
// Writes |content| to |path| atomically (temporary file in the same directory, then rename).
void replace_file(const std::string& path, const std::string& content);

// How one TLS connection attempt to a listener ended.
struct ProbeOptions {
  std::string ca_file;    // verify the server's chain; empty = do not verify
  std::string cert_file;  // client certificate; empty = none
  std::string key_file;
  std::vector<std::string> alpn = {"h2"};  // empty = no ALPN extension at all
  int min_version = 0;                     // e.g. TLS1_VERSION; 0 = OpenSSL's default
  int max_version = 0;
  std::string sni = "localhost";
  Millis read_for = Millis(5000);  // how long to wait for the server's first bytes or alert
};

struct ProbeResult {
  bool connected = false;     // TCP connected
  bool handshake_ok = false;  // the client finished its side of the handshake
  std::string handshake_error;
  std::string read_error;   // after the handshake: alert, reset or EOF before any byte
  size_t app_bytes = 0;     // application bytes received (skiff sends SETTINGS first)
  std::string alpn;         // negotiated ALPN
  std::string version;      // "TLSv1.3"
  std::string peer_serial;  // serial_hex of the server's certificate
  std::string peer_uri;     // the server certificate's first URI SAN

  // Refused: no HTTP/2 byte was exchanged, and the server ended the attempt (during the
  // handshake, or right after it with an alert, as TLS 1.3 does for client certificates).
  bool refused() const {
    return connected && app_bytes == 0 && (!handshake_ok || !read_error.empty());
  }
  // The server answered with HTTP/2 (its SETTINGS frame) after a good handshake.
  bool accepted() const { return handshake_ok && app_bytes > 0; }
  std::string describe() const;
};

// One TLS connection to 127.0.0.1:|port|: handshake, then read until the first bytes, an
// error or |options.read_for|. Sends no application data.
ProbeResult probe_tls(int port, const ProbeOptions& options);

// Connects twice; the second connection offers the first one's session (ticket or session ID).
// Returns whether the server resumed it; a description of the attempt goes to |detail|.
bool session_resumed(int port, const ProbeOptions& options, std::string* detail);

// A long-lived TLS connection speaking just enough HTTP/2 (preface, SETTINGS, PING) to show
// that the connection still works, e.g. across a certificate rotation.
class RawH2Connection {
 public:
  RawH2Connection(int port, const ProbeOptions& options);
  ~RawH2Connection();
  RawH2Connection(const RawH2Connection&) = delete;
  RawH2Connection& operator=(const RawH2Connection&) = delete;

  bool handshake_ok() const { return ssl_ != nullptr; }
  const std::string& error() const { return error_; }
  const std::string& peer_serial() const { return peer_serial_; }
  // Sends a PING (after the connection preface, the first time) and waits for its ACK.
  bool ping(Millis timeout);

 private:
  bool write_all(const std::string& bytes);
  void* ctx_ = nullptr;  // SSL_CTX*
  void* ssl_ = nullptr;  // SSL*
  int fd_ = -1;
  bool preface_sent_ = false;
  uint8_t ping_counter_ = 0;
  std::string error_;
  std::string peer_serial_;
  std::string in_;  // received, not yet parsed
};

// A TLS server on 127.0.0.1:0 (ALPN h2) that counts handshakes and the application bytes it
// receives; it never sends application data. Stands in for an upstream that must not see any
// request byte.
class RawTlsServer {
 public:
  RawTlsServer(const std::string& cert_file, const std::string& key_file,
               const std::string& client_ca_file = "");
  ~RawTlsServer();
  RawTlsServer(const RawTlsServer&) = delete;
  RawTlsServer& operator=(const RawTlsServer&) = delete;

  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int connections() const { return connections_.load(); }
  int handshakes() const { return handshakes_.load(); }
  size_t app_bytes() const { return app_bytes_.load(); }
  // Waits until at least |n| connections were accepted and fully handled or dropped.
  bool wait_for_connections(int n, Millis timeout) const;

 private:
  void run();

  void* ctx_ = nullptr;  // SSL_CTX*
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::atomic<int> done_{0};
  std::atomic<int> handshakes_{0};
  std::atomic<size_t> app_bytes_{0};
  std::thread thread_;
};

// A grpc++ TestService upstream on 127.0.0.1:0 that requires and verifies client certificates
// against |ca_pem|. Unary echoes the payload; each call's peer_spiffe_id and metadata are kept.
class TlsGrpcServer {
 public:
  // |max_connection_age| > 0: connections are closed (GOAWAY) after that long, so clients
  // reconnect — and handshake again.
  TlsGrpcServer(const std::string& ca_pem, const Pem& server,
                Millis max_connection_age = Millis(0));
  ~TlsGrpcServer();

  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int calls() const;
  std::vector<std::string> peer_ids() const;  // per call: the client certificate's SPIFFE ID
  std::vector<std::multimap<std::string, std::string>> metadata() const;

 private:
  class Service;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

// A grpc++ channel over TLS (client certificate |client| unless empty), verifying the server
// against |ca_pem| and expecting the DNS name "localhost" in its certificate.
std::shared_ptr<grpc::Channel> make_tls_channel(const std::string& address,
                                                const std::string& ca_pem, const Pem& client);

// The SKIFF_SOURCE_DIR compile definition: the repo, for certs/gen-dev-certs.sh.
const char* source_dir();

}  // namespace skiff::it::tls
