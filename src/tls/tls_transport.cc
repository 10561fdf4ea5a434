// TlsTransport: handshake state machine, record I/O through a custom BIO, failure reporting.
#include "tls/tls_transport.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>

#include "base/check.h"
#include "base/log.h"

namespace skiff::tls {

// GCC cannot see that ~Guard unlinks the guard again (or that the transport's destructor
// marks it), and warns about a stack address stored in a member.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdangling-pointer"
struct TlsTransport::Guard {
  explicit Guard(Guard*& head) : head_(head), prev_(head) { head = this; }
  ~Guard() {
    if (!destroyed) head_ = prev_;
  }
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;

  bool destroyed = false;
  Guard*& head_;
  Guard* prev_;
  friend class TlsTransport;
};
#pragma GCC diagnostic pop

// The BIO trampolines reach the transport's private members through this.
struct BioAccess {
  static int read(BIO* bio, char* out, int len) {
    return static_cast<TlsTransport*>(BIO_get_data(bio))->bio_read(out, len);
  }
  static int write(BIO* bio, const char* data, int len) {
    return static_cast<TlsTransport*>(BIO_get_data(bio))->bio_write(data, len);
  }
};

namespace {

// Plaintext is decrypted into this per-thread buffer and handed to the session synchronously
// (it never keeps it), so one buffer serves every connection of the worker. Several records
// are gathered per handler call.
// On the heap, as net/tcp_stream.cc's read buffer (not in every thread's static TLS).
constexpr size_t kPlaintextBuffer = 64 * 1024;
std::array<char, kPlaintextBuffer>& plaintext_buffer() {
  thread_local auto buffer = std::make_unique<std::array<char, kPlaintextBuffer>>();
  return *buffer;
}

// TLS record overhead per 16 KiB record, rounded up: 5-byte header, 16-byte AEAD tag, the
// TLS 1.3 content type byte, or the TLS 1.2 explicit nonce.
constexpr size_t kMaxRecordPayload = 16 * 1024;
constexpr size_t kRecordOverhead = 64;
// |out_| keeps this much capacity between writes (one full record and change); a bulk write's
// larger buffer is released, so an idle connection holds no 64 KiB of ciphertext space.
constexpr size_t kKeptOutCapacity = 20 * 1024;

// Handshake failures are a peer's doing (C4): at most one warning per second per worker.
bool warn_allowed() {
  thread_local auto last = std::chrono::steady_clock::time_point();
  auto now = std::chrono::steady_clock::now();
  if (now - last < std::chrono::seconds(1)) return false;
  last = now;
  return true;
}

long bio_ctrl(BIO*, int cmd, long, void*) {
  // FLUSH must succeed (OpenSSL flushes after each handshake flight); nothing else applies to
  // a BIO that is neither a file nor a socket.
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

int bio_create(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

const BIO_METHOD* bio_method() {
  // Created once and never freed (like OpenSSL's own static methods); thread-safe init.
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "skiff-tcp");
    SKIFF_CHECK(m != nullptr);  // allocation failure at startup
    BIO_meth_set_read(m, &BioAccess::read);
    BIO_meth_set_write(m, &BioAccess::write);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
    return m;
  }();
  return method;
}

}  // namespace

TlsTransport::TlsTransport(uv_loop_t* loop, std::shared_ptr<const TlsContext> context)
    : tcp_(loop), context_(std::move(context)), timer_(loop, [this] { on_timer(); }) {
  tcp_.set_handler(this);
  ssl_ = SSL_new(context_->native());
  SKIFF_CHECK(ssl_ != nullptr);  // allocation failure
  BIO* bio = BIO_new(bio_method());
  SKIFF_CHECK(bio != nullptr);
  BIO_set_data(bio, this);
  SSL_set_bio(ssl_, bio, bio);  // one BIO both ways; the SSL owns it
  SSL_set_app_data(ssl_, &handshake_);
  if (context_->is_server()) {
    SSL_set_accept_state(ssl_);
  } else {
    SSL_set_connect_state(ssl_);
    const ClientSettings& settings = context_->client_settings();
    if (!settings.server_name.empty()) {
      SSL_set_tlsext_host_name(ssl_, settings.server_name.c_str());
      if (settings.identities.empty()) {
        // A non-mesh upstream: its certificate must carry this DNS name.
        SSL_set_hostflags(ssl_, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        SSL_set1_host(ssl_, settings.server_name.c_str());
      }
    }
  }
}

TlsTransport::~TlsTransport() {
  for (Guard* g = guards_; g != nullptr; g = g->prev_) g->destroyed = true;
  if (state_ == State::kEstablished) {
    // Best effort close_notify; the socket closes right after.
    ERR_clear_error();
    SSL_shutdown(ssl_);
    flush_ciphertext();
  }
  SSL_free(ssl_);
  ERR_clear_error();
}

void TlsTransport::transition_to(State next) {
  // Legal: Idle->Connecting|Handshaking, Connecting->Handshaking|Failed,
  // Handshaking->Established|Failed, Established->Closed.
  bool legal = false;
  switch (state_) {
    case State::kIdle:
      legal = next == State::kConnecting || next == State::kHandshaking;
      break;
    case State::kConnecting:
      legal = next == State::kHandshaking || next == State::kFailed;
      break;
    case State::kHandshaking:
      legal = next == State::kEstablished || next == State::kFailed;
      break;
    case State::kEstablished:
      legal = next == State::kClosed;
      break;
    case State::kFailed:
    case State::kClosed:
      break;
  }
  SKIFF_CHECK(legal);  // a bug in this file, never a peer's doing
  state_ = next;
}

int TlsTransport::accept_from(uv_stream_t* server) {
  SKIFF_CHECK(context_->is_server());  // server/ pairs listener contexts with accepts
  int rc = tcp_.accept_from(server);
  if (rc != 0) return rc;
  start_handshake();
  return 0;
}

int TlsTransport::connect(const net::SocketAddress& address) {
  SKIFF_CHECK(!context_->is_server());  // upstream/ pairs cluster contexts with dials
  int rc = tcp_.connect(address);
  if (rc == 0) transition_to(State::kConnecting);
  return rc;
}

void TlsTransport::start_handshake() {
  transition_to(State::kHandshaking);
  timer_.start(kHandshakeTimeout);
  tcp_reading_ = tcp_.read_start() == 0;
  if (!context_->is_server()) {
    // The ClientHello. Nothing can fail yet that the handler would hear about synchronously.
    Guard guard(guards_);
    drive_handshake(guard);
  }
}

int TlsTransport::read_start() {
  if (state_ != State::kEstablished) return 0;  // the handshake keeps reading on its own
  if (tcp_reading_) return 0;
  int rc = tcp_.read_start();
  tcp_reading_ = rc == 0;
  return rc;
}

void TlsTransport::read_stop() {
  if (state_ != State::kEstablished || !tcp_reading_) return;
  tcp_.read_stop();
  tcp_reading_ = false;
}

void TlsTransport::write(std::string_view data) {
  if (data.empty()) return;
  switch (state_) {
    case State::kIdle:
    case State::kConnecting:
    case State::kHandshaking:
      pending_plaintext_.append(data);
      return;
    case State::kFailed:
    case State::kClosed:
      return;  // the failure was (or will be) reported on the read side
    case State::kEstablished:
      break;
  }
  // Room for every record, so OpenSSL's BIO writes append without reallocating.
  out_.reserve(out_.size() + data.size() + (data.size() / kMaxRecordPayload + 1) * kRecordOverhead);
  ERR_clear_error();
  size_t written = 0;
  if (SSL_write_ex(ssl_, data.data(), data.size(), &written) != 1) {
    // Only after a fatal TLS error (the BIO itself never refuses bytes). Report it on a later
    // loop turn: the caller is inside its own flush (C8).
    error_ = "TLS write failed: " + describe_failure();
    transition_to(State::kClosed);
    failure_pending_ = true;
    timer_.start(std::chrono::milliseconds(0));
    return;
  }
  flush_ciphertext();
}

size_t TlsTransport::write_backlog() const {
  return tcp_.write_backlog() + pending_plaintext_.size();
}

void TlsTransport::on_connect(int status) {
  if (state_ != State::kConnecting) return;
  Guard guard(guards_);
  if (status != 0) {
    transition_to(State::kFailed);
    if (handler_ != nullptr) handler_->on_connect(status);
    return;
  }
  start_handshake();
}

void TlsTransport::on_read(const char* data, size_t len) {
  Guard guard(guards_);
  in_ = data;
  in_len_ = len;
  if (state_ == State::kHandshaking && !drive_handshake(guard)) return;
  if (state_ == State::kEstablished && !read_records(guard)) return;
  // |data| belongs to the TcpStream: OpenSSL has taken every byte it will ever need from it.
  in_ = nullptr;
  in_len_ = 0;
}

void TlsTransport::on_read_end(int status) {
  Guard guard(guards_);
  if (state_ == State::kHandshaking) {
    fail_handshake(guard, status == UV_EOF ? UV_ECONNRESET : status,
                   status == UV_EOF ? "the peer closed the connection during the TLS handshake"
                                    : std::string("TLS handshake: ") + uv_strerror(status));
    return;
  }
  if (state_ != State::kEstablished) return;
  // EOF without close_notify: report it as the TCP stream would; HTTP/2 framing tells a
  // truncated exchange apart.
  transition_to(State::kClosed);
  tcp_reading_ = false;
  if (handler_ != nullptr) handler_->on_read_end(status);
}

void TlsTransport::on_write_done(int status) {
  Guard guard(guards_);
  if (state_ == State::kHandshaking) {
    if (status < 0) {
      fail_handshake(guard, status, std::string("TLS handshake: ") + uv_strerror(status));
    }
    return;
  }
  if (state_ == State::kEstablished && handler_ != nullptr) handler_->on_write_done(status);
}

bool TlsTransport::drive_handshake(Guard& guard) {
  ERR_clear_error();
  int rc = SSL_do_handshake(ssl_);
  flush_ciphertext();  // our next flight, or the alert that ends it
  if (rc == 1) return finish_handshake(guard);
  int error = SSL_get_error(ssl_, rc);
  if (error == SSL_ERROR_WANT_READ) return true;
  return fail_handshake(guard, UV_EPROTO, "TLS handshake failed: " + describe_failure());
}

bool TlsTransport::finish_handshake(Guard& guard) {
  const unsigned char* alpn = nullptr;
  unsigned int alpn_len = 0;
  SSL_get0_alpn_selected(ssl_, &alpn, &alpn_len);
  if (alpn_len != 2 || std::memcmp(alpn, "h2", 2) != 0) {
    // The server callbacks refuse this during the handshake already; a client learns here.
    return fail_handshake(guard, UV_EPROTO,
                          context_->is_server()
                              ? "TLS handshake failed: no ALPN h2 negotiated"
                              : "TLS handshake failed: the upstream did not select ALPN h2");
  }
  timer_.stop();
  transition_to(State::kEstablished);
  if (stats_ != nullptr) stats_->tls_handshakes.add();
  SKIFF_LOG(kDebug) << "TLS " << SSL_get_version(ssl_) << " " << SSL_get_cipher_name(ssl_)
                    << " with " << tcp_.peer_address()
                    << (handshake_.identity.empty() ? "" : " (" + handshake_.identity + ")");
  if (!pending_plaintext_.empty()) {
    std::string pending = std::move(pending_plaintext_);
    pending_plaintext_.clear();
    write(pending);
  }
  if (handler_ != nullptr) handler_->on_connect(0);
  return !guard.destroyed;
}

bool TlsTransport::fail_handshake(Guard& guard, int status, std::string reason) {
  timer_.stop();
  transition_to(State::kFailed);
  if (stats_ != nullptr) stats_->tls_handshake_failures.add();
  if (tcp_reading_) {
    tcp_.read_stop();
    tcp_reading_ = false;
  }
  error_ = std::move(reason);
  if (context_->is_server()) {
    SKIFF_LOG(kDebug) << "connection from " << tcp_.peer_address() << " refused: " << error_;
    if (warn_allowed()) {
      SKIFF_LOG(kWarn) << "connection from " << tcp_.peer_address() << " refused: " << error_
                       << " (at most one such warning per second)";
    }
  }
  if (handler_ != nullptr) handler_->on_connect(status);
  return !guard.destroyed;
}

bool TlsTransport::read_records(Guard& guard) {
  std::array<char, kPlaintextBuffer>& plaintext = plaintext_buffer();
  for (;;) {
    size_t filled = 0;
    int error = SSL_ERROR_NONE;
    ERR_clear_error();
    while (filled < plaintext.size()) {
      size_t n = 0;
      int rc = SSL_read_ex(ssl_, plaintext.data() + filled, plaintext.size() - filled, &n);
      if (rc != 1) {
        error = SSL_get_error(ssl_, rc);
        break;
      }
      filled += n;
    }
    flush_ciphertext();  // e.g. a KeyUpdate answer
    if (filled > 0 && handler_ != nullptr) {
      handler_->on_read(plaintext.data(), filled);
      if (guard.destroyed) return false;
      if (state_ != State::kEstablished) return true;
    }
    if (error == SSL_ERROR_NONE) continue;  // the buffer filled up: there may be more
    if (error == SSL_ERROR_WANT_READ) return true;
    int status = UV_EOF;
    if (error != SSL_ERROR_ZERO_RETURN) {
      error_ = "TLS error: " + describe_failure();
      SKIFF_LOG(kDebug) << "connection with " << tcp_.peer_address() << ": " << error_;
      status = UV_EPROTO;
    }
    transition_to(State::kClosed);
    tcp_.read_stop();
    tcp_reading_ = false;
    if (handler_ != nullptr) handler_->on_read_end(status);
    return !guard.destroyed;
  }
}

void TlsTransport::on_timer() {
  Guard guard(guards_);
  if (state_ == State::kHandshaking) {
    fail_handshake(
        guard, UV_ETIMEDOUT,
        "TLS handshake timed out after " + std::to_string(kHandshakeTimeout.count() / 1000) + "s");
    return;
  }
  if (failure_pending_) {
    failure_pending_ = false;
    if (handler_ != nullptr) handler_->on_read_end(UV_EPROTO);
  }
}

void TlsTransport::flush_ciphertext() {
  if (out_.empty()) return;
  tcp_.write(out_);  // what the socket does not take now is copied into the TcpStream
  if (out_.capacity() > kKeptOutCapacity) {
    out_ = std::string();
  } else {
    out_.clear();
  }
}

std::string TlsTransport::describe_failure() {
  unsigned long last = 0;
  while (unsigned long e = ERR_get_error()) last = e;
  if (!handshake_.failure.empty()) return handshake_.failure;
  if (last != 0) {
    const char* reason = ERR_reason_error_string(last);
    if (reason != nullptr) return reason;
    char buf[256];
    ERR_error_string_n(last, buf, sizeof buf);
    return buf;
  }
  long verify = SSL_get_verify_result(ssl_);
  if (verify != X509_V_OK) return X509_verify_cert_error_string(verify);
  return "protocol error";
}

int TlsTransport::bio_read(char* out, int len) {
  BIO* bio = SSL_get_rbio(ssl_);
  BIO_clear_retry_flags(bio);
  if (in_len_ == 0) {
    BIO_set_retry_read(bio);
    return -1;
  }
  size_t n = std::min(in_len_, static_cast<size_t>(len));
  std::memcpy(out, in_, n);
  in_ += n;
  in_len_ -= n;
  return static_cast<int>(n);
}

int TlsTransport::bio_write(const char* data, int len) {
  BIO_clear_retry_flags(SSL_get_wbio(ssl_));
  out_.append(data, static_cast<size_t>(len));
  return len;
}

}  // namespace skiff::tls
