// Splits a gRPC ":path" into service and method without copying.
#include "grpc/method.h"

namespace skiff::grpc {

std::optional<Method> parse_path(std::string_view path) {
  if (path.size() < 4 || path.front() != '/') return std::nullopt;  // shortest valid: "/s/m"
  if (path.find('?') != std::string_view::npos) return std::nullopt;
  const std::string_view rest = path.substr(1);
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == rest.size()) {
    return std::nullopt;
  }
  const std::string_view method = rest.substr(slash + 1);
  if (method.find('/') != std::string_view::npos) return std::nullopt;
  return Method{rest.substr(0, slash), method};
}

}  // namespace skiff::grpc
