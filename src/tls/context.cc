// TlsContext: files -> validated SSL_CTX, with the verification, ALPN and client-hello callbacks.
#include "tls/context.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "base/spiffe.h"
#include "tls/peer_identity.h"

namespace skiff::tls {
namespace {

// TLS 1.2: forward-secret AEAD suites only (RFC 9113 §9.2.2 blocks the rest for HTTP/2).
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384";
constexpr const char* kTls13Suites =
    "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384";
constexpr const char* kGroups = "X25519:P-256:P-384";
constexpr unsigned char kAlpnH2[] = {2, 'h', '2'};

using Failure = std::unexpected<ContextError>;

Failure failure(SettingsFile file, std::string message) {
  return Failure(ContextError{file, std::move(message)});
}

// The most recent OpenSSL error on this thread, then clears the queue.
std::string openssl_error() {
  unsigned long last = 0;
  while (unsigned long e = ERR_get_error()) last = e;
  if (last == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(last, buf, sizeof buf);
  return buf;
}

std::expected<std::string, std::string> read_file(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr)
    return std::unexpected("cannot read '" + path + "': " + std::strerror(errno));
  std::string text;
  char buffer[16 * 1024];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, file)) > 0) text.append(buffer, n);
  const int error = std::ferror(file) ? errno : 0;
  std::fclose(file);
  if (error != 0) return std::unexpected("cannot read '" + path + "': " + std::strerror(error));
  return text;
}

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};

// Every PEM certificate in |path|, in file order.
std::expected<std::vector<X509Ptr>, std::string> read_certificates(const std::string& path) {
  auto text = read_file(path);
  if (!text) return std::unexpected(text.error());
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(text->data(), static_cast<int>(text->size())));
  std::vector<X509Ptr> certs;
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) certs.emplace_back(x);
  ERR_clear_error();  // the loop ends on "no start line"
  if (certs.empty()) return std::unexpected("no PEM certificate in '" + path + "'");
  return certs;
}

std::expected<std::unique_ptr<EVP_PKEY, PkeyFree>, std::string> read_key(const std::string& path) {
  auto text = read_file(path);
  if (!text) return std::unexpected(text.error());
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(text->data(), static_cast<int>(text->size())));
  // No passphrase prompt: an encrypted key is an error, never a read from the terminal.
  auto no_password = [](char*, int, int, void*) { return 0; };
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, no_password, nullptr);
  if (key == nullptr) {
    std::string why = openssl_error();
    return std::unexpected("no usable PEM private key in '" + path + "' (" + why + ")");
  }
  return std::unique_ptr<EVP_PKEY, PkeyFree>(key);
}

// Loads the certificate chain and its key into |ctx|; returns the leaf's description.
std::expected<std::string, ContextError> use_certificate(SSL_CTX* ctx, const std::string& cert_file,
                                                         const std::string& key_file) {
  auto certs = read_certificates(cert_file);
  if (!certs) return failure(SettingsFile::kCert, certs.error());
  auto key = read_key(key_file);
  if (!key) return failure(SettingsFile::kKey, key.error());
  X509* leaf = certs->front().get();
  if (X509_check_private_key(leaf, key->get()) != 1) {
    ERR_clear_error();
    return failure(SettingsFile::kKey, "the private key in '" + key_file +
                                           "' does not match the certificate in '" + cert_file +
                                           "'");
  }
  if (SSL_CTX_use_certificate(ctx, leaf) != 1) {
    return failure(SettingsFile::kCert,
                   "cannot use the certificate in '" + cert_file + "': " + openssl_error());
  }
  for (size_t i = 1; i < certs->size(); ++i) {
    if (SSL_CTX_add1_chain_cert(ctx, (*certs)[i].get()) != 1) {
      return failure(SettingsFile::kCert, "cannot use intermediate certificate " +
                                              std::to_string(i) + " in '" + cert_file +
                                              "': " + openssl_error());
    }
  }
  if (SSL_CTX_use_PrivateKey(ctx, key->get()) != 1) {
    return failure(SettingsFile::kKey,
                   "cannot use the private key in '" + key_file + "': " + openssl_error());
  }
  return describe_certificate(leaf);
}

// Adds every certificate in |ca_file| as a trust anchor (and, on a server, as an acceptable
// client CA name in the CertificateRequest).
std::expected<void, ContextError> use_trust_anchors(SSL_CTX* ctx, const std::string& ca_file,
                                                    bool server) {
  auto certs = read_certificates(ca_file);
  if (!certs) return failure(SettingsFile::kCa, certs.error());
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  for (const X509Ptr& cert : *certs) {
    if (X509_STORE_add_cert(store, cert.get()) != 1 ||
        (server && SSL_CTX_add_client_CA(ctx, cert.get()) != 1)) {
      return failure(SettingsFile::kCa,
                     "cannot use a CA certificate in '" + ca_file + "': " + openssl_error());
    }
  }
  return {};
}

HandshakeState* state_of(SSL* ssl) { return static_cast<HandshakeState*>(SSL_get_app_data(ssl)); }

void note_failure(SSL* ssl, std::string why) {
  HandshakeState* state = state_of(ssl);
  if (state != nullptr && state->failure.empty()) state->failure = std::move(why);
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

// Chain errors are recorded as they are; at depth 0, after the chain verified, the leaf must be
// an X509-SVID (listeners with client CAs, clusters with identities) whose identity matches.
int verify_callback(int preverify_ok, X509_STORE_CTX* store) {
  auto* ssl =
      static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  const auto* context = static_cast<const TlsContext*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  const char* whose = context->is_server() ? "client" : "server";
  const int depth = X509_STORE_CTX_get_error_depth(store);
  if (!preverify_ok) {
    const int error = X509_STORE_CTX_get_error(store);
    note_failure(ssl, std::string(whose) +
                          " certificate rejected: " + X509_verify_cert_error_string(error) +
                          (depth > 0 ? " (chain depth " + std::to_string(depth) + ")" : ""));
    return 0;
  }
  if (depth != 0) return 1;
  const std::vector<std::string>& identities = context->client_settings().identities;
  // A client checking only a DNS name: OpenSSL did that (SSL_set1_host) before reaching here.
  if (!context->is_server() && identities.empty()) return 1;
  auto identity = svid_identity(X509_STORE_CTX_get_current_cert(store));
  if (!identity) {
    note_failure(ssl, std::string(whose) + " certificate rejected: " + identity.error().message);
    X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
  }
  if (!context->is_server()) {
    bool allowed = false;
    for (const std::string& pattern : identities) {
      allowed = allowed || base::identity_matches(pattern, *identity);
    }
    if (!allowed) {
      note_failure(ssl, "server identity " + *identity + " does not match the expected [" +
                            join(identities) + "]");
      X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
      return 0;
    }
  }
  if (HandshakeState* state = state_of(ssl)) state->identity = std::move(*identity);
  return 1;
}

// Refuses a ClientHello that does not offer ALPN "h2" (a missing ALPN extension never reaches
// the ALPN select callback, so this is the one place that sees it).
int client_hello_callback(SSL* ssl, int* alert, void*) {
  const unsigned char* data = nullptr;
  size_t len = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &data,
                                &len) != 1) {
    note_failure(ssl, "the client offered no ALPN protocols (h2 is required)");
    *alert = SSL_AD_NO_APPLICATION_PROTOCOL;
    return SSL_CLIENT_HELLO_ERROR;
  }
  // ProtocolNameList: a 2-byte length, then 1-byte-length-prefixed names.
  if (len >= 2) {
    size_t end = std::min(len, 2 + ((size_t{data[0]} << 8) | data[1]));
    for (size_t i = 2; i < end;) {
      size_t n = data[i];
      if (n == 2 && i + 2 < end && data[i + 1] == 'h' && data[i + 2] == '2') {
        return SSL_CLIENT_HELLO_SUCCESS;
      }
      i += 1 + n;
    }
  }
  note_failure(ssl, "the client's ALPN list does not offer h2");
  *alert = SSL_AD_NO_APPLICATION_PROTOCOL;
  return SSL_CLIENT_HELLO_ERROR;
}

int alpn_select_callback(SSL*, const unsigned char** out, unsigned char* outlen,
                         const unsigned char* in, unsigned int inlen, void*) {
  for (unsigned int i = 0; i < inlen;) {
    unsigned int n = in[i];
    if (i + 1 + n > inlen) break;
    if (n == 2 && in[i + 1] == 'h' && in[i + 2] == '2') {
      *out = in + i + 1;
      *outlen = 2;
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + n;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

// The settings both sides share.
SSL_CTX* new_context(bool server) {
  SSL_CTX* ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (ctx == nullptr) return nullptr;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET |
                               (server ? SSL_OP_CIPHER_SERVER_PREFERENCE : 0));
  if (SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1 ||
      SSL_CTX_set_ciphersuites(ctx, kTls13Suites) != 1 ||
      SSL_CTX_set1_groups_list(ctx, kGroups) != 1) {
    SSL_CTX_free(ctx);
    return nullptr;
  }
  // OpenSSL's 16 KiB+ record buffers are freed while a connection is idle (as nghttpx does):
  // a sidecar holds many mostly idle connections.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  // No resumption: every connection is verified against the current trust configuration.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  if (server) SSL_CTX_set_num_tickets(ctx, 0);
  return ctx;
}

}  // namespace

TlsContext::~TlsContext() {
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

std::expected<std::shared_ptr<const TlsContext>, ContextError> TlsContext::make_server(
    const ServerSettings& settings) {
  std::shared_ptr<TlsContext> context(new TlsContext);
  context->server_ = true;
  context->ctx_ = new_context(true);
  if (context->ctx_ == nullptr) {
    return failure(SettingsFile::kCert, "cannot create a TLS context: " + openssl_error());
  }
  SSL_CTX* ctx = context->ctx_;
  SSL_CTX_set_app_data(ctx, context.get());
  auto described = use_certificate(ctx, settings.cert_file, settings.key_file);
  if (!described) return std::unexpected(described.error());
  context->certificate_ = std::move(*described);
  if (!settings.client_ca_file.empty()) {
    if (auto used = use_trust_anchors(ctx, settings.client_ca_file, true); !used) {
      return std::unexpected(used.error());
    }
    int mode = SSL_VERIFY_PEER;
    if (settings.require_client_cert) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, mode, verify_callback);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  SSL_CTX_set_client_hello_cb(ctx, client_hello_callback, nullptr);
  SSL_CTX_set_alpn_select_cb(ctx, alpn_select_callback, nullptr);
  return std::shared_ptr<const TlsContext>(std::move(context));
}

std::expected<std::shared_ptr<const TlsContext>, ContextError> TlsContext::make_client(
    const ClientSettings& settings) {
  std::shared_ptr<TlsContext> context(new TlsContext);
  context->client_ = settings;
  context->ctx_ = new_context(false);
  if (context->ctx_ == nullptr) {
    return failure(SettingsFile::kCa, "cannot create a TLS context: " + openssl_error());
  }
  SSL_CTX* ctx = context->ctx_;
  SSL_CTX_set_app_data(ctx, context.get());
  if (!settings.cert_file.empty()) {
    auto described = use_certificate(ctx, settings.cert_file, settings.key_file);
    if (!described) return std::unexpected(described.error());
    context->certificate_ = std::move(*described);
  }
  if (!settings.ca_file.empty()) {
    if (auto used = use_trust_anchors(ctx, settings.ca_file, false); !used) {
      return std::unexpected(used.error());
    }
  } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
    return failure(SettingsFile::kCa, "cannot load the system trust store: " + openssl_error());
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_callback);
  // Returns 0 on success (unlike most of OpenSSL).
  if (SSL_CTX_set_alpn_protos(ctx, kAlpnH2, sizeof kAlpnH2) != 0) {
    return failure(SettingsFile::kCa, "cannot set ALPN: " + openssl_error());
  }
  return std::shared_ptr<const TlsContext>(std::move(context));
}

}  // namespace skiff::tls
