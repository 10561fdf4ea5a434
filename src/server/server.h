// Server: the main thread — loads and validates config, builds the Snapshot, binds listeners,
// starts workers, and drains them on SIGTERM/SIGINT.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "config/config.h"
#include "proxy/snapshot.h"
#include "server/tls_setup.h"

namespace skiff::server {

struct Options {
  std::string config_path = "config/skiff.yaml";
  bool check_only = false;
  uint32_t workers = 0;  // 0 = config's value (whose 0 means one per core)
};

// Exit codes.
constexpr int kExitOk = 0;
constexpr int kExitRuntimeError = 1;
constexpr int kExitConfigError = 2;

// Turns a validated config into the data-plane snapshot, resolving endpoint names (blocking;
// main thread). Errors carry "file:line:col: ". Clusters with TLS take their slot from |tls|.
base::Result<std::shared_ptr<const proxy::Snapshot>> build_snapshot(const config::Config& config,
                                                                    const TlsSetup* tls = nullptr);

// Runs skiff until drained; returns the process exit code.
int run(const Options& options);

}  // namespace skiff::server
