// Socket address helpers over getaddrinfo/getsockname/inet_ntop.
#include "net/address.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <cerrno>
#include <cstring>

namespace skiff::net {

uint16_t SocketAddress::port() const {
  if (storage.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  }
  return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
}

std::string SocketAddress::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (storage.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr, buf,
              sizeof(buf));
    return "[" + std::string(buf) + "]:" + std::to_string(port());
  }
  inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr, buf, sizeof(buf));
  return std::string(buf) + ":" + std::to_string(port());
}

base::Result<std::vector<SocketAddress>> resolve(const std::string& host, uint16_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* result = nullptr;
  std::string service = std::to_string(port);
  int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &result);
  if (rc != 0) return base::fail("cannot resolve \"" + host + "\": " + gai_strerror(rc));
  std::vector<SocketAddress> out;
  for (addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) {
    SocketAddress addr;
    std::memcpy(&addr.storage, ai->ai_addr, ai->ai_addrlen);
    addr.length = ai->ai_addrlen;
    out.push_back(addr);
  }
  freeaddrinfo(result);
  if (out.empty()) return base::fail("\"" + host + "\" has no addresses");
  return out;
}

base::Result<SocketAddress> local_address(int fd) {
  SocketAddress addr;
  addr.length = sizeof(addr.storage);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr.storage), &addr.length) != 0) {
    return base::fail(std::string("getsockname: ") + std::strerror(errno));
  }
  return addr;
}

}  // namespace skiff::net
