// RouteTable: (:authority, service, method) -> the first matching Route, in configured order.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace skiff::route {

// Empty fields match anything. |method| requires |service| (config/ validation guarantees it).
struct Match {
  std::string service;    // "pkg.Service", exact and case-sensitive
  std::string method;     // "Method", exact and case-sensitive
  std::string authority;  // "host" (any port) or "host:port"; case-insensitive
};

struct Route {
  Match match;
  uint32_t cluster = 0;                              // index into the snapshot's clusters
  uint32_t index = 0;  // position in its table (set by RouteTable::add): keys per-route state
  std::optional<std::chrono::milliseconds> timeout;  // cap on the call's deadline
  // Caller identity patterns (policy/authz.h, base/spiffe.h); empty = any caller.
  std::vector<std::string> allow;
};

// One table per listener, built once per snapshot and then only read. find() is on the request
// path: a linear scan in configured order that never allocates.
class RouteTable {
 public:
  // Appends |route|; order is precedence: the first matching route wins. Pointers returned by
  // find() stay valid until the next add().
  void add(Route route);

  // |authority| is the request's :authority (or host); compared case-insensitively, and a route
  // authority without a port matches any port of that host. nullptr when nothing matches.
  const Route* find(std::string_view authority, std::string_view service,
                    std::string_view method) const;

  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    Route route;
    bool authority_has_port = false;  // precomputed so find() only compares
  };

  std::vector<Entry> entries_;
};

// The host part of an authority: "[::1]:80" -> "[::1]", "a.b:80" -> "a.b", "a.b" -> "a.b".
std::string_view authority_host(std::string_view authority);

}  // namespace skiff::route
