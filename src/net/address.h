// Socket addresses: parse numeric "host:port", resolve names (blocking; main thread only), format.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"

namespace skiff::net {

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  uint16_t port() const;
  std::string to_string() const;  // "127.0.0.1:80", "[::1]:80"
};

// Resolves |host| (numeric or a name, via getaddrinfo: blocks) with |port|.
base::Result<std::vector<SocketAddress>> resolve(const std::string& host, uint16_t port);

// The local address a bound socket ended up on.
base::Result<SocketAddress> local_address(int fd);

}  // namespace skiff::net
