// TlsSetup: the config's tls sections turned into TLS contexts — one ContextSlot per TLS
// listener and per TLS cluster — and the recipe to rebuild each when its files change.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "config/config.h"
#include "tls/context.h"

namespace skiff::server {

// One listener's or cluster's TLS context: how to build it and where it is published.
struct TlsEntry {
  std::string name;  // for logs: listener "inbound", cluster "users"
  bool server = false;
  tls::ServerSettings server_settings;  // when |server|
  tls::ClientSettings client_settings;  // otherwise
  std::shared_ptr<tls::ContextSlot> slot;

  // Where each file was configured, for startup errors ("file:line:col: path: ").
  std::string cert_where;
  std::string key_where;
  std::string ca_where;

  // The files whose change triggers a rebuild.
  std::vector<std::string> files() const;
  // Builds a fresh context from the files (blocking file reads; main thread).
  std::expected<std::shared_ptr<const tls::TlsContext>, tls::ContextError> build() const;
  // The config position for |error|'s file, for startup errors.
  std::string where(const tls::ContextError& error) const;
};

struct TlsSetup {
  std::vector<std::shared_ptr<tls::ContextSlot>> listeners;  // by listener index; null = h2c
  std::vector<std::shared_ptr<tls::ContextSlot>> clusters;   // by cluster index; null = h2c
  std::vector<TlsEntry> entries;
};

// Builds every context the config asks for. A missing or unreadable file, a PEM without a
// certificate or key, or a key that does not match its certificate is an error pointing at the
// key in the config: "skiff.yaml:12:15: listeners[1].tls.key: the private key in ...".
base::Result<TlsSetup> build_tls(const config::Config& config);

}  // namespace skiff::server
