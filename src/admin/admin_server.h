// AdminServer: skiff's operator endpoints over HTTP/1.1, served by civetweb on its own threads
// (never a worker's): /metrics, /ready, /healthz, /config, /clusters and POST /drain.
//
// The server knows nothing of skiff's internals: the composition root hands it one function
// per endpoint. Each may be called from any civetweb thread at any time, so each must be
// thread-safe (they read atomics and immutable data, or post to the main loop).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "base/error.h"

struct mg_context;
struct mg_connection;

namespace skiff::admin {

struct Handlers {
  std::function<std::string()> metrics;   // Prometheus text exposition
  std::function<bool()> ready;            // config loaded, listeners up, not draining
  std::function<bool()> draining;         // /ready says why it is 503
  std::function<std::string()> config;    // the effective config as JSON
  std::function<std::string()> clusters;  // clusters and endpoints as JSON
  std::function<void()> drain;            // start a graceful drain (idempotent)
};

class AdminServer {
 public:
  // Binds |host|:|port| (port 0 = any free port) and starts serving. Fails with a message
  // naming the address when it cannot bind.
  static base::Result<std::unique_ptr<AdminServer>> start(const std::string& host, uint16_t port,
                                                          Handlers handlers);
  ~AdminServer();  // stops serving; waits for in-flight requests
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // "host:port" as bound.
  const std::string& address() const { return address_; }

 private:
  explicit AdminServer(Handlers handlers) : handlers_(std::move(handlers)) {}
  static int on_request(mg_connection* conn, void* self);
  int handle(mg_connection* conn);

  Handlers handlers_;
  mg_context* ctx_ = nullptr;
  std::string address_;
  // Where a connect reaches the listener (loopback for a wildcard host), to wake it on stop.
  std::string wake_host_;
  uint16_t wake_port_ = 0;
};

}  // namespace skiff::admin
