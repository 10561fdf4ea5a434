// TlsSetup: the config's tls sections turned into TLS contexts — one ContextSlot per TLS
// listener and per TLS cluster — and the recipe to rebuild each when its files change.
#pragma once

#include <sys/stat.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "config/config.h"
#include "tls/context.h"

namespace skiff::server {

// What stat() says about a file (following symlinks), to notice replacements: a rename or a
// symlink swap changes the inode, an in-place rewrite the size or times.
struct FileStamp {
  int error = 0;  // errno of a failed stat; then the rest is zero
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  bool operator==(const FileStamp&) const = default;
};
FileStamp stamp_file(const std::string& path);

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
  // Stamps of files() taken right before the last build() read them.
  std::map<std::string, FileStamp> stamps;
  // Stamps the files, then builds a fresh context from them (blocking reads; main thread).
  std::expected<std::shared_ptr<const tls::TlsContext>, tls::ContextError> build();
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
