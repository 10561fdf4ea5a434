// ClusterPool: one cluster's endpoints on one worker — round robin, HTTP/2 connections
// multiplexed up to the peer's MAX_CONCURRENT_STREAMS, a new connection when they are full,
// reconnect backoff after connect failures.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "h2/client_session.h"
#include "net/address.h"
#include "net/connection_stats.h"
#include "net/worker.h"
#include "policy/outlier_detector.h"
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
  // TLS origination (mTLS between sidecars); null = plaintext h2c. Each new connection takes
  // the slot's current context, so rotated certificates apply to new connections.
  std::shared_ptr<tls::ContextSlot> tls;
  // Shared by every worker; null when the cluster has no outlier_detection.
  std::shared_ptr<policy::OutlierDetector> outliers;
};

// Someone waiting for a stream slot (a proxy::Call). Answers come on a later loop turn.
class Waiter {
 public:
  virtual ~Waiter() = default;
  // |session| has capacity for one stream now; open it before returning.
  virtual void on_upstream_ready(h2::ClientSession* session, const EndpointSpec& endpoint) = 0;
  virtual void on_upstream_failure(std::string reason) = 0;
};

class ClusterPool final : public net::Flushable {
 public:
  // |stats| has one entry per endpoint of |spec| (this worker's counts), or is empty.
  ClusterPool(net::Worker& worker, const ClusterSpec& spec, const h2::Limits& limits,
              std::span<net::ConnectionStats> stats = {});
  ~ClusterPool() override;

  const ClusterSpec& spec() const { return spec_; }
  void acquire(Waiter* waiter);
  void cancel(Waiter* waiter);
  // Closes every connection (worker shutdown); no new ones are dialled afterwards.
  void shutdown();

  // net::Flushable: serve queued waiters (deferred so no answer is reentrant, C8).
  void flush() override;

 private:
  struct Endpoint {
    size_t index;
    const EndpointSpec* spec;
    std::vector<std::unique_ptr<h2::ClientSession>> sessions;
    std::deque<Waiter*> waiters;
    unsigned failures = 0;
    std::string last_error;
    net::ConnectionStats* stats = nullptr;
  };

  void schedule_service();
  void serve(Endpoint& endpoint);
  void dial(Endpoint& endpoint);
  void on_session_closed(Endpoint& endpoint, h2::Session* session);

  net::Worker& worker_;
  ClusterSpec spec_;
  h2::Limits limits_;
  std::vector<std::unique_ptr<Endpoint>> endpoints_;  // stable addresses for callbacks
  std::vector<EndpointHealth> health_;
  size_t cursor_ = 0;
  // Waiters that no endpoint can serve; failed on the next service pass.
  std::deque<std::pair<Waiter*, std::string>> failed_;
  bool service_scheduled_ = false;
  bool shut_down_ = false;
  std::minstd_rand rng_;
};

}  // namespace skiff::upstream
