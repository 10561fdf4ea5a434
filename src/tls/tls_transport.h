// TlsTransport: TLS over a TcpStream, as a net::Transport an HTTP/2 session runs on. OpenSSL
// reads and writes through a custom BIO over the TcpStream's own buffers (ciphertext is copied
// once into and once out of OpenSSL's record buffers, nothing more). The handshake must
// finish within kHandshakeTimeout; only then, with ALPN "h2" and the peer verified, does the
// session hear on_connect(0) — so no HTTP/2 byte is exchanged with a refused peer.
#pragma once

#include <openssl/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "net/connection_stats.h"
#include "net/tcp_stream.h"
#include "net/timer.h"
#include "net/transport.h"
#include "tls/context.h"

namespace skiff::tls {

inline constexpr std::chrono::milliseconds kHandshakeTimeout{10'000};

class TlsTransport final : public net::Transport, private net::TransportHandler {
 public:
  // A server (accept_from) or client (connect) transport, as |context| says. The connection
  // keeps |context| for its whole life, even when the slot it came from is rotated.
  TlsTransport(uv_loop_t* loop, std::shared_ptr<const TlsContext> context);
  ~TlsTransport() override;
  TlsTransport(const TlsTransport&) = delete;
  TlsTransport& operator=(const TlsTransport&) = delete;

  // Handshakes and their failures are counted here (optional).
  void set_stats(net::ConnectionStats* stats) { stats_ = stats; }

  // net::Transport
  void set_handler(net::TransportHandler* handler) override { handler_ = handler; }
  int accept_from(uv_stream_t* server) override;
  int connect(const net::SocketAddress& address) override;
  int read_start() override;
  void read_stop() override;
  // Encrypted into full-size records (up to 16 KiB each) and written at once.
  void write(std::string_view data) override;
  size_t write_backlog() const override;
  std::string peer_address() const override { return tcp_.peer_address(); }
  bool connects_after_accept() const override { return true; }
  std::string_view peer_identity() const override { return handshake_.identity; }
  std::string error_detail() const override { return error_; }

 private:
  // kIdle -> kConnecting (client) -> kHandshaking -> kEstablished -> kClosed (peer closed or a
  // TLS error after the handshake); kHandshaking/kConnecting -> kFailed.
  enum class State { kIdle, kConnecting, kHandshaking, kEstablished, kFailed, kClosed };
  // Set on the stack by every entry point that calls the handler: the handler may destroy this
  // transport, and the destructor marks every live guard so the caller returns at once.
  struct Guard;

  // net::TransportHandler, for the inner TcpStream.
  void on_connect(int status) override;
  void on_read(const char* data, size_t len) override;
  void on_read_end(int status) override;
  void on_write_done(int status) override;

  void transition_to(State next);
  void start_handshake();
  // Each returns false when this transport was destroyed meanwhile.
  bool drive_handshake(Guard& guard);
  bool finish_handshake(Guard& guard);
  bool fail_handshake(Guard& guard, int status, std::string reason);
  bool read_records(Guard& guard);
  void on_timer();
  void flush_ciphertext();
  // OpenSSL's view of why the last operation failed, preferring our own verification notes.
  std::string describe_failure();

  // Custom BIO callbacks (static trampolines in the .cc).
  friend struct BioAccess;
  int bio_read(char* out, int len);
  int bio_write(const char* data, int len);

  net::TcpStream tcp_;
  std::shared_ptr<const TlsContext> context_;
  SSL* ssl_ = nullptr;
  net::TransportHandler* handler_ = nullptr;
  State state_ = State::kIdle;
  HandshakeState handshake_;  // SSL app data: filled by the context's callbacks
  net::ConnectionStats* stats_ = nullptr;
  std::string error_;
  bool tcp_reading_ = false;
  bool failure_pending_ = false;  // a post-handshake failure is reported on the timer

  // Ciphertext: |in_| is the TcpStream's read chunk, valid during on_read only; |out_| collects
  // the records of one operation (and keeps up to 20 KiB of capacity between operations).
  const char* in_ = nullptr;
  size_t in_len_ = 0;
  std::string out_;
  std::string pending_plaintext_;  // written before the handshake finished

  net::Timer timer_;  // handshake timeout; then deferred failure reports
  Guard* guards_ = nullptr;
};

}  // namespace skiff::tls
