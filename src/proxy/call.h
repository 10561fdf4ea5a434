// Call: one downstream gRPC stream bound to its upstream stream — the request state machine
// and the only place where routing and deadline decisions become timers and I/O.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "grpc/framer.h"
#include "grpc/local_reply.h"
#include "h2/body.h"
#include "h2/client_session.h"
#include "h2/server_session.h"
#include "net/timer.h"
#include "policy/hedging_policy.h"
#include "policy/message_rate_limiter.h"
#include "proxy/snapshot.h"
#include "telemetry/metrics.h"
#include "telemetry/observers.h"
#include "telemetry/trace_context.h"
#include "upstream/cluster_pool.h"

namespace skiff::proxy {

// What a Call needs from its worker: the snapshot it started with and the worker's pools.
struct CallContext {
  net::Worker& worker;
  std::shared_ptr<const Snapshot> snapshot;
  const ListenerView& listener;
  std::vector<std::unique_ptr<upstream::ClusterPool>>& pools;  // indexed like snapshot clusters
  telemetry::CallCounters* calls;  // this worker's, indexed by metric series
  const telemetry::CallObservers& observers;
};

class Call final : public h2::StreamHandler,
                   public h2::ClientStreamHandler,
                   public upstream::Waiter {
 public:
  Call(CallContext context, h2::ServerStream& downstream);
  ~Call() override;

  // Routes the request and starts the upstream attempt, or answers locally.
  void start();

  // h2::StreamHandler (downstream events)
  void on_request_data(const uint8_t* data, size_t len) override;
  void on_request_end() override;
  void on_stream_close(uint32_t error_code) override;
  h2::Body* response_body() override { return &response_body_; }

  // h2::ClientStreamHandler (upstream events)
  void on_response_headers(h2::HeaderList headers, bool end_stream) override;
  void on_response_data(const uint8_t* data, size_t len) override;
  void on_response_trailers(h2::HeaderList trailers) override;
  void on_upstream_close(uint32_t error_code) override;
  h2::Body* request_body() override { return &request_body_; }

  // upstream::Waiter
  void on_upstream_ready(h2::ClientSession* session, const upstream::EndpointSpec& endpoint,
                         upstream::AttemptTicket ticket) override;
  void on_upstream_failure(std::string reason, bool overflow) override;

 private:
  // kRouting -> kWaiting (for a pool slot, or a retry's backoff) -> kForwarding (upstream
  // stream open) -> [kHolding] -> kCommitted (response headers sent downstream) -> kDone
  // (response complete or answered). A retry goes kForwarding or kHolding -> kWaiting (or
  // kWaiting -> kWaiting after a connect failure). kHolding: response headers (and up to
  // hold_limit() bytes) kept back until the trailers say whether to retry (unary requests on
  // retry routes only). Hedging routes go kRouting -> kHedging (copies racing) -> kForwarding
  // (the copy whose response headers came first is adopted) or kDone (a trailers-only answer).
  enum class State { kRouting, kWaiting, kForwarding, kHolding, kHedging, kCommitted, kDone };
  // One hedged copy of the request, and the hedging state of the call (hedging routes only).
  class Copy;
  struct Hedge;
  void transition_to(State next);

  // Answers with a trailers-only response (only before commit) and cancels the upstream.
  void reply_local(grpc::LocalReply reply);
  // The cluster's limits shed the call (an overflow reply): counted with the breaker's
  // rejections, and no verdict for the method breaker.
  void reply_shed(grpc::LocalReply reply);
  // Ends a committed response early with |code| at a message boundary, else resets it.
  void abort_committed(grpc::StatusCode code, std::string_view message, uint32_t h2_error);
  void on_deadline();
  // The downstream sent broken gRPC framing (|code| INTERNAL: answered before commit, reset
  // after it) or went over a route limit (RESOURCE_EXHAUSTED: message size or rate).
  void reject_request(grpc::StatusCode code, const char* what);
  // What counts against the upstream (the route's failure codes).
  bool is_failure(grpc::StatusCode code) const;
  // Ends the call for a response message over the route's limit.
  void reject_response_too_large(bool forwarded_at_boundary);
  // Route admission, in DESIGN.md's order around the deadline check: rate limit before it,
  // circuit breaker after it (so a client's bad grpc-timeout never counts against the upstream).
  // False when the call was answered.
  bool admit_rate_limit();
  bool admit_breaker();
  // Takes the call's kRequests unit of the cluster's thresholds, or answers UNAVAILABLE.
  bool admit_cluster_limits();
  // Records the call's final grpc-status for the breaker (from the upstream or skiff itself).
  void note_status(std::optional<grpc::StatusCode> code) { final_status_ = code; }
  void note_status(const h2::HeaderList& headers);
  // The call is over: feed its outcome to the route's breaker.
  void report_outcome();
  // The call is over: count it in its metric series; hand its record to the access log and
  // its span to the exporter when they want it. Runs while the downstream stream still exists.
  void record_metrics();
  telemetry::CallRecord make_record() const;
  // Continues or starts the trace (tracing on); computes the trace headers sent upstream.
  void start_trace();
  // An attempt on |endpoint| (endpoint_ when not given) ended: feed the cluster's outlier
  // detector (failure = a code from the failure-code set, a reset, or a per-try timeout).
  void report_attempt(bool failure) { report_attempt(endpoint_, failure); }
  void report_attempt(const upstream::EndpointSpec* endpoint, bool failure);
  // Feeds the cluster's retry throttling with an attempt's final status (gRFC A6: OK adds,
  // a code the route retries or hedges on takes away).
  void feed_retry_budget(grpc::StatusCode code);
  void cancel_upstream();
  // Lets go of the attempt's upstream stream (reset with CANCEL, its credit returned).
  void detach_upstream();
  // Asks the route's retry policy about an attempt that ended before commit with |outcome|;
  // on a retry, tears the attempt down and arms the backoff. False: answer the call now.
  // |local_rejection|: the outcome is a skiff's own rejection (kRejectedHeader), never retried.
  bool maybe_retry(policy::Outcome outcome, policy::Pushback pushback,
                   bool local_rejection = false);
  // A final status that arrived before anything was forwarded (a trailers-only response, or a
  // held response's trailers): reports the attempt and asks maybe_retry. True: retried.
  bool retry_final_status(const h2::HeaderList& block);
  void on_attempt_timeout();
  // Whether response headers that just arrived are held instead of forwarded: only when a
  // trailer status could still be retried (a retry route, a complete one-message request that
  // can be replayed, attempts left).
  bool should_hold() const;
  size_t hold_limit() const;
  // Forwards the held response headers (and so the held bytes): the call is committed.
  void commit_held();
  // The held response goes nowhere (a retry, or skiff's own answer).
  void drop_held();
  // Ends a committed response with the upstream's |trailers|.
  void finish_response(h2::HeaderList trailers);
  // Forwards a trailers-only response (a final status, nothing forwarded before): the call is
  // over.
  void forward_trailers_only(h2::HeaderList headers);

  // Hedging (gRFC A6, docs/policies.md "hedging"). Sends the copies that are due and arms the
  // hedge timer for the next one; answers when nothing is outstanding and no copy can follow.
  void pump_hedges();
  void send_copy();
  policy::HedgeGate hedge_gate() const;
  // A copy's events before it wins.
  void on_copy_ready(Copy& copy, h2::ClientSession* session, const upstream::EndpointSpec& endpoint,
                     upstream::AttemptTicket ticket);
  void on_copy_headers(Copy& copy, h2::HeaderList headers, bool end_stream);
  void on_copy_failed(Copy& copy, policy::ProxyFailure failure, std::string reason,
                      bool overflow = false);
  void on_copy_closed(Copy& copy, uint32_t error_code, h2::ClientSession* session);
  // One copy's final answer (a trailers-only response, or skiff's reply for a proxy failure),
  // classified by the hedging policy: answer with it, or keep it as the fallback and go on.
  void on_copy_result(Copy& copy, const policy::HedgeResponse& response,
                      std::variant<h2::HeaderList, grpc::LocalReply> answer);
  // Answers with the last copy's answer kept by on_copy_result.
  void answer_hedged();
  // Response headers came on |copy|: it becomes the call's upstream stream (kForwarding).
  void adopt(Copy& copy);
  // Cancels every copy still racing (not the adopted one) and the hedge timer.
  void cancel_copies();
  void stop_deadline();
  void arm_deadline_timer();
  // The request's header block for the upstream, as views into the downstream's headers
  // (|scratch| holds the few values skiff makes itself).
  // |previous_attempts| is sent as grpc-previous-rpc-attempts when > 0.
  std::span<const h2::HeaderView> upstream_request_headers(const upstream::EndpointSpec& endpoint,
                                                           unsigned previous_attempts,
                                                           std::string& timeout_scratch,
                                                           std::string& attempts_scratch) const;

  CallContext ctx_;
  h2::ServerStream* downstream_;  // null once the downstream stream closed
  int32_t downstream_id_;
  State state_ = State::kRouting;
  base::TimePoint started_at_;
  telemetry::CallCounters* counters_ = nullptr;  // the call's metric series on this worker
  uint32_t attempts_ = 0;                        // upstream streams opened
  std::string local_message_;                    // grpc-message of skiff's own reply
  std::optional<telemetry::TraceContext> trace_;
  std::optional<policy::MessageRateLimiter> message_limiter_;  // the route's message_rate_limit
  telemetry::OutgoingHeaders trace_headers_;                   // sent upstream on every attempt

  const route::Route* route_ = nullptr;
  const RoutePolicy* policy_ = nullptr;
  policy::CircuitBreaker* breaker_ = nullptr;  // the method's, with a route breaker
  std::optional<policy::BreakerTicket> breaker_ticket_;
  std::optional<grpc::StatusCode> final_status_;  // unset: no status yet (e.g. cancelled)
  bool overflowed_ = false;  // rejected by the cluster's limits: no verdict for the breaker
  policy::RetryState retry_state_;
  // Why the pending retry was started: its answer if the retry cannot happen after all.
  policy::Outcome retry_cause_ = policy::Outcome::ok();
  std::optional<net::Timer> retry_timer_;    // a retry's backoff
  std::optional<net::Timer> attempt_timer_;  // per_try_timeout of the open attempt
  upstream::ClusterPool* pool_ = nullptr;
  bool waiting_in_pool_ = false;
  h2::ClientSession* upstream_ = nullptr;  // null when no upstream stream is open
  int32_t upstream_id_ = -1;
  const upstream::EndpointSpec* endpoint_ = nullptr;
  // The open attempt's load on endpoint_ for the pool's load balancer: released when the
  // upstream stream closes or is abandoned (cancel_upstream), so exactly once per attempt.
  upstream::AttemptTicket attempt_;
  // Cluster thresholds (the snapshot in ctx_ owns the ClusterLimits): one active request for
  // the whole call, one active retry from a retry's decision until that attempt ends.
  policy::ClusterLimits::Lease request_lease_;
  policy::ClusterLimits::Lease retry_lease_;

  std::optional<base::TimePoint> deadline_;
  // A far deadline waits on the worker's DeadlineSweep; within DeadlineSweep::kNear of it the
  // call arms a uv timer (only then does it pay for one).
  struct DeadlineEntry final : net::DeadlineSweep::Entry {
    explicit DeadlineEntry(Call* c) : call(c) {}
    void on_near() override { call->arm_deadline_timer(); }
    Call* call;
  };
  DeadlineEntry deadline_entry_{this};
  std::optional<net::Timer> deadline_timer_;

  h2::Body request_body_;
  h2::Body response_body_;
  grpc::MessageFramer request_framer_;
  grpc::MessageFramer response_framer_;
  bool response_complete_ = false;              // upstream trailers (or trailers-only) received
  std::optional<h2::HeaderList> held_headers_;  // response headers while kHolding
  // Armed when the first whole response message is held: a unary response's trailers follow
  // it at once, a server stream's may not come for minutes, so the hold then ends.
  std::optional<net::Timer> hold_timer_;
  std::unique_ptr<Hedge> hedge_;  // hedging routes only
};

// Creates a Call for each downstream request of one listener on one worker.
class CallFactory final : public h2::CallFactory {
 public:
  CallFactory(net::Worker& worker, std::shared_ptr<const Snapshot> snapshot, size_t listener,
              std::vector<std::unique_ptr<upstream::ClusterPool>>& pools,
              telemetry::CallCounters* calls, const telemetry::CallObservers& observers)
      : worker_(worker),
        snapshot_(std::move(snapshot)),
        listener_(listener),
        pools_(pools),
        calls_(calls),
        observers_(observers) {}

  std::unique_ptr<h2::StreamHandler> on_request(h2::ServerStream& stream) override;

 private:
  net::Worker& worker_;
  std::shared_ptr<const Snapshot> snapshot_;
  size_t listener_;
  std::vector<std::unique_ptr<upstream::ClusterPool>>& pools_;
  telemetry::CallCounters* calls_;
  const telemetry::CallObservers& observers_;
};

}  // namespace skiff::proxy
