// TLS test helpers: OpenSSL certificate factory, raw TLS client and server, grpc++ mTLS server.
#include "tls_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>

#ifndef SKIFF_SOURCE_DIR
#error "SKIFF_SOURCE_DIR must be defined (the repository root)"
#endif

namespace skiff::it::tls {
namespace {

using skiff::testing::Request;
using skiff::testing::Response;

std::string openssl_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "no OpenSSL error" : out;
}

[[noreturn]] void die(const std::string& what) {
  throw std::runtime_error(what + ": " + openssl_errors());
}

EVP_PKEY* new_key() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  if (key == nullptr) die("EVP_EC_gen");
  return key;
}

std::string to_pem(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(n));
  BIO_free(bio);
  return pem;
}

std::string to_pem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(n));
  BIO_free(bio);
  return pem;
}

void add_ext(X509* cert, X509V3_CTX* ctx, int nid, const std::string& value) {
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, ctx, nid, value.c_str());
  if (ext == nullptr) die("X509V3_EXT_conf_nid " + value);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

uint64_t random_serial() {
  uint64_t serial = 0;
  RAND_bytes(reinterpret_cast<unsigned char*>(&serial), sizeof serial);
  return (serial >> 2) | 1;  // positive, non-zero
}

// A certificate for |key| signed by |issuer_key| (|issuer| null: self-signed).
X509* make_cert(const LeafSpec& spec, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key) {
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set_uint64(X509_get_serialNumber(cert), spec.serial ? spec.serial : random_serial());
  X509_gmtime_adj(X509_getm_notBefore(cert), spec.not_before_s);
  X509_gmtime_adj(X509_getm_notAfter(cert), spec.not_after_s);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(spec.cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : name);
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer ? issuer : cert, cert, nullptr, nullptr, 0);
  add_ext(cert, &ctx, NID_basic_constraints, spec.ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  add_ext(cert, &ctx, NID_key_usage,
          spec.ca ? "critical,keyCertSign,cRLSign,digitalSignature" : "critical,digitalSignature");
  if (issuer != nullptr) add_ext(cert, &ctx, NID_ext_key_usage, "serverAuth,clientAuth");
  std::string san;
  for (const auto& uri : spec.uris) san += (san.empty() ? "" : ",") + std::string("URI:") + uri;
  for (const auto& dns : spec.dns) san += (san.empty() ? "" : ",") + std::string("DNS:") + dns;
  if (!san.empty()) add_ext(cert, &ctx, NID_subject_alt_name, san);
  add_ext(cert, &ctx, NID_subject_key_identifier, "hash");
  if (issuer != nullptr) add_ext(cert, &ctx, NID_authority_key_identifier, "keyid");
  if (X509_sign(cert, issuer_key, EVP_sha256()) == 0) die("X509_sign");
  return cert;
}

int loopback_socket(int port, Millis timeout) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  timeval tv{};
  tv.tv_sec = timeout.count() / 1000;
  tv.tv_usec = (timeout.count() % 1000) * 1000;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

std::string ssl_failure(SSL* ssl, int rc) {
  int error = SSL_get_error(ssl, rc);
  std::string what = openssl_errors();
  if (error == SSL_ERROR_ZERO_RETURN) return "close_notify";
  if (error == SSL_ERROR_SYSCALL) {
    return errno == 0 ? "EOF" : std::string("syscall: ") + std::strerror(errno);
  }
  return "SSL error " + std::to_string(error) + ": " + what;
}

int select_h2(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
              unsigned int inlen, void*) {
  static const unsigned char kH2[] = {2, 'h', '2'};
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kH2, sizeof kH2, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

// ---- certificates -------------------------------------------------------------------------

struct TestCa::Impl {
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
  ~Impl() {
    X509_free(cert);
    EVP_PKEY_free(key);
  }
};

TestCa::TestCa(const std::string& cn) : impl_(std::make_unique<Impl>()) {
  impl_->key = new_key();
  LeafSpec spec;
  spec.cn = cn;
  spec.ca = true;
  spec.not_after_s = 365L * 86400;
  impl_->cert = make_cert(spec, impl_->key, nullptr, impl_->key);
  pem_ = {to_pem(impl_->cert), to_pem(impl_->key)};
}

TestCa::~TestCa() = default;

Pem TestCa::issue(const LeafSpec& spec) const {
  EVP_PKEY* key = new_key();
  X509* cert = make_cert(spec, key, impl_->cert, impl_->key);
  Pem pem{to_pem(cert), to_pem(key)};
  X509_free(cert);
  EVP_PKEY_free(key);
  return pem;
}

Pem TestCa::svid(const std::string& spiffe_id, uint64_t serial) const {
  LeafSpec spec;
  spec.cn = spiffe_id.substr(spiffe_id.rfind('/') + 1);
  spec.uris = {spiffe_id};
  spec.dns = {"localhost"};
  spec.serial = serial;
  return issue(spec);
}

std::string serial_hex(const std::string& cert_pem) {
  BIO* bio = BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (cert == nullptr) return "?";
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr);
  char* hex = BN_bn2hex(bn);
  std::string out(hex);
  OPENSSL_free(hex);
  BN_free(bn);
  X509_free(cert);
  return out;
}

std::pair<std::string, std::string> write_pem(const TempDir& dir, const std::string& name,
                                              const Pem& pem) {
  return {dir.write(name + ".crt", pem.cert), dir.write(name + ".key", pem.key)};
}

void replace_file(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp-rotate";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << content;
    out.close();
    if (!out) throw std::runtime_error("cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    throw std::runtime_error("rename " + tmp + ": " + std::strerror(errno));
  }
}

// ---- raw client -----------------------------------------------------------------------------

std::string ProbeResult::describe() const {
  std::string out = connected ? "connected" : "not connected";
  out += handshake_ok
             ? ", handshake ok (" + version + ", alpn '" + alpn + "', serial " + peer_serial + ")"
             : ", handshake failed: " + handshake_error;
  if (!read_error.empty()) out += ", then: " + read_error;
  out += ", " + std::to_string(app_bytes) + " application bytes";
  return out;
}

ProbeResult probe_tls(int port, const ProbeOptions& options) {
  ProbeResult result;
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) die("SSL_CTX_new");
  if (options.min_version != 0 && options.min_version < TLS1_2_VERSION) {
    // Old protocol versions need the legacy ciphers and security level 0 to be offered at all.
    SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0");
  }
  if (options.min_version != 0) SSL_CTX_set_min_proto_version(ctx, options.min_version);
  if (options.max_version != 0) SSL_CTX_set_max_proto_version(ctx, options.max_version);
  if (!options.ca_file.empty()) {
    SSL_CTX_load_verify_locations(ctx, options.ca_file.c_str(), nullptr);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  }
  if (!options.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, options.cert_file.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, options.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      SSL_CTX_free(ctx);
      die("client certificate " + options.cert_file);
    }
  }
  if (!options.alpn.empty()) {
    std::string wire;
    for (const auto& p : options.alpn) wire += static_cast<char>(p.size()) + p;
    SSL_CTX_set_alpn_protos(ctx, reinterpret_cast<const unsigned char*>(wire.data()),
                            static_cast<unsigned>(wire.size()));
  }
  int fd = loopback_socket(port, options.read_for);
  if (fd < 0) {
    SSL_CTX_free(ctx);
    return result;
  }
  result.connected = true;
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  if (!options.sni.empty()) SSL_set_tlsext_host_name(ssl, options.sni.c_str());
  errno = 0;
  int rc = SSL_connect(ssl);
  if (rc != 1) {
    result.handshake_error = ssl_failure(ssl, rc);
  } else {
    result.handshake_ok = true;
    result.version = SSL_get_version(ssl);
    const unsigned char* alpn = nullptr;
    unsigned alpn_len = 0;
    SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
    result.alpn.assign(reinterpret_cast<const char*>(alpn), alpn_len);
    if (X509* peer = SSL_get1_peer_certificate(ssl)) {
      BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(peer), nullptr);
      char* hex = BN_bn2hex(bn);
      result.peer_serial = hex;
      OPENSSL_free(hex);
      BN_free(bn);
      auto* names = static_cast<GENERAL_NAMES*>(
          X509_get_ext_d2i(peer, NID_subject_alt_name, nullptr, nullptr));
      for (int i = 0; names && i < sk_GENERAL_NAME_num(names); ++i) {
        const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
        if (n->type == GEN_URI && result.peer_uri.empty()) {
          result.peer_uri.assign(
              reinterpret_cast<const char*>(ASN1_STRING_get0_data(n->d.uniformResourceIdentifier)),
              static_cast<size_t>(ASN1_STRING_length(n->d.uniformResourceIdentifier)));
        }
      }
      GENERAL_NAMES_free(names);
      X509_free(peer);
    }
    // Wait for the server's first bytes (skiff's SETTINGS) or its refusal.
    char buf[4096];
    errno = 0;
    int n = SSL_read(ssl, buf, sizeof buf);
    if (n > 0) {
      result.app_bytes = static_cast<size_t>(n);
    } else {
      result.read_error = ssl_failure(ssl, n);
    }
  }
  SSL_free(ssl);
  ::close(fd);
  SSL_CTX_free(ctx);
  ERR_clear_error();
  return result;
}

bool session_resumed(int port, const ProbeOptions& options, std::string* detail) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (options.max_version != 0) SSL_CTX_set_max_proto_version(ctx, options.max_version);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT);
  if (SSL_CTX_use_certificate_chain_file(ctx, options.cert_file.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, options.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    SSL_CTX_free(ctx);
    die("client certificate");
  }
  static const unsigned char kH2[] = {2, 'h', '2'};
  SSL_CTX_set_alpn_protos(ctx, kH2, sizeof kH2);
  SSL_SESSION* session = nullptr;
  bool resumed = false;
  for (int round = 0; round < 2; ++round) {
    int fd = loopback_socket(port, options.read_for);
    if (fd < 0) break;
    SSL* ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (session != nullptr) SSL_set_session(ssl, session);
    int rc = SSL_connect(ssl);
    char buf[4096];
    // Reading processes post-handshake messages (a TLS 1.3 ticket would arrive here).
    int n = rc == 1 ? SSL_read(ssl, buf, sizeof buf) : 0;
    if (round == 0) {
      session = SSL_get1_session(ssl);
      *detail = "first: handshake " + std::string(rc == 1 ? "ok" : "failed") + ", read " +
                std::to_string(n) + ", session resumable " +
                std::to_string(session ? SSL_SESSION_is_resumable(session) : -1);
    } else {
      resumed = rc == 1 && SSL_session_reused(ssl) == 1;
      *detail += std::string("; second: handshake ") + (rc == 1 ? "ok" : "failed") +
                 (resumed ? ", resumed" : ", full handshake");
    }
    // A connection freed without close_notify marks its session non-resumable.
    if (rc == 1) SSL_shutdown(ssl);
    SSL_free(ssl);
    ::close(fd);
  }
  SSL_SESSION_free(session);
  SSL_CTX_free(ctx);
  ERR_clear_error();
  return resumed;
}

// ---- raw HTTP/2 connection ------------------------------------------------------------------

RawH2Connection::RawH2Connection(int port, const ProbeOptions& options) {
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  ctx_ = ctx;
  if (!options.cert_file.empty() &&
      (SSL_CTX_use_certificate_chain_file(ctx, options.cert_file.c_str()) != 1 ||
       SSL_CTX_use_PrivateKey_file(ctx, options.key_file.c_str(), SSL_FILETYPE_PEM) != 1)) {
    die("client certificate " + options.cert_file);
  }
  static const unsigned char kH2[] = {2, 'h', '2'};
  SSL_CTX_set_alpn_protos(ctx, kH2, sizeof kH2);
  fd_ = loopback_socket(port, Millis(200));
  if (fd_ < 0) {
    error_ = "connect failed";
    return;
  }
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd_);
  // The handshake may take longer than one 200 ms receive timeout on a loaded machine.
  const auto deadline = std::chrono::steady_clock::now() + Millis(10'000);
  int rc = 0;
  while ((rc = SSL_connect(ssl)) != 1) {
    int e = SSL_get_error(ssl, rc);
    bool again = e == SSL_ERROR_WANT_READ || (e == SSL_ERROR_SYSCALL && errno == EAGAIN);
    if (!again || std::chrono::steady_clock::now() >= deadline) {
      error_ = ssl_failure(ssl, rc);
      SSL_free(ssl);
      return;
    }
  }
  if (X509* peer = SSL_get1_peer_certificate(ssl)) {
    BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(peer), nullptr);
    char* hex = BN_bn2hex(bn);
    peer_serial_ = hex;
    OPENSSL_free(hex);
    BN_free(bn);
    X509_free(peer);
  }
  ssl_ = ssl;
}

RawH2Connection::~RawH2Connection() {
  if (ssl_ != nullptr) SSL_free(static_cast<SSL*>(ssl_));
  if (fd_ >= 0) ::close(fd_);
  SSL_CTX_free(static_cast<SSL_CTX*>(ctx_));
}

bool RawH2Connection::write_all(const std::string& bytes) {
  size_t written = 0;
  return SSL_write_ex(static_cast<SSL*>(ssl_), bytes.data(), bytes.size(), &written) == 1 &&
         written == bytes.size();
}

bool RawH2Connection::ping(Millis timeout) {
  if (ssl_ == nullptr) return false;
  auto* ssl = static_cast<SSL*>(ssl_);
  std::string out;
  if (!preface_sent_) {
    out += "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    out += std::string("\x00\x00\x00\x04\x00\x00\x00\x00\x00", 9);  // empty SETTINGS
    preface_sent_ = true;
  }
  const std::string payload(8, static_cast<char>(++ping_counter_));
  out += std::string("\x00\x00\x08\x06\x00\x00\x00\x00\x00", 9) + payload;
  if (!write_all(out)) {
    error_ = "write failed";
    return false;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    while (in_.size() >= 9) {
      const size_t len = (size_t{static_cast<uint8_t>(in_[0])} << 16) |
                         (size_t{static_cast<uint8_t>(in_[1])} << 8) | static_cast<uint8_t>(in_[2]);
      if (in_.size() < 9 + len) break;
      const uint8_t type = static_cast<uint8_t>(in_[3]);
      const uint8_t flags = static_cast<uint8_t>(in_[4]);
      const std::string body = in_.substr(9, len);
      in_.erase(0, 9 + len);
      if (type == 0x4 && !(flags & 0x1)) {
        write_all(std::string("\x00\x00\x00\x04\x01\x00\x00\x00\x00", 9));  // SETTINGS ACK
      } else if (type == 0x6 && (flags & 0x1) && body == payload) {
        return true;
      } else if (type == 0x7) {
        error_ = "GOAWAY";
        return false;
      }
    }
    char buf[4096];
    int n = SSL_read(ssl, buf, sizeof buf);
    if (n > 0) {
      in_.append(buf, static_cast<size_t>(n));
      continue;
    }
    int e = SSL_get_error(ssl, n);
    if (e == SSL_ERROR_WANT_READ || (e == SSL_ERROR_SYSCALL && errno == EAGAIN)) continue;
    error_ = ssl_failure(ssl, n);
    return false;
  }
  error_ = "no PING ACK in time";
  return false;
}

// ---- raw server -----------------------------------------------------------------------------

RawTlsServer::RawTlsServer(const std::string& cert_file, const std::string& key_file,
                           const std::string& client_ca_file) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    SSL_CTX_free(ctx);
    die("RawTlsServer certificate");
  }
  if (!client_ca_file.empty()) {
    SSL_CTX_load_verify_locations(ctx, client_ca_file.c_str(), nullptr);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  SSL_CTX_set_alpn_select_cb(ctx, select_h2, nullptr);
  ctx_ = ctx;
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd_, 16) != 0 ||
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    throw std::runtime_error("RawTlsServer: " + std::string(std::strerror(errno)));
  }
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { run(); });
}

RawTlsServer::~RawTlsServer() {
  stop_ = true;
  thread_.join();
  ::close(fd_);
  SSL_CTX_free(static_cast<SSL_CTX*>(ctx_));
}

bool RawTlsServer::wait_for_connections(int n, Millis timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (done_.load() < n) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(Millis(5));  // polling an observable counter, with a deadline
  }
  return true;
}

void RawTlsServer::run() {
  while (!stop_) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    int conn = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) continue;
    connections_++;
    timeval tv{0, 50 * 1000};
    ::setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    SSL* ssl = SSL_new(static_cast<SSL_CTX*>(ctx_));
    SSL_set_fd(ssl, conn);
    // The handshake may span several 50 ms receive timeouts.
    int rc = 0;
    const auto deadline = std::chrono::steady_clock::now() + Millis(10'000);
    while ((rc = SSL_accept(ssl)) != 1 && !stop_ && std::chrono::steady_clock::now() < deadline) {
      int error = SSL_get_error(ssl, rc);
      if (error != SSL_ERROR_WANT_READ && !(error == SSL_ERROR_SYSCALL && errno == EAGAIN)) break;
    }
    if (rc == 1) {
      handshakes_++;
      char buf[16384];
      while (!stop_) {
        int n = SSL_read(ssl, buf, sizeof buf);
        if (n > 0) {
          app_bytes_ += static_cast<size_t>(n);
          continue;
        }
        int error = SSL_get_error(ssl, n);
        if (error == SSL_ERROR_WANT_READ || (error == SSL_ERROR_SYSCALL && errno == EAGAIN)) {
          continue;
        }
        break;
      }
    }
    ERR_clear_error();
    SSL_free(ssl);
    ::close(conn);
    done_++;
  }
}

// ---- grpc++ mTLS server ---------------------------------------------------------------------

class TlsGrpcServer::Service final : public skiff::testing::TestService::Service {
 public:
  grpc::Status Unary(grpc::ServerContext* ctx, const Request* req, Response* resp) override {
    std::string peer_id;
    if (auto auth = ctx->auth_context()) {
      for (const auto& v : auth->FindPropertyValues(GRPC_PEER_SPIFFE_ID_PROPERTY_NAME)) {
        peer_id.assign(v.data(), v.size());
      }
    }
    std::multimap<std::string, std::string> md;
    for (const auto& [k, v] : ctx->client_metadata()) {
      md.emplace(std::string(k.data(), k.size()), std::string(v.data(), v.size()));
    }
    {
      std::lock_guard lock(mu);
      peer_ids.push_back(peer_id);
      metadata.push_back(std::move(md));
    }
    resp->set_payload(req->payload());
    return grpc::Status::OK;
  }

  mutable std::mutex mu;
  std::vector<std::string> peer_ids;
  std::vector<std::multimap<std::string, std::string>> metadata;
};

TlsGrpcServer::TlsGrpcServer(const std::string& ca_pem, const Pem& server,
                             Millis max_connection_age)
    : service_(std::make_unique<Service>()) {
  grpc::SslServerCredentialsOptions options(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = ca_pem;
  options.pem_key_cert_pairs.push_back({server.key, server.cert});
  grpc::ServerBuilder builder;
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  if (max_connection_age.count() > 0) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                               static_cast<int>(max_connection_age.count()));
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, 1000);
  }
  builder.AddListeningPort("127.0.0.1:0", grpc::SslServerCredentials(options), &port_);
  builder.RegisterService(service_.get());
  server_ = builder.BuildAndStart();
  if (!server_ || port_ == 0) throw std::runtime_error("TlsGrpcServer: cannot listen");
}

TlsGrpcServer::~TlsGrpcServer() {
  server_->Shutdown(std::chrono::system_clock::now());
  server_->Wait();
}

int TlsGrpcServer::calls() const {
  std::lock_guard lock(service_->mu);
  return static_cast<int>(service_->peer_ids.size());
}

std::vector<std::string> TlsGrpcServer::peer_ids() const {
  std::lock_guard lock(service_->mu);
  return service_->peer_ids;
}

std::vector<std::multimap<std::string, std::string>> TlsGrpcServer::metadata() const {
  std::lock_guard lock(service_->mu);
  return service_->metadata;
}

std::shared_ptr<grpc::Channel> make_tls_channel(const std::string& address,
                                                const std::string& ca_pem, const Pem& client) {
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = ca_pem;
  options.pem_private_key = client.key;
  options.pem_cert_chain = client.cert;
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  args.SetSslTargetNameOverride("localhost");
  return grpc::CreateCustomChannel(address, grpc::SslCredentials(options), args);
}

const char* source_dir() { return SKIFF_SOURCE_DIR; }

}  // namespace skiff::it::tls
