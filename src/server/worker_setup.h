// WorkerSetup: everything one worker owns, wired in request order: listeners -> h2 server
// sessions -> call factories -> cluster pools. Lives on its worker's thread.
#pragma once

#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

#include "h2/server_session.h"
#include "net/listener.h"
#include "net/timer.h"
#include "net/worker.h"
#include "proxy/call.h"
#include "server/stats.h"
#include "tls/context.h"
#include "upstream/cluster_pool.h"

namespace skiff::server {

class WorkerSetup {
 public:
  // |listen_fds[i]| is this worker's socket for snapshot listener i. |on_finished| runs on the
  // worker thread once drain has completed and every handle is closing.
  // |listener_tls[i]| is snapshot listener i's TLS context slot, or null for plaintext.
  // |stats| and |calls| are this worker's statistics (owned by the server).
  WorkerSetup(net::Worker& worker, std::shared_ptr<const proxy::Snapshot> snapshot,
              std::vector<int> listen_fds,
              std::vector<std::shared_ptr<tls::ContextSlot>> listener_tls, WorkerStats& stats,
              telemetry::CallCounters* calls, const telemetry::CallObservers& observers,
              std::function<void()> on_finished);

  // Loop thread only.
  void start();
  // Stop accepting; GOAWAY every connection; finish once in-flight calls are done.
  void drain();
  // Drain time is up: close every connection now.
  void force_close();

 private:
  void on_connection(size_t listener, uv_stream_t* server);
  void maybe_finish();
  // A copy of the sessions' pointers, for walks whose steps may close (and so unmap) them.
  std::vector<h2::ServerSession*> open_sessions() const;

  net::Worker& worker_;
  std::shared_ptr<const proxy::Snapshot> snapshot_;
  std::vector<int> listen_fds_;
  std::vector<std::shared_ptr<tls::ContextSlot>> listener_tls_;
  WorkerStats& stats_;
  telemetry::CallCounters* calls_;
  const telemetry::CallObservers& observers_;
  std::function<void()> on_finished_;

  std::vector<std::unique_ptr<net::Listener>> listeners_;
  std::vector<std::unique_ptr<upstream::ClusterPool>> pools_;
  std::vector<std::unique_ptr<proxy::CallFactory>> factories_;
  std::unordered_map<h2::Session*, std::unique_ptr<h2::ServerSession>> sessions_;
  bool draining_ = false;
  bool finished_ = false;
  // Once the worker has had no connection for a second, hand freed heap back to the OS
  // (glibc keeps a busy thread's arena otherwise: RSS would stay at its peak after load).
  std::unique_ptr<net::Timer> trim_timer_;
};

}  // namespace skiff::server
