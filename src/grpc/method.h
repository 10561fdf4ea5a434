// ":path" -> Method: the gRPC service and method a request names.
#pragma once

#include <optional>
#include <string_view>

namespace skiff::grpc {

// Views into the :path it was parsed from; valid only as long as that string is.
struct Method {
  std::string_view service;  // "pkg.Service"
  std::string_view method;   // "Method"
};

// "/pkg.Service/Method" -> {"pkg.Service", "Method"}. nullopt unless |path| starts with '/', has
// exactly one more '/', and both parts are non-empty. A query string ('?') is never part of a
// gRPC path, so a path containing one is rejected too.
std::optional<Method> parse_path(std::string_view path);

}  // namespace skiff::grpc
