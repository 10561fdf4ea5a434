// Transport: the byte stream an HTTP/2 session runs over — plain TCP (TcpStream) or TLS over
// TCP (tls::TlsTransport). The owner may destroy a transport at any time; no handler call
// happens after that (C6).
#pragma once

#include <uv.h>

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

#include "net/address.h"

namespace skiff::net {

class TransportHandler {
 public:
  virtual ~TransportHandler() = default;
  // The transport is ready for bytes (TCP connected, TLS handshake done): 0, or a negative
  // uv error / transport failure.
  virtual void on_connect(int status) = 0;
  virtual void on_read(const char* data, size_t len) = 0;
  virtual void on_read_end(int status) = 0;  // UV_EOF or a negative error
  virtual void on_write_done(int status) = 0;
};

class Transport {
 public:
  virtual ~Transport() = default;
  virtual void set_handler(TransportHandler* handler) = 0;
  // Accepts a pending connection from |server|; a TLS transport then starts its server
  // handshake (and reports on_connect when done). Returns 0 or a uv error.
  virtual int accept_from(uv_stream_t* server) = 0;
  // Dials |address|; on_connect follows on a later loop turn.
  virtual int connect(const SocketAddress& address) = 0;
  virtual int read_start() = 0;
  virtual void read_stop() = 0;
  // Sends |data|: as much as the peer takes now is written at once, only the rest is copied
  // and queued. Errors surface as on_write_done(status < 0).
  virtual void write(std::string_view data) = 0;
  // The same for |bufs| in order (a gather write). The default joins them and calls write();
  // TcpStream hands them to the kernel as they are, so callers can send bytes in place.
  virtual void writev(std::span<const uv_buf_t> bufs);
  // Bytes accepted by write() and not yet handed to the kernel.
  virtual size_t write_backlog() const = 0;
  virtual std::string peer_address() const = 0;
  // True when the transport reports on_connect for accepted connections too (TLS handshake).
  virtual bool connects_after_accept() const { return false; }
  // The peer's verified identity (the SPIFFE ID of its TLS client/server certificate), valid
  // once on_connect(0) was reported; empty when there is none (plain TCP, no certificate).
  virtual std::string_view peer_identity() const { return {}; }
  // Why on_connect reported a failure, when the transport knows more than the uv error code
  // (e.g. "TLS handshake failed: server identity ... does not match ..."); empty otherwise.
  virtual std::string error_detail() const { return {}; }
};

}  // namespace skiff::net
