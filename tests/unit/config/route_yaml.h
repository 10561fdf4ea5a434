// Shared by the route-key config tests: a one-route config around the keys under test.
#pragma once

#include <string>

#include "config/config.h"

namespace skiff::config {

// The full error text for a config whose only route has |route_keys| (indented 8 spaces, one key
// per line) after "match" and "cluster", or "loaded" if it is valid. The first key is on line 7.
inline std::string route_error(const std::string& route_keys) {
  const std::string yaml = R"(listeners:
  - name: outbound
    address: 127.0.0.1:15001
    routes:
      - match: {}
        cluster: users
)" + route_keys + R"(clusters:
  - name: users
    endpoints: [ "127.0.0.1:50051" ]
)";
  auto config = load_string(yaml, "test.yaml");
  return config ? "loaded" : config.error().to_string();
}

}  // namespace skiff::config
