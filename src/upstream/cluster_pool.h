// ClusterPool: one cluster's endpoints on one worker — load balancing (round robin, P2C least
// request or peak EWMA over this worker's view), HTTP/2 connections (an idle one per call while
// fewer calls are in flight than connections allowed, else multiplexed up to the peer's
// MAX_CONCURRENT_STREAMS, a new connection when they are full), reconnect backoff after connect
// failures.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "h2/client_session.h"
#include "net/address.h"
#include "net/connection_stats.h"
#include "net/timer.h"
#include "net/worker.h"
#include "policy/cluster_limits.h"
#include "policy/outlier_detector.h"
#include "policy/p2c.h"
#include "policy/peak_ewma.h"
#include "tls/context.h"
#include "upstream/load_balancer.h"

namespace skiff::upstream {

struct EndpointSpec {
  std::string name;  // as configured, e.g. "users-0:8080"
  net::SocketAddress address;
  uint32_t index = 0;  // position in the cluster (keys the outlier detector)
};

struct ClusterSpec {
  std::string name;
  std::vector<EndpointSpec> endpoints;
  std::chrono::milliseconds connect_timeout{1000};
  uint32_t max_connections_per_endpoint = 4;
  // A connection beyond an endpoint's first that opens no stream for this long is closed.
  std::chrono::milliseconds idle_connection_timeout{30'000};
  // Streams one connection carries before it is replaced (none: only the stream-id limit).
  std::optional<uint32_t> max_requests_per_connection;
  LoadBalancing load_balancing = LoadBalancing::kRoundRobin;
  policy::PeakEwmaParams peak_ewma;  // used with LoadBalancing::kPeakEwma only
  // TLS origination (mTLS between sidecars); null = plaintext h2c. Each new connection takes
  // the slot's current context, so rotated certificates apply to new connections.
  std::shared_ptr<tls::ContextSlot> tls;
  // Shared by every worker; null when the cluster has no outlier_detection.
  std::shared_ptr<policy::OutlierDetector> outliers;
  // Cluster thresholds (connections, pending and active requests, retries), shared by every
  // worker. Always set: thresholds are always on (Envoy defaults when not configured).
  std::shared_ptr<policy::ClusterLimits> limits = std::make_shared<policy::ClusterLimits>();
};

class ClusterPool;

// One attempt in flight from this worker on one endpoint. It counts in the endpoint's active
// requests (what least_request and peak_ewma compare) from the moment the pool hands out the
// stream slot until it is released or destroyed: exactly once, whatever way the attempt ends.
// Move-only; a default-constructed (or released) ticket does nothing. The pool must outlive it.
class AttemptTicket {
 public:
  AttemptTicket() = default;
  AttemptTicket(AttemptTicket&& other) noexcept;
  AttemptTicket& operator=(AttemptTicket&& other) noexcept;
  AttemptTicket(const AttemptTicket&) = delete;
  AttemptTicket& operator=(const AttemptTicket&) = delete;
  ~AttemptTicket() { release(); }

  explicit operator bool() const { return pool_ != nullptr; }
  // Response headers arrived: the time since the attempt started is the endpoint's latency
  // sample (peak_ewma); |resource_exhausted| = the status was RESOURCE_EXHAUSTED (penalised).
  // Only the first call per attempt counts.
  void on_response(bool resource_exhausted);
  // The attempt is over (stream closed, reset, retried, cancelled, timed out). Idempotent.
  void release();

 private:
  friend class ClusterPool;
  AttemptTicket(ClusterPool* pool, size_t endpoint, base::TimePoint started)
      : pool_(pool), endpoint_(endpoint), started_(started) {}

  ClusterPool* pool_ = nullptr;
  size_t endpoint_ = 0;
  base::TimePoint started_{};
  bool responded_ = false;
};

// Someone waiting for a stream slot (a proxy::Call). Answers come on a later loop turn.
class Waiter {
 public:
  virtual ~Waiter() = default;
  // |session| has capacity for one stream now; open it before returning. |ticket| is the
  // attempt's load on |endpoint|: keep it while the upstream stream is open (dropping it ends
  // the attempt as far as load balancing is concerned).
  virtual void on_upstream_ready(h2::ClientSession* session, const EndpointSpec& endpoint,
                                 AttemptTicket ticket) = 0;
  // No stream for this waiter: the endpoint is unreachable, or (|overflow|) the cluster's
  // max_pending_requests or max_connections is reached, which is no verdict on the upstream.
  virtual void on_upstream_failure(std::string reason, bool overflow) = 0;
};

class ClusterPool final : public net::Flushable {
 public:
  // |stats| has one entry per endpoint of |spec| (this worker's counts), or is empty.
  ClusterPool(net::Worker& worker, const ClusterSpec& spec, const h2::Limits& limits,
              std::span<net::ConnectionStats> stats = {});
  ~ClusterPool() override;

  const ClusterSpec& spec() const { return spec_; }
  // Picks an endpoint by the cluster's policy, skipping endpoints in connect backoff and ejected
  // ones, and queues |waiter| on it. |avoid_endpoint| (a retry's previous endpoint) is picked
  // only when no other endpoint is eligible.
  void acquire(Waiter* waiter, std::optional<size_t> avoid_endpoint = std::nullopt);
  void cancel(Waiter* waiter);
  // Closes every connection (worker shutdown); no new ones are dialled afterwards.
  void shutdown();

  // net::Flushable: serve queued waiters (deferred so no answer is reentrant, C8).
  void flush() override;

 private:
  friend class AttemptTicket;
  struct Queued {
    Waiter* waiter;
    // Holds a unit of the cluster's kPendingRequests: it found no stream slot when served.
    bool pending = false;
  };
  struct Endpoint {
    size_t index;
    const EndpointSpec* spec;
    // Each session holds one unit of the cluster's kConnections, returned when it closes.
    std::vector<std::unique_ptr<h2::ClientSession>> sessions;
    std::deque<Queued> waiters;
    unsigned failures = 0;
    std::string last_error;
    net::ConnectionStats* stats = nullptr;
    // A connect failed while another connection was up: the endpoint stays eligible, only
    // further dials wait until then (the epoch: no wait).
    base::TimePoint redial_after{};
  };

  void schedule_service();
  void serve(Endpoint& endpoint);
  // Closes (GOAWAY) every connection but each endpoint's first ready one that opened no stream
  // since the last check and has none open; runs every idle_connection_timeout while some
  // endpoint has more than one connection.
  void close_idle_connections();
  // Whether |endpoint| may dial one more connection now: below its limit, none on its way, and
  // past redial_after.
  bool may_dial(const Endpoint& endpoint) const;
  void dial(Endpoint& endpoint);
  // Moves every waiter of |endpoint| to failed_ with |reason|, returning pending units.
  void fail_waiters(Endpoint& endpoint, const std::string& reason, bool overflow = false);
  // The end of a queued waiter's wait (served, failed or cancelled).
  void dequeued(const Queued& queued);
  void on_session_closed(Endpoint& endpoint, h2::Session* session);
  // nullopt: no eligible endpoint.
  std::optional<size_t> pick(std::optional<size_t> avoid);
  // Load as P2C sees it: attempts in flight plus waiters queued on the endpoint.
  policy::EndpointLoad load_of(size_t endpoint) const;
  uint64_t next_random();
  // AttemptTicket's side: the counters and the latency estimate.
  AttemptTicket start_attempt(size_t endpoint);
  // Attempt latencies are kept (peak_ewma): only then do tickets read the clock.
  bool keeps_latency() const { return !ewma_.empty(); }
  void on_attempt_response(size_t endpoint, base::Duration rtt, bool resource_exhausted);
  void on_attempt_end(size_t endpoint, base::Duration elapsed, bool responded);

  net::Worker& worker_;
  ClusterSpec spec_;
  h2::Limits limits_;
  std::vector<std::unique_ptr<Endpoint>> endpoints_;  // stable addresses for callbacks
  std::vector<EndpointHealth> health_;
  size_t cursor_ = 0;
  std::vector<uint32_t> in_flight_;          // per endpoint, this worker's attempts
  std::vector<policy::EwmaEndpoint> ewma_;   // peak_ewma: estimates (+ load scratch)
  std::vector<policy::EndpointLoad> loads_;  // least_request: scratch for each pick
  // Waiters that no endpoint can serve; failed on the next service pass.
  struct Failed {
    Waiter* waiter;
    std::string reason;
    bool overflow = false;
  };
  std::deque<Failed> failed_;
  net::Timer idle_timer_;
  bool service_scheduled_ = false;
  bool shut_down_ = false;
  std::minstd_rand rng_;
};

}  // namespace skiff::upstream
