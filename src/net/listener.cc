// Listener: SO_REUSEPORT sockets, one per worker, so the kernel spreads connections across workers.
#include "net/listener.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/check.h"

namespace skiff::net {

base::Result<int> open_listen_socket(const SocketAddress& address, int backlog) {
  int fd = socket(address.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return base::fail(std::string("socket: ") + std::strerror(errno));
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
    int err = errno;
    ::close(fd);
    return base::fail(std::string("setsockopt: ") + std::strerror(err));
  }
  if (bind(fd, address.get(), address.length) != 0) {
    int err = errno;
    ::close(fd);
    return base::fail("bind " + address.to_string() + ": " + std::strerror(err));
  }
  if (listen(fd, backlog) != 0) {
    int err = errno;
    ::close(fd);
    return base::fail("listen " + address.to_string() + ": " + std::strerror(err));
  }
  return fd;
}

base::Result<void> check_address_free(const SocketAddress& address) {
  int fd = socket(address.storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return base::fail(std::string("socket: ") + std::strerror(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));  // TIME_WAIT is no owner
  const bool bound = bind(fd, address.get(), address.length) == 0;
  const int err = errno;
  ::close(fd);
  if (!bound) return base::fail("bind " + address.to_string() + ": " + std::strerror(err));
  return {};
}

struct Listener::Box {
  uv_tcp_t handle{};
  std::function<void(uv_stream_t*)> on_connection;
  bool closed = false;
};

Listener::Listener(uv_loop_t* loop, std::function<void(uv_stream_t*)> on_connection)
    : box_(new Box) {
  box_->on_connection = std::move(on_connection);
  SKIFF_CHECK(uv_tcp_init(loop, &box_->handle) == 0);
  box_->handle.data = box_;
}

Listener::~Listener() { close(); }

base::Result<void> Listener::start(int fd) {
  if (int rc = uv_tcp_open(&box_->handle, fd); rc != 0) {
    ::close(fd);
    return base::fail(std::string("uv_tcp_open: ") + uv_strerror(rc));
  }
  int rc = uv_listen(reinterpret_cast<uv_stream_t*>(&box_->handle), 1024,
                     [](uv_stream_t* server, int status) {
                       auto* box = static_cast<Box*>(server->data);
                       if (status == 0 && !box->closed) box->on_connection(server);
                     });
  if (rc != 0) return base::fail(std::string("uv_listen: ") + uv_strerror(rc));
  return {};
}

void Listener::close() {
  if (box_ == nullptr) return;
  box_->closed = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&box_->handle),
           [](uv_handle_t* h) { delete static_cast<Box*>(h->data); });
  box_ = nullptr;
}

}  // namespace skiff::net
