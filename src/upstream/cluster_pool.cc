// ClusterPool: endpoint selection, connection reuse and dialling for one cluster on one worker.
#include "upstream/cluster_pool.h"

#include <algorithm>
#include <utility>

#include "base/log.h"
#include "net/tcp_stream.h"
#include "tls/tls_transport.h"

namespace skiff::upstream {

AttemptTicket::AttemptTicket(AttemptTicket&& other) noexcept
    : pool_(std::exchange(other.pool_, nullptr)),
      endpoint_(other.endpoint_),
      started_(other.started_),
      responded_(other.responded_) {}

AttemptTicket& AttemptTicket::operator=(AttemptTicket&& other) noexcept {
  if (this != &other) {
    release();
    pool_ = std::exchange(other.pool_, nullptr);
    endpoint_ = other.endpoint_;
    started_ = other.started_;
    responded_ = other.responded_;
  }
  return *this;
}

void AttemptTicket::on_response(bool resource_exhausted) {
  if (pool_ == nullptr || responded_) return;
  responded_ = true;
  if (!pool_->keeps_latency()) return;
  pool_->on_attempt_response(endpoint_, base::SteadyClock::now() - started_, resource_exhausted);
}

void AttemptTicket::release() {
  if (pool_ == nullptr) return;
  ClusterPool* pool = std::exchange(pool_, nullptr);
  // Only peak_ewma reads the elapsed time: the others skip the clock read.
  const base::Duration elapsed =
      pool->keeps_latency() ? base::SteadyClock::now() - started_ : base::Duration::zero();
  pool->on_attempt_end(endpoint_, elapsed, responded_);
}

ClusterPool::ClusterPool(net::Worker& worker, const ClusterSpec& spec, const h2::Limits& limits,
                         std::span<net::ConnectionStats> stats)
    : worker_(worker),
      spec_(spec),
      limits_(limits),
      idle_timer_(worker.loop(), [this] { close_idle_connections(); }),
      rng_(worker.id() + 1) {
  for (const EndpointSpec& e : spec_.endpoints) {
    size_t i = endpoints_.size();
    endpoints_.push_back(std::make_unique<Endpoint>(
        Endpoint{i, &e, {}, {}, 0, {}, i < stats.size() ? &stats[i] : nullptr}));
  }
  health_.resize(endpoints_.size());
  in_flight_.resize(endpoints_.size());
  if (spec_.load_balancing == LoadBalancing::kPeakEwma) ewma_.resize(endpoints_.size());
  if (spec_.load_balancing == LoadBalancing::kLeastRequest) loads_.resize(endpoints_.size());
  // Workers start at different endpoints so a cluster's load spreads from the first call.
  cursor_ = static_cast<size_t>(worker.id()) % std::max<size_t>(1, endpoints_.size());
}

ClusterPool::~ClusterPool() {
  shutdown();
  worker_.cancel_flush(this);
  // Units still held (sessions whose close has not been reported, waiters never answered).
  for (auto& e : endpoints_) {
    for (size_t i = 0; i < e->sessions.size(); ++i) {
      spec_.limits->release(policy::ClusterResource::kConnections);
    }
    for (const Queued& q : e->waiters) dequeued(q);
  }
}

void ClusterPool::acquire(Waiter* waiter, std::optional<size_t> avoid_endpoint) {
  std::optional<size_t> index;
  if (!shut_down_) index = pick(avoid_endpoint);
  if (!index) {
    std::string reason = "no healthy endpoint in cluster \"" + spec_.name + "\"";
    if (!shut_down_ && !endpoints_.empty() && !endpoints_.front()->last_error.empty()) {
      reason += " (last error: " + endpoints_.front()->last_error + ")";
    }
    failed_.push_back({waiter, std::move(reason)});
  } else {
    endpoints_[*index]->waiters.push_back({waiter});
  }
  schedule_service();
}

std::optional<size_t> ClusterPool::pick(std::optional<size_t> avoid) {
  const size_t n = endpoints_.size();
  if (spec_.load_balancing == LoadBalancing::kRoundRobin) {
    bool timed = false;
    for (size_t i = 0; i < n; ++i) {
      if (spec_.outliers) health_[i].ejected_until = spec_.outliers->ejected_until(i);
      timed |= health_[i].backoff_until > base::TimePoint{} ||
               health_[i].ejected_until > base::TimePoint{};
    }
    // While no endpoint was ever backed off or ejected (times at or before the steady clock's
    // epoch), every one is eligible at any time: the clock is read only when a time is
    // compared (every call picks).
    const base::TimePoint now = timed ? base::SteadyClock::now() : base::TimePoint{};
    size_t index = pick_round_robin(health_, &cursor_, now);
    if (avoid && index == *avoid) {
      // The cursor moved past it: the next eligible one, or it again when it is the only one.
      index = pick_round_robin(health_, &cursor_, now);
    }
    return index < n ? std::optional<size_t>(index) : std::nullopt;
  }
  const base::TimePoint now = base::SteadyClock::now();
  policy::PickOptions options;
  options.ejections = spec_.outliers.get();
  if (avoid) options.avoid = std::span<const size_t>(&*avoid, 1);
  const uint64_t random = next_random();
  if (spec_.load_balancing == LoadBalancing::kLeastRequest) {
    for (size_t i = 0; i < n; ++i) loads_[i] = load_of(i);
    return policy::pick_least_request(loads_, options, random, now);
  }
  for (size_t i = 0; i < n; ++i) ewma_[i].load = load_of(i);
  return policy::pick_peak_ewma(ewma_, spec_.peak_ewma, options, random, now);
}

policy::EndpointLoad ClusterPool::load_of(size_t endpoint) const {
  const size_t queued = endpoints_[endpoint]->waiters.size();
  return {static_cast<uint32_t>(in_flight_[endpoint] + queued), health_[endpoint].backoff_until};
}

uint64_t ClusterPool::next_random() {
  // minstd_rand yields 31 bits: one draw per half (each half picks among a few endpoints).
  const uint64_t low = rng_();
  const uint64_t high = rng_();
  return low | (high << 32);
}

AttemptTicket ClusterPool::start_attempt(size_t endpoint) {
  ++in_flight_[endpoint];
  // The start time is only read for peak_ewma's latency samples.
  return AttemptTicket(this, endpoint,
                       keeps_latency() ? base::SteadyClock::now() : base::TimePoint{});
}

void ClusterPool::on_attempt_response(size_t endpoint, base::Duration rtt,
                                      bool resource_exhausted) {
  if (ewma_.empty()) return;  // only peak_ewma keeps latency
  ewma_[endpoint].latency.observe(rtt, resource_exhausted, spec_.peak_ewma,
                                  base::SteadyClock::now());
}

void ClusterPool::on_attempt_end(size_t endpoint, base::Duration elapsed, bool responded) {
  // Tickets pair each decrement with one increment; the guard only keeps a count from wrapping.
  if (in_flight_[endpoint] > 0) --in_flight_[endpoint];
  if (ewma_.empty() || responded) return;
  // No response (per-try timeout, deadline, reset, cancel): at least |elapsed|, if slower.
  ewma_[endpoint].latency.observe_abandoned(elapsed, in_flight_[endpoint], spec_.peak_ewma,
                                            base::SteadyClock::now());
}

void ClusterPool::cancel(Waiter* waiter) {
  for (auto& e : endpoints_) {
    std::erase_if(e->waiters, [this, waiter](const Queued& q) {
      if (q.waiter != waiter) return false;
      dequeued(q);
      return true;
    });
  }
  std::erase_if(failed_, [waiter](const Failed& f) { return f.waiter == waiter; });
}

void ClusterPool::shutdown() {
  shut_down_ = true;
  idle_timer_.stop();
  for (auto& e : endpoints_) {
    // close() reports through on_closed, which erases from |sessions|: iterate a copy.
    std::vector<h2::ClientSession*> sessions;
    for (auto& s : e->sessions) sessions.push_back(s.get());
    for (h2::ClientSession* s : sessions) s->close("worker shutdown");
  }
}

void ClusterPool::schedule_service() {
  if (service_scheduled_) return;
  service_scheduled_ = true;
  worker_.request_flush(this);
}

void ClusterPool::flush() {
  service_scheduled_ = false;
  while (!failed_.empty()) {
    Failed f = std::move(failed_.front());
    failed_.pop_front();
    f.waiter->on_upstream_failure(std::move(f.reason), f.overflow);
  }
  for (auto& e : endpoints_) serve(*e);
}

void ClusterPool::serve(Endpoint& endpoint) {
  while (!endpoint.waiters.empty()) {
    // Light load (fewer calls in flight here than connections allowed): each call takes an
    // idle connection, so none waits behind another's reads and writes on either side (the
    // upstream's too). Otherwise calls share the first connection with a free stream slot, and
    // its writes; the scan stops there without touching the others.
    const bool spread = in_flight_[endpoint.index] < spec_.max_connections_per_endpoint;
    h2::ClientSession* session = nullptr;
    for (auto& s : endpoint.sessions) {
      if (!s->has_capacity()) continue;
      if (session == nullptr || s->active_streams() < session->active_streams()) {
        session = s.get();
      }
      if (!spread || session->active_streams() == 0) break;
    }
    if (session == nullptr || (spread && session->active_streams() > 0)) {
      // No free slot, or none idle under light load: dial if may_dial(). Under light load the
      // call does not wait for the dial: it shares the least busy connection, and the new one
      // serves later calls.
      if (may_dial(endpoint)) {
        if (spec_.limits->try_acquire(policy::ClusterResource::kConnections)) {
          dial(endpoint);
        } else if (endpoint.sessions.empty()) {
          // Nothing here will ever have a slot for them: answer now.
          fail_waiters(
              endpoint,
              "cluster \"" + spec_.name + "\" circuit open: max_connections (" +
                  std::to_string(spec_.limits->limit(policy::ClusterResource::kConnections)) + ")",
              /*overflow=*/true);
          schedule_service();
          return;
        }
        // Else they wait for a stream slot on this endpoint's connections.
      }
    }
    if (session == nullptr) {
      // Everyone still queued waits for a connection or a stream slot: a pending request.
      for (auto it = endpoint.waiters.begin(); it != endpoint.waiters.end();) {
        if (it->pending) {
          ++it;
        } else if (spec_.limits->try_acquire(policy::ClusterResource::kPendingRequests)) {
          it->pending = true;
          ++it;
        } else {
          failed_.push_back(
              {it->waiter,
               "cluster \"" + spec_.name + "\" circuit open: max_pending_requests (" +
                   std::to_string(spec_.limits->limit(policy::ClusterResource::kPendingRequests)) +
                   ")",
               /*overflow=*/true});
          it = endpoint.waiters.erase(it);
          schedule_service();
        }
      }
      return;
    }
    const Queued queued = endpoint.waiters.front();
    endpoint.waiters.pop_front();
    dequeued(queued);
    queued.waiter->on_upstream_ready(session, *endpoint.spec, start_attempt(endpoint.index));
  }
}

bool ClusterPool::may_dial(const Endpoint& endpoint) const {
  if (shut_down_) return false;
  // A connection going away (GOAWAY, or its streams used up) takes no new calls: it does not
  // count against the limit while its last streams finish.
  const auto serving =
      std::count_if(endpoint.sessions.begin(), endpoint.sessions.end(),
                    [](const auto& s) { return !s->going_away() && !s->closed(); });
  if (static_cast<uint32_t>(serving) >= spec_.max_connections_per_endpoint) return false;
  const bool connecting = std::any_of(endpoint.sessions.begin(), endpoint.sessions.end(),
                                      [](const auto& s) { return !s->ready() && !s->closed(); });
  if (connecting) return false;
  return endpoint.sessions.empty() || endpoint.redial_after == base::TimePoint{} ||
         base::SteadyClock::now() >= endpoint.redial_after;
}

void ClusterPool::close_idle_connections() {
  bool extra = false;
  for (auto& e : endpoints_) {
    std::vector<h2::ClientSession*> idle;
    bool kept = false;
    for (auto& s : e->sessions) {
      const bool opened = s->take_activity();
      if (!s->ready() || s->closed() || s->going_away()) continue;
      if (!kept) {
        kept = true;  // the endpoint keeps one connection, idle or not
      } else if (!opened && s->active_streams() == 0) {
        idle.push_back(s.get());
      }
    }
    // shutdown() may close at once, which erases from |sessions|: hence the copy.
    for (h2::ClientSession* s : idle) s->shutdown();
    extra |= e->sessions.size() > 1;
  }
  if (extra && !shut_down_) idle_timer_.start(spec_.idle_connection_timeout);
}

void ClusterPool::fail_waiters(Endpoint& endpoint, const std::string& reason, bool overflow) {
  while (!endpoint.waiters.empty()) {
    const Queued queued = endpoint.waiters.front();
    endpoint.waiters.pop_front();
    dequeued(queued);
    failed_.push_back({queued.waiter, reason, overflow});
  }
}

void ClusterPool::dequeued(const Queued& queued) {
  if (queued.pending) spec_.limits->release(policy::ClusterResource::kPendingRequests);
}

void ClusterPool::dial(Endpoint& endpoint) {
  h2::ClientSession::Callbacks callbacks;
  callbacks.on_ready = [this](h2::ClientSession*) { schedule_service(); };
  // Only an answering HTTP/2 server clears the endpoint's failures: a peer that accepts and
  // closes (or rejects our certificate after the handshake) keeps backing off.
  callbacks.on_established = [this, &endpoint](h2::ClientSession*) {
    endpoint.failures = 0;
    endpoint.last_error.clear();
    endpoint.redial_after = {};
    health_[endpoint.index].backoff_until = {};
  };
  callbacks.on_capacity = [this](h2::ClientSession*) { schedule_service(); };
  std::unique_ptr<net::Transport> transport;
  if (spec_.tls) {
    auto tls = std::make_unique<tls::TlsTransport>(worker_.loop(), spec_.tls->get());
    tls->set_stats(endpoint.stats);
    transport = std::move(tls);
  } else {
    transport = std::make_unique<net::TcpStream>(worker_.loop());
  }
  auto session = std::make_unique<h2::ClientSession>(worker_, limits_, std::move(transport),
                                                     std::move(callbacks));
  if (spec_.max_requests_per_connection) {
    session->set_max_streams(*spec_.max_requests_per_connection);
  }
  session->set_on_closed([this, &endpoint](h2::Session* s) { on_session_closed(endpoint, s); });
  session->set_stats(endpoint.stats);
  h2::ClientSession* raw = session.get();
  endpoint.sessions.push_back(std::move(session));
  if (endpoint.sessions.size() > 1 && !idle_timer_.active()) {
    idle_timer_.start(spec_.idle_connection_timeout);
  }
  SKIFF_LOG(kDebug) << "cluster " << spec_.name << ": dialling " << endpoint.spec->name;
  raw->connect(endpoint.spec->address, spec_.connect_timeout);
}

void ClusterPool::on_session_closed(Endpoint& endpoint, h2::Session* closed) {
  auto it = std::find_if(endpoint.sessions.begin(), endpoint.sessions.end(),
                         [closed](const auto& s) { return s.get() == closed; });
  if (it == endpoint.sessions.end()) return;
  std::unique_ptr<h2::ClientSession> session = std::move(*it);
  endpoint.sessions.erase(it);
  spec_.limits->release(policy::ClusterResource::kConnections);
  if (!session->established() && !shut_down_) {
    if (endpoint.stats != nullptr) endpoint.stats->connect_failures.add();
    endpoint.failures++;
    endpoint.last_error = session->close_reason();
    double jitter = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
    const base::TimePoint retry_at =
        base::SteadyClock::now() + reconnect_backoff(endpoint.failures, jitter);
    const bool still_up =
        std::any_of(endpoint.sessions.begin(), endpoint.sessions.end(),
                    [](const auto& s) { return s->established() && !s->closed(); });
    if (still_up) {
      // An extra connection failed while another one serves: the endpoint stays eligible and
      // its waiters keep waiting for a stream slot; only the next dial backs off.
      endpoint.redial_after = retry_at;
      SKIFF_LOG(kWarn) << "cluster " << spec_.name << ": " << endpoint.spec->name << ": "
                       << endpoint.last_error << " (an existing connection still serves)";
    } else {
      // A connect failure: back off this endpoint and fail whoever waited for it.
      health_[endpoint.index].backoff_until = retry_at;
      SKIFF_LOG(kWarn) << "cluster " << spec_.name << ": " << endpoint.spec->name << ": "
                       << endpoint.last_error;
      fail_waiters(endpoint, "upstream " + endpoint.spec->name + ": " + endpoint.last_error);
    }
  }
  worker_.defer_delete(std::move(session));
  schedule_service();
}

}  // namespace skiff::upstream
