// Listener: a worker's own SO_REUSEPORT listening socket; hands each accepted connection over.
#pragma once

#include <uv.h>

#include <functional>
#include <string>

#include "base/error.h"
#include "net/address.h"

namespace skiff::net {

// Creates, binds and listens on a SO_REUSEPORT socket (blocking syscalls; call from the main
// thread before workers start, so bind errors are reported before anything serves).
base::Result<int> open_listen_socket(const SocketAddress& address, int backlog = 1024);

// SO_REUSEPORT lets any socket of the same user that sets it too bind the same address, so a
// second skiff (a stale one, or one started by mistake) would split the traffic without an
// error. A bind without it fails while anything listens on |address|: call this first.
base::Result<void> check_address_free(const SocketAddress& address);

class Listener {
 public:
  // |on_connection| is called for each pending connection; it must accept it
  // (TcpStream::accept_from).
  Listener(uv_loop_t* loop, std::function<void(uv_stream_t* server)> on_connection);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Adopts |fd| (from open_listen_socket) and starts accepting.
  base::Result<void> start(int fd);
  // Stops accepting and closes the socket (drain).
  void close();

 private:
  struct Box;
  Box* box_;
};

}  // namespace skiff::net
