// TcpStream: one TCP connection (accepted or dialled) with batched, owned writes. The owner may
// destroy it at any time: the uv handle is freed by its close callback and no handler call
// happens after destruction (C6).
#pragma once

#include <uv.h>

#include <cstddef>
#include <string>

#include "net/address.h"
#include "net/transport.h"

namespace skiff::net {

class TcpStream final : public Transport {
 public:
  explicit TcpStream(uv_loop_t* loop);
  ~TcpStream() override;
  TcpStream(const TcpStream&) = delete;
  TcpStream& operator=(const TcpStream&) = delete;

  // net::Transport
  void set_handler(TransportHandler* handler) override;
  int accept_from(uv_stream_t* server) override;
  int connect(const SocketAddress& address) override;
  int read_start() override;
  void read_stop() override;
  // Written at once as far as the socket takes it (uv_try_write), the rest queued.
  void write(std::string_view data) override;
  void writev(std::span<const uv_buf_t> bufs) override;
  size_t write_backlog() const override;
  std::string peer_address() const override;

 private:
  struct Box;
  struct WriteRequest;
  // Queues |wr| (its data: bytes the kernel did not take) behind earlier writes; owns it.
  void queue(WriteRequest* wr);
  Box* box_;
};

}  // namespace skiff::net
