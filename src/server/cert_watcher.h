// CertWatcher: on the main thread, notices when certificate, key or CA files change on disk and
// publishes rebuilt TLS contexts; workers use them for new handshakes, existing connections
// keep theirs. A rebuild that fails (unreadable file, key not matching the certificate) is
// logged and the current context keeps serving.
//
// Files are polled (uv_fs_poll, stat every kPollInterval): stat follows symlinks, so an atomic
// rename over the file and a Kubernetes/SPIRE symlink swap (..data -> new directory) both show
// up as a new inode or mtime. A change waits kSettleDelay for its sibling files (cert and key
// are often replaced one after the other) before the rebuild.
#pragma once

#include <uv.h>

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "server/tls_setup.h"

namespace skiff::server {

class CertWatcher {
 public:
  static constexpr std::chrono::milliseconds kPollInterval{250};
  static constexpr std::chrono::milliseconds kSettleDelay{100};

  // |entries| must outlive the watcher (they belong to the server's TlsSetup).
  CertWatcher(uv_loop_t* loop, std::vector<TlsEntry>& entries);
  ~CertWatcher();
  CertWatcher(const CertWatcher&) = delete;
  CertWatcher& operator=(const CertWatcher&) = delete;

  // Starts polling every file of every entry.
  void start();
  // Closes the handles; they are freed by their close callbacks while the loop runs on.
  void close();

 private:
  struct Poll;  // one uv_fs_poll_t per file, in a heap box freed by its close callback
  struct Settle;

  void on_change(const std::string& file, int status);
  void rebuild();

  uv_loop_t* loop_;
  std::vector<TlsEntry>& entries_;
  std::vector<Poll*> polls_;
  Settle* settle_ = nullptr;
  std::set<size_t> dirty_;  // entries to rebuild when the settle timer fires
  bool closed_ = false;
};

}  // namespace skiff::server
