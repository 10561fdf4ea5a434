// TlsSetup: config tls sections -> settings -> validated contexts in slots.
#include "server/tls_setup.h"

#include <algorithm>
#include <cerrno>

namespace skiff::server {
namespace {

std::string where(const config::Config& config, const config::Position& pos,
                  const std::string& path) {
  return config.source + ":" + std::to_string(pos.line) + ":" + std::to_string(pos.col) + ": " +
         path + ": ";
}

}  // namespace

std::vector<std::string> TlsEntry::files() const {
  std::vector<std::string> files;
  if (server) {
    files = {server_settings.cert_file, server_settings.key_file, server_settings.client_ca_file};
  } else {
    files = {client_settings.ca_file, client_settings.cert_file, client_settings.key_file};
  }
  std::erase_if(files, [](const std::string& f) { return f.empty(); });
  return files;
}

FileStamp stamp_file(const std::string& path) {
  struct stat st {};
  FileStamp stamp;
  if (::stat(path.c_str(), &st) != 0) {
    stamp.error = errno;
    return stamp;
  }
  stamp.dev = st.st_dev;
  stamp.ino = st.st_ino;
  stamp.size = st.st_size;
  stamp.mtime_ns = int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec;
  stamp.ctime_ns = int64_t{st.st_ctim.tv_sec} * 1'000'000'000 + st.st_ctim.tv_nsec;
  return stamp;
}

std::expected<std::shared_ptr<const tls::TlsContext>, tls::ContextError> TlsEntry::build() {
  // Stamped before reading: a change after this point is seen by the next poll.
  for (const std::string& file : files()) stamps[file] = stamp_file(file);
  return server ? tls::TlsContext::make_server(server_settings)
                : tls::TlsContext::make_client(client_settings);
}

std::string TlsEntry::where(const tls::ContextError& error) const {
  switch (error.file) {
    case tls::SettingsFile::kCert:
      return cert_where;
    case tls::SettingsFile::kKey:
      return key_where;
    case tls::SettingsFile::kCa:
      return ca_where;
  }
  return cert_where;
}

base::Result<TlsSetup> build_tls(const config::Config& config) {
  TlsSetup setup;
  setup.listeners.resize(config.listeners.size());
  setup.clusters.resize(config.clusters.size());
  std::vector<size_t> listener_of, cluster_of;  // entry -> index, for publishing below

  for (size_t i = 0; i < config.listeners.size(); ++i) {
    const config::Listener& l = config.listeners[i];
    if (!l.tls) continue;
    const std::string path = "listeners[" + std::to_string(i) + "].tls.";
    TlsEntry entry;
    entry.name = "listener \"" + l.name + "\"";
    entry.server = true;
    entry.server_settings.cert_file = l.tls->cert.path;
    entry.server_settings.key_file = l.tls->key.path;
    entry.server_settings.client_ca_file = l.tls->client_ca.path;
    entry.server_settings.require_client_cert = l.tls->require_client_cert;
    entry.cert_where = where(config, l.tls->cert.pos, path + "cert");
    entry.key_where = where(config, l.tls->key.pos, path + "key");
    entry.ca_where = where(config, l.tls->client_ca.pos, path + "client_ca");
    setup.entries.push_back(std::move(entry));
    listener_of.push_back(i);
  }
  for (size_t i = 0; i < config.clusters.size(); ++i) {
    const config::Cluster& c = config.clusters[i];
    if (!c.tls) continue;
    const std::string path = "clusters[" + std::to_string(i) + "].tls.";
    TlsEntry entry;
    entry.name = "cluster \"" + c.name + "\"";
    entry.client_settings.ca_file = c.tls->ca.path;
    entry.client_settings.cert_file = c.tls->cert.path;
    entry.client_settings.key_file = c.tls->key.path;
    entry.client_settings.server_name = c.tls->server_name;
    entry.client_settings.identities = c.tls->identities;
    entry.cert_where = where(config, c.tls->cert.pos, path + "cert");
    entry.key_where = where(config, c.tls->key.pos, path + "key");
    // Without a 'ca' key the system trust store failed to load: blame the tls map.
    entry.ca_where = c.tls->ca.path.empty()
                         ? where(config, c.tls->pos, path.substr(0, path.size() - 1))
                         : where(config, c.tls->ca.pos, path + "ca");
    setup.entries.push_back(std::move(entry));
    cluster_of.push_back(i);
  }

  for (size_t e = 0; e < setup.entries.size(); ++e) {
    TlsEntry& entry = setup.entries[e];
    auto context = entry.build();
    if (!context) return base::fail(entry.where(context.error()) + context.error().message);
    entry.slot = std::make_shared<tls::ContextSlot>(std::move(*context));
    if (e < listener_of.size()) {
      setup.listeners[listener_of[e]] = entry.slot;
    } else {
      setup.clusters[cluster_of[e - listener_of.size()]] = entry.slot;
    }
  }
  return setup;
}

}  // namespace skiff::server
