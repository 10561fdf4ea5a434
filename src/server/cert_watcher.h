// CertWatcher: on the main thread, notices when certificate, key or CA files change on disk and
// publishes rebuilt TLS contexts; workers use them for new handshakes, existing connections
// keep theirs. A rebuild that fails (unreadable file, key not matching the certificate) is
// logged and the current context keeps serving.
//
// Every kPollInterval each file is stat()ed and compared with the stamp taken just before it was
// last read (so a change that lands between startup and the first poll is not missed). stat
// follows symlinks, so an atomic rename over the file and a Kubernetes/SPIRE symlink swap
// (..data -> new directory) both show up as a new inode or mtime. A change waits kSettleDelay
// for its sibling files (cert and key are often replaced one after the other) before the rebuild.
// A handful of stat calls per interval on the main thread costs microseconds.
#pragma once

#include <uv.h>

#include <atomic>
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

  // |entries| must outlive the watcher (they belong to the server's TlsSetup); their stamps
  // are the baseline.
  CertWatcher(uv_loop_t* loop, std::vector<TlsEntry>& entries);
  ~CertWatcher();
  CertWatcher(const CertWatcher&) = delete;
  CertWatcher& operator=(const CertWatcher&) = delete;

  // Starts polling every file of every entry (nothing to do without TLS).
  void start();
  // Closes the timers; they are freed by their close callbacks while the loop runs on.
  void close();

  // Any thread (metrics): certificate reloads that took effect, and ones rejected (the old
  // certificate keeps serving).
  uint64_t reloads() const { return reloads_.load(std::memory_order_relaxed); }
  uint64_t reload_failures() const { return reload_failures_.load(std::memory_order_relaxed); }

 private:
  struct TimerBox;  // a uv_timer_t in a heap box freed by its close callback (C6)

  void poll();
  void rebuild();

  uv_loop_t* loop_;
  std::vector<TlsEntry>& entries_;
  std::map<std::string, FileStamp> current_;  // the last stamp seen per file
  std::set<size_t> dirty_;                    // entries to rebuild when the settle timer fires
  TimerBox* poll_timer_ = nullptr;
  TimerBox* settle_timer_ = nullptr;
  bool closed_ = false;
  std::atomic<uint64_t> reloads_{0};
  std::atomic<uint64_t> reload_failures_{0};
};

}  // namespace skiff::server
