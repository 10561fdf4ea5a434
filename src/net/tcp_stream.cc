// TcpStream: uv_tcp_t in a heap box; reads land in one per-thread buffer (consumed synchronously).
#include "net/tcp_stream.h"

#include <netinet/tcp.h>

#include <array>
#include <memory>

#include "base/check.h"

namespace skiff::net {
namespace {

// Reads are handed to the handler synchronously and never kept, so one buffer per worker
// thread serves every connection. Its size bounds the work done per read callback; 256 KiB
// takes a 1 MiB message in a quarter of the reads 64 KiB took (3 % less CPU per call), and
// small reads touch only its first pages.
// On the heap, allocated on a thread's first read: as a static thread_local array it would be
// part of every thread's static TLS, which breaks threads created with small stacks (civetweb's).
constexpr size_t kReadBufferSize = 256 * 1024;
std::array<char, kReadBufferSize>& read_buffer() {
  // Not zeroed: a page is touched (and resident) only once a read reaches it.
  thread_local auto buffer = std::make_unique_for_overwrite<std::array<char, kReadBufferSize>>();
  return *buffer;
}

}  // namespace

struct TcpStream::Box {
  uv_tcp_t handle{};
  uv_connect_t connect_req{};
  TransportHandler* handler = nullptr;  // null once the owner destroyed the TcpStream
  size_t backlog = 0;
};

struct TcpStream::WriteRequest {
  uv_write_t req{};
  std::string data;
};

TcpStream::TcpStream(uv_loop_t* loop) : box_(new Box) {
  SKIFF_CHECK(uv_tcp_init(loop, &box_->handle) == 0);
  box_->handle.data = box_;
}

TcpStream::~TcpStream() {
  box_->handler = nullptr;
  auto* h = reinterpret_cast<uv_handle_t*>(&box_->handle);
  // Pending write and connect callbacks run (with UV_ECANCELED) before the close callback.
  uv_close(h, [](uv_handle_t* h) { delete static_cast<Box*>(h->data); });
}

void TcpStream::set_handler(TransportHandler* handler) { box_->handler = handler; }

int TcpStream::accept_from(uv_stream_t* server) {
  int rc = uv_accept(server, reinterpret_cast<uv_stream_t*>(&box_->handle));
  if (rc == 0) uv_tcp_nodelay(&box_->handle, 1);
  return rc;
}

int TcpStream::connect(const SocketAddress& address) {
  box_->connect_req.data = box_;
  int rc = uv_tcp_connect(&box_->connect_req, &box_->handle, address.get(),
                          [](uv_connect_t* req, int status) {
                            auto* box = static_cast<Box*>(req->data);
                            if (status == 0) uv_tcp_nodelay(&box->handle, 1);
                            if (box->handler != nullptr) box->handler->on_connect(status);
                          });
  return rc;
}

int TcpStream::read_start() {
  return uv_read_start(
      reinterpret_cast<uv_stream_t*>(&box_->handle),
      [](uv_handle_t*, size_t, uv_buf_t* buf) {
        *buf = uv_buf_init(read_buffer().data(), read_buffer().size());
      },
      [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
        auto* box = static_cast<Box*>(s->data);
        if (box->handler == nullptr) return;
        if (nread > 0) {
          box->handler->on_read(buf->base, static_cast<size_t>(nread));
        } else if (nread < 0) {
          uv_read_stop(s);
          box->handler->on_read_end(static_cast<int>(nread));
        }
      });
}

void TcpStream::read_stop() { uv_read_stop(reinterpret_cast<uv_stream_t*>(&box_->handle)); }

void TcpStream::write(std::string_view data) {
  if (data.empty()) return;
  auto* stream = reinterpret_cast<uv_stream_t*>(&box_->handle);
  if (box_->backlog == 0) {
    // Nothing queued, so order is kept: write what the kernel takes now, copy-free.
    uv_buf_t buf = uv_buf_init(const_cast<char*>(data.data()), data.size());
    int n = uv_try_write(stream, &buf, 1);
    if (n > 0) data.remove_prefix(static_cast<size_t>(n));
    if (data.empty()) return;
  }
  auto* wr = new WriteRequest;
  wr->data.assign(data);
  queue(wr);
}

void TcpStream::queue(WriteRequest* wr) {
  auto* stream = reinterpret_cast<uv_stream_t*>(&box_->handle);
  wr->req.data = box_;
  box_->backlog += wr->data.size();
  uv_buf_t buf = uv_buf_init(wr->data.data(), wr->data.size());
  int rc = uv_write(&wr->req, stream, &buf, 1, [](uv_write_t* req, int status) {
    auto* wr = reinterpret_cast<WriteRequest*>(req);
    auto* box = static_cast<Box*>(req->data);
    box->backlog -= wr->data.size();
    delete wr;
    if (box->handler != nullptr) box->handler->on_write_done(status);
  });
  if (rc != 0) {
    // The stream is already closing or broken; the read side reports the failure.
    box_->backlog -= wr->data.size();
    delete wr;
  }
}

void TcpStream::writev(std::span<const uv_buf_t> bufs) {
  auto* stream = reinterpret_cast<uv_stream_t*>(&box_->handle);
  size_t skip = 0;  // bytes of |bufs| the kernel took
  if (box_->backlog == 0) {
    // Nothing queued, so order is kept: write what the kernel takes now, copy-free.
    int n = uv_try_write(stream, bufs.data(), static_cast<unsigned>(bufs.size()));
    if (n > 0) skip = static_cast<size_t>(n);
  }
  size_t total = 0;
  for (const uv_buf_t& b : bufs) total += b.len;
  if (skip >= total) return;
  // The rest is copied into one queued request, like write()'s.
  auto* wr = new WriteRequest;
  wr->data.reserve(total - skip);
  for (const uv_buf_t& b : bufs) {
    if (skip >= b.len) {
      skip -= b.len;
      continue;
    }
    wr->data.append(b.base + skip, b.len - skip);
    skip = 0;
  }
  queue(wr);
}

size_t TcpStream::write_backlog() const { return box_->backlog; }

std::string TcpStream::peer_address() const {
  SocketAddress addr;
  int len = sizeof(addr.storage);
  if (uv_tcp_getpeername(&box_->handle, reinterpret_cast<sockaddr*>(&addr.storage), &len) != 0) {
    return "?";
  }
  addr.length = static_cast<socklen_t>(len);
  return addr.to_string();
}

}  // namespace skiff::net
