// TcpStream: one TCP connection (accepted or dialled) with batched, owned writes. The owner may
// destroy it at any time: the uv handle is freed by its close callback and no handler call
// happens after destruction (C6).
#pragma once

#include <uv.h>

#include <cstddef>
#include <string>

#include "net/address.h"

namespace skiff::net {

class TcpHandler {
 public:
  virtual ~TcpHandler() = default;
  virtual void on_connect(int status) = 0;  // 0 or a negative uv error
  virtual void on_read(const char* data, size_t len) = 0;
  virtual void on_read_end(int status) = 0;  // UV_EOF or a negative uv error
  virtual void on_write_done(int status) = 0;
};

class TcpStream {
 public:
  TcpStream(uv_loop_t* loop, TcpHandler* handler);
  ~TcpStream();
  TcpStream(const TcpStream&) = delete;
  TcpStream& operator=(const TcpStream&) = delete;

  // Accepts a pending connection from |server|. Returns 0 or a uv error.
  int accept_from(uv_stream_t* server);
  // Starts a connect; the result arrives through on_connect on a later loop turn.
  int connect(const SocketAddress& address);

  int read_start();
  void read_stop();

  // Sends |data|: written at once as far as the socket takes it, the rest queued (owned).
  // Errors surface as on_write_done(status < 0).
  void write(std::string&& data);
  // Bytes queued in the kernel's stead, not yet written.
  size_t write_backlog() const;

  std::string peer_address() const;

 private:
  struct Box;
  Box* box_;
};

}  // namespace skiff::net
