// Transport: the gather write's default, for transports that transform bytes (TLS).
#include "net/transport.h"

namespace skiff::net {

void Transport::writev(std::span<const uv_buf_t> bufs) {
  // Reused per thread: joining allocates nothing in steady state.
  thread_local std::string joined;
  joined.clear();
  for (const uv_buf_t& b : bufs) joined.append(b.base, b.len);
  write(joined);
}

}  // namespace skiff::net
