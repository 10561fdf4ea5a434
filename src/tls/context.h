// TlsContext: one immutable OpenSSL SSL_CTX built from certificate, key and CA files — for a
// listener (server) or a cluster (client) — plus ContextSlot, the cell through which workers
// pick up a rotated context for new handshakes.
//
// Both sides: TLS 1.2 minimum (1.3 preferred), ECDHE + AEAD suites only, ALPN "h2" required, no
// compression, no renegotiation, no session resumption (so a changed trust configuration can
// never be bypassed by resuming an old session).
#pragma once

#include <openssl/types.h>

#include <atomic>
#include <expected>
#include <memory>
#include <string>
#include <vector>

namespace skiff::tls {

struct ServerSettings {
  std::string cert_file;       // PEM: leaf first, then intermediates
  std::string key_file;        // PEM private key matching the leaf
  std::string client_ca_file;  // PEM CA bundle; empty = no client certificates
  // With client_ca_file: a client without a certificate fails the handshake. Without it the
  // certificate is optional (and verified when sent).
  bool require_client_cert = true;
};

struct ClientSettings {
  std::string ca_file;    // PEM CA bundle for the server's chain; empty = system trust store
  std::string cert_file;  // our client certificate; empty = none
  std::string key_file;
  // SNI. Without |identities| it is also the DNS name the server certificate must carry.
  std::string server_name;
  // Identity patterns (base/spiffe.h); when set, the server's certificate must be an X509-SVID
  // whose identity matches one of them.
  std::vector<std::string> identities;
};

// Which input a construction error is about, so config errors can point at the right key.
enum class SettingsFile { kCert, kKey, kCa };

struct ContextError {
  SettingsFile file;
  std::string message;
};

// The verification outcome of one connection: TlsTransport attaches it to its SSL
// (SSL_set_app_data) and the context's callbacks fill it in during the handshake.
struct HandshakeState {
  std::string failure;   // why verification or negotiation failed; empty if it did not
  std::string identity;  // the peer's verified SPIFFE identity; empty if none
};

class TlsContext {
 public:
  static std::expected<std::shared_ptr<const TlsContext>, ContextError> make_server(
      const ServerSettings& settings);
  static std::expected<std::shared_ptr<const TlsContext>, ContextError> make_client(
      const ClientSettings& settings);

  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  SSL_CTX* native() const { return ctx_; }
  bool is_server() const { return server_; }
  const ClientSettings& client_settings() const { return client_; }
  // Our own certificate for logs ("serial ..., spiffe://..., not after ..."); empty if none.
  const std::string& certificate_description() const { return certificate_; }

 private:
  TlsContext() = default;

  SSL_CTX* ctx_ = nullptr;
  bool server_ = false;
  ClientSettings client_;
  std::string certificate_;
};

// The current context of one listener or cluster. Workers call get() once per new connection
// (accept or dial); the main thread calls set() when the files changed. Connections keep the
// context they started with.
class ContextSlot {
 public:
  explicit ContextSlot(std::shared_ptr<const TlsContext> initial) : current_(std::move(initial)) {}

  std::shared_ptr<const TlsContext> get() const { return current_.load(std::memory_order_acquire); }
  void set(std::shared_ptr<const TlsContext> next) {
    current_.store(std::move(next), std::memory_order_release);
  }

 private:
  std::atomic<std::shared_ptr<const TlsContext>> current_;
};

}  // namespace skiff::tls
