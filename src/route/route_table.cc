// RouteTable: first-match routing on authority, gRPC service and method.
#include "route/route_table.h"

#include <utility>

#include "base/check.h"

namespace skiff::route {
namespace {

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

}  // namespace

std::string_view authority_host(std::string_view authority) {
  if (!authority.empty() && authority.front() == '[') {  // IPv6 literal: the port follows ']'
    const size_t close = authority.find(']');
    return close == std::string_view::npos ? authority : authority.substr(0, close + 1);
  }
  return authority.substr(0, authority.find(':'));
}

void RouteTable::add(Route route) {
  // config/ rejects a method without a service; a table built otherwise is a skiff bug.
  SKIFF_CHECK(route.match.method.empty() || !route.match.service.empty());
  Entry entry;
  const std::string_view authority = route.match.authority;
  entry.authority_has_port = authority_host(authority).size() != authority.size();
  entry.route = std::move(route);
  entry.route.index = static_cast<uint32_t>(entries_.size());
  entries_.push_back(std::move(entry));
}

const Route* RouteTable::find(std::string_view authority, std::string_view service,
                              std::string_view method) const {
  const std::string_view host = authority_host(authority);
  for (const Entry& entry : entries_) {
    const Match& match = entry.route.match;
    if (!match.service.empty() && match.service != service) continue;
    if (!match.method.empty() && match.method != method) continue;
    if (!match.authority.empty() &&
        !iequals(match.authority, entry.authority_has_port ? authority : host)) {
      continue;
    }
    return &entry.route;
  }
  return nullptr;
}

}  // namespace skiff::route
