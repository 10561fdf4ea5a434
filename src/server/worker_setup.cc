// WorkerSetup: per-worker wiring and the worker's part of graceful drain.
#include "server/worker_setup.h"

#include <malloc.h>

#include "base/log.h"
#include "net/tcp_stream.h"
#include "tls/tls_transport.h"

namespace skiff::server {

WorkerSetup::WorkerSetup(net::Worker& worker, std::shared_ptr<const proxy::Snapshot> snapshot,
                         std::vector<int> listen_fds,
                         std::vector<std::shared_ptr<tls::ContextSlot>> listener_tls,
                         WorkerStats& stats, telemetry::CallCounters* calls,
                         const telemetry::CallObservers& observers,
                         std::function<void()> on_finished)
    : worker_(worker),
      snapshot_(std::move(snapshot)),
      listen_fds_(std::move(listen_fds)),
      listener_tls_(std::move(listener_tls)),
      stats_(stats),
      calls_(calls),
      observers_(observers),
      on_finished_(std::move(on_finished)) {}

namespace {

constexpr std::chrono::milliseconds kTrimAfterIdle{1000};

}  // namespace

void WorkerSetup::start() {
  trim_timer_ = std::make_unique<net::Timer>(worker_.loop(), [] { malloc_trim(0); });
  for (size_t c = 0; c < snapshot_->clusters.size(); ++c) {
    pools_.push_back(std::make_unique<upstream::ClusterPool>(
        worker_, snapshot_->clusters[c], snapshot_->limits, stats_.endpoints[c]));
  }
  for (size_t i = 0; i < snapshot_->listeners.size(); ++i) {
    factories_.push_back(
        std::make_unique<proxy::CallFactory>(worker_, snapshot_, i, pools_, calls_, observers_));
    auto listener = std::make_unique<net::Listener>(
        worker_.loop(), [this, i](uv_stream_t* server) { on_connection(i, server); });
    if (auto started = listener->start(listen_fds_[i]); !started) {
      SKIFF_LOG(kError) << "worker " << worker_.id() << ": listener \""
                        << snapshot_->listeners[i].name << "\": " << started.error().message;
    }
    listeners_.push_back(std::move(listener));
  }
}

void WorkerSetup::on_connection(size_t listener, uv_stream_t* server) {
  // TLS listeners: each handshake uses the slot's current context (rotated certificates apply
  // to new connections only).
  net::ConnectionStats* stats = &stats_.listeners[listener];
  std::unique_ptr<net::Transport> transport;
  if (listener < listener_tls_.size() && listener_tls_[listener]) {
    auto tls = std::make_unique<tls::TlsTransport>(worker_.loop(), listener_tls_[listener]->get());
    tls->set_stats(stats);
    transport = std::move(tls);
  } else {
    transport = std::make_unique<net::TcpStream>(worker_.loop());
  }
  auto session = std::make_unique<h2::ServerSession>(worker_, snapshot_->limits,
                                                     std::move(transport), *factories_[listener]);
  if (!session->start(server)) return;  // accept failed (peer gone, EMFILE): nothing to undo
  SKIFF_LOG(kDebug) << "connection from " << session->peer_address() << " accepted";
  session->set_stats(stats);
  session->set_on_closed([this](h2::Session* closed) {
    auto it = sessions_.find(closed);
    if (it == sessions_.end()) return;
    worker_.defer_delete(std::move(it->second));
    sessions_.erase(it);
    if (draining_) maybe_finish();
    if (sessions_.empty() && trim_timer_) trim_timer_->start(kTrimAfterIdle);
  });
  h2::ServerSession* key = session.get();
  trim_timer_->stop();
  sessions_.emplace(key, std::move(session));
  if (draining_) key->start_drain();  // may close it (mid-handshake): it is in the map by now
}

void WorkerSetup::drain() {
  if (draining_) return;
  draining_ = true;
  listeners_.clear();  // closes the sockets: no new connections
  // start_drain may close a session (mid-handshake), which takes it out of the map.
  for (h2::ServerSession* s : open_sessions()) s->start_drain();
  maybe_finish();
}

void WorkerSetup::force_close() {
  draining_ = true;
  listeners_.clear();
  for (h2::ServerSession* s : open_sessions()) s->close("drain timeout");
  maybe_finish();
}

std::vector<h2::ServerSession*> WorkerSetup::open_sessions() const {
  std::vector<h2::ServerSession*> open;
  for (const auto& [key, session] : sessions_) open.push_back(session.get());
  return open;
}

void WorkerSetup::maybe_finish() {
  if (finished_ || !sessions_.empty()) return;
  finished_ = true;
  // Tear down on a later loop turn: we may be inside a session's close path.
  worker_.post([this] {
    trim_timer_.reset();
    factories_.clear();
    pools_.clear();  // closes upstream connections
    worker_.close_own_handles();
    if (on_finished_) on_finished_();
  });
}

}  // namespace skiff::server
