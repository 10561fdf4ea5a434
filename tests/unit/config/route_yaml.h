// Shared by the config tests: small valid configs around the keys under test.
#pragma once

#include <string>

#include "config/config.h"

namespace skiff::config {

// The full error text for a config whose only route has |route_keys| (indented 8 spaces, one key
// per line) after "match" and "cluster", or "loaded" if it is valid (then *out holds the config).
// The first key is on line 7.
inline std::string route_error(const std::string& route_keys, Config* out = nullptr) {
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
  if (config && out != nullptr) *out = *config;
  return config ? "loaded" : config.error().to_string();
}

// A valid config (9 lines: one catch-all route to the one cluster "users", whose endpoints are
// |endpoints|) followed by |tail|, whose first line is line 10 of "test.yaml": top-level keys, or
// more keys of the cluster (indented 4 spaces). Returns the full error text, or "loaded" (then
// *out holds the config).
inline std::string load_with(const std::string& tail, Config* out = nullptr,
                             const std::string& endpoints = "\"127.0.0.1:50051\"") {
  const std::string yaml = R"(listeners:
  - name: outbound
    address: 127.0.0.1:15001
    routes:
      - match: {}
        cluster: users
clusters:
  - name: users
    endpoints: [ )" + endpoints +
                           " ]\n" + tail;
  auto config = load_string(yaml, "test.yaml");
  if (config && out != nullptr) *out = *config;
  return config ? "loaded" : config.error().to_string();
}

}  // namespace skiff::config
