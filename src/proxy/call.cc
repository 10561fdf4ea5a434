// Call: routing, deadline, upstream attempt, forwarding and the errors skiff answers itself.
#include "proxy/call.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <random>

#include "base/check.h"
#include "base/log.h"
#include "grpc/method.h"
#include "grpc/status.h"
#include "grpc/timeout.h"
#include "policy/authz.h"
#include "policy/failure_codes.h"
#include "policy/pushback.h"

namespace skiff::proxy {
namespace {

using grpc::StatusCode;

// The caller's verified identity (its TLS client certificate's SPIFFE ID), for the upstream.
// Only skiff sets it: a copy arriving from downstream is always dropped.
constexpr std::string_view kPeerIdentityHeader = "x-skiff-peer-identity";

// Connection-specific fields (RFC 9113 §8.2.2) and what skiff rewrites itself are not copied
// between hops. Asked for every request header: the length picks the one or two candidates.
bool is_hop_by_hop(std::string_view name) {
  switch (name.size()) {
    case 2:
      return name == "te";
    case 4:
      return name == "host";
    case 7:
      return name == "upgrade";
    case 10:
      return name == "connection" || name == "keep-alive";
    case 12:
      return name == "grpc-timeout";
    case 16:
      return name == "proxy-connection";
    case 17:
      return name == "transfer-encoding";
    default:
      return false;
  }
}

// Response headers and trailers go downstream as received, minus connection-specific fields.
h2::HeaderList filter_response(h2::HeaderList headers) {
  std::erase_if(headers, [](const h2::Header& h) {
    return h.name != "grpc-timeout" && is_hop_by_hop(h.name);
  });
  return headers;
}

template <typename Headers>
h2::HeaderList to_h2(const Headers& headers) {
  h2::HeaderList out;
  out.reserve(headers.size());
  for (const auto& h : headers) out.push_back(h2::Header{h.name, h.value});
  return out;
}

// Response headers that are not a gRPC response (an HTTP error page from a proxy or load
// balancer in front of the server, or content-type other than application/grpc*), as the
// trailers-only response a gRPC client derives from them: the status from gRPC's HTTP-to-gRPC
// mapping (503 -> 14, 404 -> 12, ...; a 200 that is not gRPC -> 2), so that retries, breakers
// and metrics see it as what it is. Nullopt for a gRPC response.
std::optional<h2::HeaderList> as_grpc_failure(const h2::HeaderList& headers) {
  const std::string_view status = h2::find_header(headers, ":status");
  const std::string_view type = h2::find_header(headers, "content-type");
  const bool grpc_type = type.starts_with("application/grpc");
  if (status == "200" && grpc_type) return std::nullopt;
  int http = 0;
  std::from_chars(status.data(), status.data() + status.size(), http);
  std::string what = "upstream answered HTTP " + std::string(status);
  if (!grpc_type) {
    what += type.empty() ? " without a content-type" : " with content-type " + std::string(type);
  }
  const StatusCode code = status == "200" ? StatusCode::kUnknown : grpc::status_from_http(http);
  return to_h2(grpc::trailers_only_headers({code, what + ", not gRPC"}));
}

// A response's final status: its grpc-status, or UNKNOWN when absent or invalid (how the client
// will read it; a failure).
StatusCode status_of(const h2::HeaderList& block) {
  return grpc::parse_status(h2::find_header(block, "grpc-status")).value_or(StatusCode::kUnknown);
}

// A final status block's grpc-retry-pushback-ms (none when absent).
policy::Pushback pushback_of(const h2::HeaderList& block) {
  std::string_view p = h2::find_header(block, "grpc-retry-pushback-ms");
  return p.empty() ? policy::Pushback::none() : policy::Pushback::parse(p);
}

// A final status block that is a skiff's own rejection (an upstream skiff's): it says nothing
// about the endpoint behind it, and is never retried.
bool rejected_by_skiff(const h2::HeaderList& block) {
  return !h2::find_header(block, grpc::kRejectedHeader).empty();
}

std::string describe_h2_error(uint32_t code) {
  if (code == h2::kConnectionLost) return "connection lost";
  return std::string(nghttp2_http2_strerror(code));
}

// "upstream NAME reset the stream (...)" / "... connection lost (...)": grpc-message of the
// UNAVAILABLE skiff answers when an upstream stream ends without a status.
std::string describe_upstream_close(const upstream::EndpointSpec* endpoint, uint32_t error_code,
                                    const h2::ClientSession* session) {
  return "upstream " + (endpoint != nullptr ? endpoint->name : std::string("?")) + " " +
         (error_code == h2::kConnectionLost
              ? "connection lost (" + (session != nullptr ? session->close_reason() : "") + ")"
              : "reset the stream (" + describe_h2_error(error_code) + ")");
}

constexpr std::array<std::pair<int, int>, 11> kLegalTransitions = {{
    {0, 1},  // kRouting -> kWaiting
    {1, 2},  // kWaiting -> kForwarding
    {2, 5},  // kForwarding -> kCommitted
    {5, 6},  // kCommitted -> kDone
    {2, 6},  // kForwarding -> kDone (trailers-only response)
    {2, 1},  // kForwarding -> kWaiting (retry)
    {2, 3},  // kForwarding -> kHolding (unary response held)
    {3, 5},  // kHolding -> kCommitted (held headers forwarded)
    {3, 1},  // kHolding -> kWaiting (retry on the trailers' status)
    {0, 4},  // kRouting -> kHedging
    {4, 2},  // kHedging -> kForwarding (a copy's response headers: it is adopted)
}};
// The table as bits (from * 8 + to), so a transition's check is one shift.
constexpr uint64_t kLegalMask = [] {
  uint64_t mask = 0;
  for (auto [from, to] : kLegalTransitions) mask |= uint64_t{1} << (from * 8 + to);
  return mask;
}();

// The most response bytes held back while the trailers may still ask for a retry. Held bytes
// get their window credit at once, so this (not flow control) bounds the memory of a hold.
constexpr size_t kMaxHeldResponseBytes = 64 * 1024;
// How long a whole held message waits for the trailers. A unary response's trailers come with
// its message; a server stream on a retry route delays its first message at most this long.
constexpr std::chrono::milliseconds kMaxHoldAfterMessage{250};

// Backoff jitter: per worker thread, so no shared state.
double jitter01() {
  thread_local std::minstd_rand rng(std::random_device{}());
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

}  // namespace

// One hedged copy: its own upstream stream (and, after the first copy, its own finished copy
// of the request). Until it is adopted it reports to the Call's on_copy_* methods; once adopted
// it passes its stream's events to the Call's own handlers, as if the Call had opened it.
class Call::Copy final : public h2::ClientStreamHandler, public upstream::Waiter {
 public:
  // |source| is where request DATA comes from: the Call's body for the first copy (which may
  // still be arriving), null for a later one (its own, filled by the Call).
  Copy(Call& call, unsigned index, h2::Body* source)
      : call_(call), index_(index), source_(source != nullptr ? source : &own_body_) {}
  ~Copy() override { cancel(); }

  unsigned index() const { return index_; }
  h2::Body& own_body() { return own_body_; }

  // Stops the copy: leaves the pool's queue, or cancels its stream. Not the adopted copy's
  // stream, which is the Call's to close.
  void cancel() {
    if (waiting) {
      waiting = false;
      call_.pool_->cancel(this);
    }
    ticket.release();
    retry_lease.reset();
    if (session != nullptr && !adopted) {
      h2::ClientSession* s = session;
      session = nullptr;
      s->detach(stream_id);
    }
  }

  // upstream::Waiter
  void on_upstream_ready(h2::ClientSession* s, const upstream::EndpointSpec& endpoint,
                         upstream::AttemptTicket t) override {
    waiting = false;
    call_.on_copy_ready(*this, s, endpoint, std::move(t));
  }
  void on_upstream_failure(std::string reason, bool overflow) override {
    waiting = false;
    call_.on_copy_failed(*this, policy::ProxyFailure::kConnectFailure, std::move(reason), overflow);
  }

  // h2::ClientStreamHandler
  void on_response_headers(h2::HeaderList headers, bool end_stream) override {
    if (adopted) return call_.on_response_headers(std::move(headers), end_stream);
    call_.on_copy_headers(*this, std::move(headers), end_stream);
  }
  void on_response_data(const uint8_t* data, size_t len) override {
    if (adopted) return call_.on_response_data(data, len);
    // Not expected (response headers adopt the copy), but the window credit must go back.
    if (session != nullptr) session->consume(stream_id, len);
  }
  void on_response_trailers(h2::HeaderList trailers) override {
    if (adopted) call_.on_response_trailers(std::move(trailers));
  }
  void on_upstream_close(uint32_t error_code) override {
    if (adopted) return call_.on_upstream_close(error_code);
    h2::ClientSession* s = session;
    session = nullptr;
    ticket.release();
    if (!finished) call_.on_copy_closed(*this, error_code, s);
  }
  h2::Body* request_body() override { return source_; }

  // The Call's bookkeeping of this copy.
  bool waiting = false;                  // queued in the pool for a stream slot
  bool finished = false;                 // its answer was handled, or it was cancelled
  bool adopted = false;                  // the winner: the Call's upstream stream
  h2::ClientSession* session = nullptr;  // while its stream is open
  int32_t stream_id = -1;
  const upstream::EndpointSpec* endpoint = nullptr;
  upstream::AttemptTicket ticket;
  policy::ClusterLimits::Lease retry_lease;  // copies after the first count as retries

 private:
  Call& call_;
  const unsigned index_;
  h2::Body own_body_;
  h2::Body* const source_;
};

struct Call::Hedge {
  policy::HedgeState state;
  std::vector<std::unique_ptr<Copy>> copies;
  std::optional<net::Timer> timer;  // when the next copy is due
  // The latest non-fatal answer: forwarded if no copy wins.
  std::optional<std::variant<h2::HeaderList, grpc::LocalReply>> last;
};

Call::Call(CallContext context, h2::ServerStream& downstream)
    : ctx_(std::move(context)), downstream_(&downstream), downstream_id_(downstream.id()) {
  // Request bytes leave the downstream window until the upstream session has taken them.
  request_body_.set_on_drained([this](size_t n) {
    if (downstream_ != nullptr) downstream_->session().consume(downstream_id_, n);
  });
  request_body_.set_on_readable([this] {
    if (upstream_ != nullptr) return upstream_->resume_data(upstream_id_);
    // Hedging: the first copy streams the request as it arrives (later ones have their own).
    if (hedge_ && !hedge_->copies.empty()) {
      const Copy& first = *hedge_->copies.front();
      if (first.session != nullptr) first.session->resume_data(first.stream_id);
    }
  });
  response_body_.set_on_drained([this](size_t n) {
    if (upstream_ != nullptr) upstream_->consume(upstream_id_, n);
  });
  response_body_.set_on_readable([this] {
    if (downstream_ != nullptr && state_ >= State::kCommitted) {
      downstream_->session().resume_data(downstream_id_);
    }
  });
}

Call::~Call() {
  cancel_upstream();
  // Copies may still be registered with a session (a finished copy whose stream has not
  // closed yet): they detach as they go, before the Call's members they point to.
  hedge_.reset();
}

void Call::transition_to(State next) {
  if (next == state_) return;
  // Any state may end (local reply, reset, cancel).
  const bool legal =
      next == State::kDone ||
      ((kLegalMask >> (static_cast<int>(state_) * 8 + static_cast<int>(next))) & 1) != 0;
  SKIFF_CHECK(legal);  // a bug in this file, never a peer's doing
  state_ = next;
}

void Call::start() {
  const h2::HeaderList& headers = downstream_->request_headers();
  started_at_ = base::SteadyClock::now();
  // The route first, so every call (even one rejected below) counts in its route's series.
  std::string_view path = h2::find_header(headers, ":path");
  std::optional<grpc::Method> method = grpc::parse_path(path);
  if (method) {
    route_ = ctx_.listener.routes.find(h2::find_header(headers, ":authority"), method->service,
                                       method->method);
  }
  counters_ = &ctx_.calls[route_ != nullptr ? ctx_.listener.route_series[route_->index]
                                            : ctx_.listener.other_series];
  counters_->started.add();
  if (downstream_->headers_too_large()) {
    return reply_local({StatusCode::kResourceExhausted, "request headers exceed the limit"});
  }
  if (h2::find_header(headers, ":method") != "POST") {
    return reply_local({StatusCode::kInternal, "gRPC requires method POST", 405});
  }
  if (!grpc::is_grpc_content_type(h2::find_header(headers, "content-type"))) {
    return reply_local({StatusCode::kInternal, "content-type is not application/grpc", 415});
  }
  if (!method) {
    return reply_local(
        {StatusCode::kUnimplemented, "malformed :path \"" + std::string(path) + "\""});
  }
  if (route_ == nullptr) {
    return reply_local(
        {StatusCode::kUnimplemented,
         "no route for " + std::string(path) + " on listener \"" + ctx_.listener.name + "\""});
  }
  // Authorization: the route's allow list against the connection's verified identity.
  std::string_view peer = downstream_->session().peer_identity();
  switch (policy::authorize(route_->allow, peer)) {
    case policy::AuthzDecision::kAllowed:
      break;
    case policy::AuthzDecision::kNoIdentity:
      return reply_local({StatusCode::kPermissionDenied,
                          std::string(path) + " requires a verified caller identity (mTLS)"});
    case policy::AuthzDecision::kNotAllowed:
      return reply_local(
          {StatusCode::kPermissionDenied,
           "caller " + std::string(peer) + " is not allowed to call " + std::string(path)});
  }

  policy_ = &ctx_.listener.policies[route_->index];
  if (!admit_rate_limit()) return;
  request_framer_ = grpc::MessageFramer(policy_->max_request_message_bytes);
  // Keep what is sent upstream until commit, so another attempt (a retry, or a transparent one
  // after REFUSED_STREAM) can replay it.
  request_body_.retain(policy_->retry_buffer_bytes);
  response_framer_ = grpc::MessageFramer(policy_->max_response_message_bytes);

  // Deadline = min(grpc-timeout - grpc_timeout_offset, route timeout).
  std::optional<std::chrono::nanoseconds> budget;
  const auto timeout_field =
      std::ranges::find(headers, std::string_view("grpc-timeout"), &h2::Header::name);
  if (timeout_field != headers.end()) {
    // Present and empty is malformed too (parse_timeout says so), not "no deadline".
    const std::string_view t = timeout_field->value;
    auto parsed = grpc::parse_timeout(t);
    if (!parsed) {
      return reply_local(
          {StatusCode::kInternal, "malformed grpc-timeout \"" + std::string(t) +
                                      "\": " + std::string(to_string(parsed.error()))});
    }
    budget = *parsed -
             std::chrono::duration_cast<std::chrono::nanoseconds>(policy_->grpc_timeout_offset);
  }
  if (route_->timeout && (!budget || *route_->timeout < *budget)) budget = *route_->timeout;
  if (budget) {
    if (budget->count() <= 0) {
      return reply_local({StatusCode::kDeadlineExceeded, "deadline exceeded before forwarding"});
    }
    auto now = started_at_;
    // Saturate: a grpc-timeout of 99999999H overflows time_point arithmetic.
    auto max_budget = std::chrono::duration_cast<std::chrono::nanoseconds>(
        base::TimePoint::max() - now - std::chrono::hours(1));
    deadline_ = now + std::min(*budget, max_budget);
    if (!ctx_.worker.deadlines().add(deadline_entry_, *deadline_, now)) arm_deadline_timer();
  }

  if (ctx_.observers.trace) start_trace();
  // Cluster thresholds before the method breaker: an overflow is no verdict on the method.
  if (!admit_cluster_limits()) return;
  if (!admit_breaker()) return;
  pool_ = ctx_.pools[route_->cluster].get();
  if (policy_->hedging) {
    hedge_ = std::make_unique<Hedge>();
    transition_to(State::kHedging);
    return pump_hedges();
  }
  transition_to(State::kWaiting);
  waiting_in_pool_ = true;
  pool_->acquire(this);
}

void Call::on_upstream_ready(h2::ClientSession* session, const upstream::EndpointSpec& endpoint,
                             upstream::AttemptTicket ticket) {
  waiting_in_pool_ = false;
  if (state_ != State::kWaiting) return;
  endpoint_ = &endpoint;
  // Every attempt after the first replays the request (transparent retries included: they are
  // not counted in previous_attempts).
  if (attempts_ > 0) request_body_.rewind();
  std::string timeout_scratch;
  std::string attempts_scratch;
  int32_t id =
      session->open_stream(upstream_request_headers(endpoint, retry_state_.previous_attempts(),
                                                    timeout_scratch, attempts_scratch),
                           this);
  if (id < 0) {
    return reply_local({StatusCode::kUnavailable,
                        "cannot open a stream to " + endpoint.name + ": " + nghttp2_strerror(id)});
  }
  upstream_ = session;
  upstream_id_ = id;
  attempt_ = std::move(ticket);
  ++attempts_;
  transition_to(State::kForwarding);
  if (policy_->retry && policy_->retry->per_try_timeout) {
    attempt_timer_.emplace(ctx_.worker.timer_pool(), [this] { on_attempt_timeout(); });
    attempt_timer_->start(
        std::chrono::ceil<std::chrono::milliseconds>(*policy_->retry->per_try_timeout));
  }
  SKIFF_LOG(kTrace) << "stream " << downstream_id_ << " -> " << endpoint.name << " stream " << id;
}

void Call::on_upstream_failure(std::string reason, bool overflow) {
  waiting_in_pool_ = false;
  if (state_ != State::kWaiting) return;
  if (overflow) {
    // The cluster is at its limits: load shedding, which a retry would only add to.
    grpc::LocalReply reply{StatusCode::kUnavailable, std::move(reason)};
    reply.rejected = grpc::kRejectedOverflow;
    return reply_shed(std::move(reply));
  }
  if (maybe_retry(policy::Outcome::failure(policy::ProxyFailure::kConnectFailure),
                  policy::Pushback::none())) {
    return;
  }
  reply_local({StatusCode::kUnavailable, std::move(reason)});
}

bool Call::maybe_retry(policy::Outcome outcome, policy::Pushback pushback, bool local_rejection) {
  if (downstream_ == nullptr) return false;
  // Routes without `retry` still retry a REFUSED_STREAM (or a stream above a GOAWAY's last id)
  // once: the upstream never processed it (gRFC A6 transparent retry).
  static const policy::RetryPolicy kTransparentOnly = [] {
    policy::RetryPolicy p;
    p.max_attempts = 1;
    p.retry_on = policy::FailureCodes();
    return p;
  }();
  // The attempt a previous retry made is over.
  retry_lease_.reset();
  const policy::RetryPolicy& retry = policy_->retry ? *policy_->retry : kTransparentOnly;
  auto now = base::SteadyClock::now();
  policy::RetryInput in;
  in.outcome = outcome;
  in.state = retry_state_;
  in.committed = state_ >= State::kCommitted;
  in.buffer_overflowed = request_body_.overflowed();
  in.pushback = pushback;
  in.local_rejection = local_rejection;
  in.deadline = deadline_ ? policy::Deadline::at(*deadline_) : policy::Deadline::none();
  in.jitter01 = jitter01();
  if (policy_->retry_budget) {
    if (outcome.is_ok()) {
      policy_->retry_budget->on_success();
    } else if (retry.costs_budget(in)) {
      in.throttled = !policy_->retry_budget->on_failure();
    } else {
      in.throttled = !policy_->retry_budget->retry_allowed();
    }
  }
  policy::RetryDecision decision = retry.decide(in, now);
  if (decision.kind == policy::RetryDecision::Kind::kGiveUp) {
    SKIFF_LOG(kDebug) << "stream " << downstream_id_ << ": not retried ("
                      << policy::to_string(decision.reason) << ")";
    if (decision.reason == policy::RetryStop::kThrottled) counters_->retry_budget_exhausted.add();
    if (decision.reason == policy::RetryStop::kBufferOverflow) {
      counters_->retry_buffer_overflows.add();
    }
  }
  if (decision.kind != policy::RetryDecision::Kind::kRetryAfter) return false;
  if (!decision.transparent) {
    // Cluster max_retries: a retry not taken, counted like one the retry budget refused.
    retry_lease_ =
        ctx_.snapshot->clusters[route_->cluster].limits->acquire(policy::ClusterResource::kRetries);
    if (!retry_lease_) {
      SKIFF_LOG(kDebug) << "stream " << downstream_id_ << ": not retried (cluster max_retries)";
      counters_->retry_budget_exhausted.add();
      return false;
    }
  }
  counters_->retries.add();
  retry_state_.on_retry(decision);
  retry_cause_ = outcome;
  cancel_upstream();
  if (state_ == State::kHolding) drop_held();
  if (state_ == State::kForwarding || state_ == State::kHolding) transition_to(State::kWaiting);
  SKIFF_LOG(kDebug) << "stream " << downstream_id_ << ": attempt "
                    << retry_state_.previous_attempts() + 1 << " in "
                    << std::chrono::duration_cast<std::chrono::milliseconds>(decision.delay).count()
                    << "ms";
  retry_timer_.emplace(ctx_.worker.timer_pool(), [this] {
    waiting_in_pool_ = true;
    pool_->acquire(this, endpoint_ ? std::optional<size_t>(endpoint_->index) : std::nullopt);
  });
  retry_timer_->start(std::chrono::ceil<std::chrono::milliseconds>(decision.delay));
  return true;
}

void Call::on_attempt_timeout() {
  if (state_ != State::kForwarding && state_ != State::kHolding) return;
  report_attempt(true);
  cancel_upstream();
  if (maybe_retry(policy::Outcome::failure(policy::ProxyFailure::kPerTryTimeout),
                  policy::Pushback::none())) {
    return;
  }
  reply_local({StatusCode::kDeadlineExceeded, "per-try timeout"});
}

std::span<const h2::HeaderView> Call::upstream_request_headers(
    const upstream::EndpointSpec& endpoint, unsigned previous_attempts,
    std::string& timeout_scratch, std::string& attempts_scratch) const {
  // Reused per thread: building the block allocates nothing in steady state. Sized for the
  // most this can add, then filled by index (a push_back per field was a call of its own).
  thread_local std::vector<h2::HeaderView> block;
  const h2::HeaderList& in = downstream_->request_headers();
  if (const size_t most = in.size() + trace_headers_.size() + 8; block.size() < most) {
    block.resize(most);
  }
  h2::HeaderView* out = block.data();
  size_t n = 0;
  auto add = [&](std::string_view name, std::string_view value) { out[n++] = {name, value}; };
  std::string_view authority = h2::find_header(in, ":authority");
  add(":method", "POST");
  add(":scheme", pool_->spec().tls ? "https" : "http");
  add(":authority", authority.empty() ? std::string_view(endpoint.name) : authority);
  add(":path", h2::find_header(in, ":path"));
  const bool traced = trace_.has_value();
  for (const h2::Header& h : in) {
    if (h.name.empty() || h.name[0] == ':' || is_hop_by_hop(h.name)) continue;
    if (h.name == kPeerIdentityHeader) continue;                 // never trusted from downstream
    if (traced && telemetry::is_trace_header(h.name)) continue;  // replaced by this hop's
    add(h.name, h.value);
  }
  for (const telemetry::OutgoingHeader& h : trace_headers_) add(h.name, h.value);
  if (std::string_view peer = downstream_->session().peer_identity(); !peer.empty()) {
    add(kPeerIdentityHeader, peer);
  }
  // Always: some gRPC servers reject requests without it (reliability.md §0.6).
  add("te", "trailers");
  // The attempt's budget: the call's time left, capped by per_try_timeout.
  std::optional<base::Duration> left;
  if (deadline_) left = *deadline_ - base::SteadyClock::now();
  if (policy_->retry && policy_->retry->per_try_timeout) {
    base::Duration per_try = *policy_->retry->per_try_timeout;
    if (!left || per_try < *left) left = per_try;
  }
  if (left) {
    timeout_scratch =
        grpc::format_timeout(std::chrono::duration_cast<std::chrono::nanoseconds>(*left));
    add("grpc-timeout", timeout_scratch);
  }
  if (previous_attempts > 0) {
    attempts_scratch = std::to_string(previous_attempts);
    add("grpc-previous-rpc-attempts", attempts_scratch);
  }
  return {out, n};
}

void Call::on_request_data(const uint8_t* data, size_t len) {
  if (state_ == State::kDone || state_ == State::kRouting) {
    // Answered already (or never routed): drop, but give the window back.
    downstream_->session().consume(downstream_id_, len);
    return;
  }
  auto fed = request_framer_.feed(data, len);
  if (!fed) {
    downstream_->session().consume(downstream_id_, len);
    if (fed.error() == grpc::FramerError::kTooLarge) {
      return reject_request(StatusCode::kResourceExhausted,
                            "request message larger than the route's limit");
    }
    return reject_request(StatusCode::kInternal, "malformed gRPC message framing in request");
  }
  if (message_limiter_ && *fed > 0) {
    const auto now = base::SteadyClock::now();
    for (uint32_t i = 0; i < *fed; ++i) {
      if (message_limiter_->try_acquire(now).allowed) continue;
      downstream_->session().consume(downstream_id_, len);
      counters_->rate_limited.add();
      return reject_request(StatusCode::kResourceExhausted,
                            "request messages over the route's message_rate_limit");
    }
  }
  request_body_.append(data, len);
  // A retry waiting for its attempt (backoff, a stream slot, a connection) cannot replay a
  // request that outgrew the buffer meanwhile: the call ends as the failed attempt did.
  if (state_ == State::kWaiting && attempts_ > 0 && request_body_.overflowed()) {
    counters_->retry_buffer_overflows.add();
    reply_local({static_cast<StatusCode>(retry_cause_.code()),
                 "not retried: the request outgrew the retry buffer (" +
                     std::to_string(policy_->retry_buffer_bytes) + " bytes) after the attempt " +
                     "failed with " + std::string(policy::to_string(retry_cause_))});
  }
}

void Call::on_request_end() {
  // A truncated last message must not reach the upstream as a complete request (some servers
  // would answer it with OK).
  if (!request_framer_.at_boundary()) {
    if (state_ != State::kDone) {
      reject_request(StatusCode::kInternal, "request ended inside a gRPC message");
    }
    return;
  }
  request_body_.finish();
  // Later hedged copies replay the whole request: the ones due can go now.
  if (state_ == State::kHedging) pump_hedges();
}

void Call::reject_request(StatusCode code, const char* what) {
  if (state_ < State::kCommitted) return reply_local({code, what});
  cancel_upstream();
  stop_deadline();
  if (code != StatusCode::kInternal) return abort_committed(code, what, NGHTTP2_CANCEL);
  // Broken framing after commit: only a reset says the request was malformed.
  transition_to(State::kDone);
  downstream_->session().reset_stream(downstream_id_, NGHTTP2_PROTOCOL_ERROR);
}

// The route's failure-code set (docs/policies.md) decides what counts against an upstream, for
// the breaker and outlier detection alike.
bool Call::is_failure(StatusCode code) const {
  const policy::FailureCodes& codes =
      policy_ != nullptr ? policy_->failure_codes : policy::FailureCodes::defaults();
  return codes.contains(static_cast<uint8_t>(code));
}

void Call::reject_response_too_large(bool forwarded_at_boundary) {
  cancel_upstream();
  stop_deadline();
  constexpr std::string_view kWhat = "response message larger than the route's limit";
  note_status(StatusCode::kResourceExhausted);
  transition_to(State::kDone);
  if (forwarded_at_boundary) {
    response_body_.finish_with(to_h2(grpc::status_trailers(StatusCode::kResourceExhausted, kWhat)));
  } else {
    downstream_->session().reset_stream(downstream_id_, NGHTTP2_INTERNAL_ERROR);
  }
}

void Call::on_stream_close(uint32_t error_code) {
  if (downstream_ == nullptr) return;
  SKIFF_LOG(kTrace) << "downstream stream " << downstream_id_ << " closed ("
                    << describe_h2_error(error_code) << ")";
  // Bytes still buffered here were never forwarded: return their connection-level credit.
  downstream_->session().consume(downstream_id_, request_body_.undrained());
  record_metrics();
  downstream_ = nullptr;
  stop_deadline();
  cancel_upstream();
  if (state_ != State::kDone) transition_to(State::kDone);
  report_outcome();
  request_lease_.reset();
  retry_lease_.reset();
}

void Call::start_trace() {
  // Only the headers the trace formats use, as views into the request's own (reused per
  // thread: no allocation per call).
  thread_local std::vector<telemetry::HeaderRef> refs;
  refs.clear();
  for (const h2::Header& h : downstream_->request_headers()) {
    if (telemetry::is_trace_header(h.name)) refs.push_back({h.name, h.value});
  }
  trace_ = telemetry::continue_or_start(refs, ctx_.observers.sample_rate);
  trace_headers_ = telemetry::outgoing_headers(*trace_);
}

telemetry::CallRecord Call::make_record() const {
  const h2::HeaderList& headers = downstream_->request_headers();
  const auto duration = base::SteadyClock::now() - started_at_;
  telemetry::CallRecord r;
  r.duration = std::chrono::duration_cast<std::chrono::nanoseconds>(duration);
  r.start = std::chrono::system_clock::now() -
            std::chrono::duration_cast<std::chrono::system_clock::duration>(duration);
  r.listener = ctx_.listener.name;
  r.path = h2::find_header(headers, ":path");
  r.authority = h2::find_header(headers, ":authority");
  r.peer_identity = downstream_->session().peer_identity();
  r.downstream_address = downstream_->session().peer_address();
  if (pool_ != nullptr) r.upstream_cluster = pool_->spec().name;
  if (endpoint_ != nullptr) {
    r.upstream_endpoint = endpoint_->name;
    r.upstream_address = endpoint_->address.to_string();
  }
  if (final_status_) r.grpc_status = static_cast<int>(*final_status_);
  r.grpc_message = local_message_;
  r.attempts = attempts_;
  r.request_bytes = request_framer_.bytes();
  r.response_bytes = response_framer_.bytes();
  r.request_messages = request_framer_.messages();
  r.response_messages = response_framer_.messages();
  if (trace_) {
    r.trace_id = trace_->trace_id.hex();
    r.span_id = trace_->span_id_hex();
    r.parent_span_id = trace_->parent_span_id_hex();
    r.sampled = trace_->sampled;
    r.request_id.assign(trace_->request_id);
  } else {
    r.request_id = h2::find_header(headers, "x-request-id");
  }
  return r;
}

void Call::record_metrics() {
  telemetry::CallCounters& c = *counters_;
  // No status: the caller reset the stream first, which its gRPC library reports as CANCELLED.
  size_t code = final_status_ ? static_cast<size_t>(*final_status_) : 1;
  c.finished[code < telemetry::kStatusCodes ? code : 2].add();
  c.observe_latency(base::SteadyClock::now() - started_at_);
  c.request_messages.add(request_framer_.messages());
  c.request_bytes.add(request_framer_.bytes());
  c.response_messages.add(response_framer_.messages());
  c.response_bytes.add(response_framer_.bytes());

  const telemetry::CallObservers& o = ctx_.observers;
  const bool export_span = o.spans != nullptr && trace_ && trace_->sampled;
  const bool log = o.access_log != nullptr && o.access_log->sampled();
  if (!export_span && !log) return;
  telemetry::CallRecord record = make_record();
  if (export_span && log) {
    o.spans->submit(record);
  } else if (export_span) {
    o.spans->submit(std::move(record));
    return;
  }
  if (log) o.access_log->submit(std::move(record));
}

void Call::note_status(const h2::HeaderList& headers) { note_status(status_of(headers)); }

bool Call::retry_final_status(const h2::HeaderList& block) {
  const StatusCode code = status_of(block);
  const policy::Pushback pushback = pushback_of(block);
  const bool rejected = rejected_by_skiff(block);
  report_attempt(is_failure(code) && !rejected);
  return maybe_retry(policy::Outcome::status(static_cast<uint8_t>(code)), pushback, rejected);
}

void Call::report_attempt(const upstream::EndpointSpec* endpoint, bool failure) {
  if (endpoint == nullptr || !pool_->spec().outliers) return;
  policy::OutlierEvent event =
      pool_->spec().outliers->on_result(endpoint->index, failure, base::SteadyClock::now());
  if (event == policy::OutlierEvent::kEjected) {
    SKIFF_LOG(kInfo) << "cluster \"" << pool_->spec().name << "\": ejected " << endpoint->name
                     << " after consecutive failures";
  }
}

void Call::feed_retry_budget(StatusCode code) {
  if (!policy_->retry_budget) return;
  if (code == StatusCode::kOk) return policy_->retry_budget->on_success();
  const auto c = static_cast<uint8_t>(code);
  if (policy_->retry ? policy_->retry->retry_on.contains(c)
                     : policy_->hedging->non_fatal.contains(c)) {
    policy_->retry_budget->on_failure();
  }
}

void Call::reply_shed(grpc::LocalReply reply) {
  counters_->breaker_rejections.add();
  overflowed_ = true;  // no verdict on the method for the breaker
  reply_local(std::move(reply));
}

void Call::report_outcome() {
  if (!breaker_ticket_) return;
  policy::BreakerTicket ticket = *breaker_ticket_;
  breaker_ticket_.reset();
  if (!final_status_ || overflowed_) {
    // Cancelled before any status, or shed by the cluster's limits: no verdict on the upstream.
    if (ticket.kind == policy::BreakerTicket::Kind::kProbe) {
      breaker_->on_probe_abandoned(ticket);
    }
    return;
  }
  bool failure = is_failure(*final_status_);
  breaker_->on_result(ticket, failure, base::SteadyClock::now());
}

bool Call::admit_rate_limit() {
  if (policy_->message_rate_limit) message_limiter_.emplace(*policy_->message_rate_limit);
  policy::Admission admission;
  if (policy_->rate_limit) {
    admission = policy_->rate_limit->try_acquire(started_at_);
  } else if (policy_->keyed_rate_limit) {
    // Callers without the key (no identity, no header) share the "" bucket: leaving the header
    // out must not lift the limit.
    std::string_view key =
        policy_->rate_limit_key_header.empty()
            ? downstream_->session().peer_identity()
            : h2::find_header(downstream_->request_headers(), policy_->rate_limit_key_header);
    admission = policy_->keyed_rate_limit->try_acquire(key, started_at_);
  } else {
    return true;
  }
  if (admission.allowed) return true;
  counters_->rate_limited.add();
  grpc::LocalReply reply{policy_->rate_limited_code, "rate limited"};
  reply.retry_pushback_ms = static_cast<uint64_t>(
      std::chrono::ceil<std::chrono::milliseconds>(admission.retry_after).count());
  reply.rejected = grpc::kRejectedRateLimit;
  reply_local(std::move(reply));
  return false;
}

bool Call::admit_cluster_limits() {
  policy::ClusterLimits& limits = *ctx_.snapshot->clusters[route_->cluster].limits;
  request_lease_ = limits.acquire(policy::ClusterResource::kRequests);
  if (request_lease_) return true;
  grpc::LocalReply reply{StatusCode::kUnavailable,
                         "cluster \"" + ctx_.snapshot->clusters[route_->cluster].name +
                             "\" circuit open: max_requests (" +
                             std::to_string(limits.limit(policy::ClusterResource::kRequests)) +
                             ") active requests"};
  reply.rejected = grpc::kRejectedOverflow;
  reply_shed(std::move(reply));
  return false;
}

bool Call::admit_breaker() {
  if (!policy_->breaker) return true;
  breaker_ =
      &policy_->breaker->for_method(h2::find_header(downstream_->request_headers(), ":path"));
  policy::BreakerTicket ticket = breaker_->admit(base::SteadyClock::now());
  if (ticket.admitted()) {
    breaker_ticket_ = ticket;
    return true;
  }
  counters_->breaker_rejections.add();
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(ticket.retry_after).count();
  grpc::LocalReply reply{StatusCode::kUnavailable,
                         "circuit open for " +
                             std::string(h2::find_header(downstream_->request_headers(), ":path")) +
                             " (retry in " + std::to_string(ms) + "ms)"};
  reply.rejected = grpc::kRejectedCircuitOpen;
  reply_local(std::move(reply));
  return false;
}

bool Call::should_hold() const {
  return policy_->retry && request_body_.finished() && request_framer_.messages() == 1 &&
         request_body_.retaining() && retry_state_.attempts < policy_->retry->max_attempts &&
         hold_limit() > 0;
}

size_t Call::hold_limit() const {
  return std::min<size_t>(policy_->retry_buffer_bytes, kMaxHeldResponseBytes);
}

void Call::drop_held() {
  // Nothing of the held response was forwarded: drop it whole (its window credit went back as
  // it arrived), so the call's message counts cover only what the client gets.
  if (hold_timer_) hold_timer_->stop();
  held_headers_.reset();
  response_body_.clear();
  response_framer_ = grpc::MessageFramer(policy_->max_response_message_bytes);
}

void Call::commit_held() {
  // Commit (gRFC A6): no other attempt from here on, so the replay copy can go.
  if (hold_timer_) hold_timer_->stop();
  transition_to(State::kCommitted);
  if (attempt_timer_) attempt_timer_->stop();
  request_body_.release();
  h2::HeaderList headers = std::move(*held_headers_);
  held_headers_.reset();
  // The held bytes (and trailers, if they came) follow from response_body_.
  downstream_->session().submit_response(downstream_id_, std::move(headers), /*with_body=*/true);
}

void Call::on_response_headers(h2::HeaderList headers, bool end_stream) {
  if (state_ != State::kForwarding || downstream_ == nullptr) return;
  if (auto failure = as_grpc_failure(headers)) {
    // Answered as trailers-only; the rest of that stream is not gRPC and not read.
    if (!end_stream) detach_upstream();
    headers = std::move(*failure);
    end_stream = true;
  }
  // A held response's attempt is not over until its trailers: per_try_timeout keeps running.
  const bool hold = !end_stream && should_hold();
  if (attempt_timer_ && !hold) attempt_timer_->stop();
  // The endpoint's latency sample for load balancing; a RESOURCE_EXHAUSTED answer is penalised.
  attempt_.on_response(end_stream && status_of(headers) == StatusCode::kResourceExhausted);
  if (end_stream) {
    // Trailers-only: nothing was forwarded yet, so a retryable status may still be retried.
    if (retry_final_status(headers)) return;
    return forward_trailers_only(std::move(headers));
  }
  if (hold) {
    // A unary response: a retryable status in its trailers can still be retried, so nothing
    // goes downstream until the trailers or hold_limit() bytes arrive.
    transition_to(State::kHolding);
    held_headers_ = filter_response(std::move(headers));
    return;
  }
  // Commit (gRFC A6): no other attempt from here on, so the replay copy can go.
  transition_to(State::kCommitted);
  request_body_.release();
  downstream_->session().submit_response(downstream_id_, filter_response(std::move(headers)),
                                         /*with_body=*/true);
}

void Call::on_response_data(const uint8_t* data, size_t len) {
  if (state_ != State::kCommitted && state_ != State::kHolding) {
    if (upstream_ != nullptr) upstream_->consume(upstream_id_, len);
    return;
  }
  // Boundaries and the size limit are checked on the way back; bytes are forwarded as sent.
  const bool at_boundary = response_framer_.at_boundary();
  if (!response_framer_.feed(data, len)) {
    if (upstream_ != nullptr) upstream_->consume(upstream_id_, len);
    // A broken or oversized response ends as it would have without the hold.
    if (state_ == State::kHolding) commit_held();
    if (response_framer_.error() == grpc::FramerError::kTooLarge) {
      // This chunk is dropped whole; what was forwarded ended at a boundary iff we were at one.
      return reject_response_too_large(at_boundary);
    }
    // A malformed response: the client must not see it as complete.
    cancel_upstream();
    return abort_committed(StatusCode::kInternal, "malformed gRPC framing in response",
                           NGHTTP2_INTERNAL_ERROR);
  }
  response_body_.append(data, len);
  if (state_ == State::kHolding) {
    // The downstream does not pace held bytes: their credit goes back now, and past
    // hold_limit() the response is forwarded (and so no longer retried).
    response_body_.credit_received();
    if (response_body_.size() > hold_limit()) return commit_held();
    if (response_framer_.messages() > 0 && !(hold_timer_ && hold_timer_->active())) {
      if (!hold_timer_) {
        hold_timer_.emplace(ctx_.worker.timer_pool(), [this] {
          if (state_ == State::kHolding) commit_held();
        });
      }
      hold_timer_->start(kMaxHoldAfterMessage);
    }
  }
}

void Call::on_response_trailers(h2::HeaderList trailers) {
  if ((state_ == State::kHolding || state_ == State::kCommitted) &&
      !response_framer_.at_boundary()) {
    // The upstream ended inside a message: whatever its trailers say, the response is broken,
    // and the client must not take the partial message as a complete OK response.
    response_complete_ = true;
    if (state_ == State::kHolding) commit_held();
    report_attempt(true);
    cancel_upstream();
    stop_deadline();
    return abort_committed(StatusCode::kInternal, "upstream response ended inside a gRPC message",
                           NGHTTP2_INTERNAL_ERROR);
  }
  if (trailers.empty()) {
    // The upstream ended its body without trailers (END_STREAM on DATA): no status at all is a
    // broken response, and the client gets it as one instead of guessing.
    trailers = to_h2(grpc::status_trailers(StatusCode::kInternal,
                                           "upstream ended the response without trailers"));
  }
  if (state_ == State::kHolding) {
    if (attempt_timer_) attempt_timer_->stop();
    // Nothing was forwarded yet: the trailers' status is retried like a trailers-only one
    // (and the retry budget is fed with this outcome either way).
    if (retry_final_status(trailers)) return;
    commit_held();
    return finish_response(std::move(trailers));
  }
  if (state_ != State::kCommitted) return;
  finish_response(std::move(trailers));
  report_attempt(is_failure(*final_status_));
  // Committed calls feed the cluster's retry throttling too (gRFC A6).
  feed_retry_budget(*final_status_);
}

void Call::forward_trailers_only(h2::HeaderList headers) {
  // Forwarded as one HEADERS frame, so it stays a trailers-only response.
  response_complete_ = true;
  stop_deadline();
  transition_to(State::kDone);
  note_status(headers);
  downstream_->session().submit_response(downstream_id_, filter_response(std::move(headers)),
                                         /*with_body=*/false);
}

void Call::finish_response(h2::HeaderList trailers) {
  response_complete_ = true;
  stop_deadline();
  transition_to(State::kDone);
  note_status(trailers);
  response_body_.finish_with(filter_response(std::move(trailers)));
}

void Call::on_upstream_close(uint32_t error_code) {
  // The stream is gone on the upstream session: return credit for bytes we still hold.
  h2::ClientSession* session = upstream_;
  upstream_ = nullptr;
  attempt_.release();
  if (session != nullptr && error_code != h2::kConnectionLost) {
    session->consume(upstream_id_, response_body_.undrained());
  }
  if (response_complete_ || downstream_ == nullptr) return;
  if (state_ == State::kForwarding || state_ == State::kHolding || state_ == State::kCommitted) {
    report_attempt(true);
  }
  std::string what = describe_upstream_close(endpoint_, error_code, session);
  if (state_ == State::kForwarding || state_ == State::kHolding) {
    // Before commit: REFUSED_STREAM (incl. streams above a GOAWAY's last id) was certainly
    // not processed; other resets and lost connections maybe were.
    auto failure = error_code == NGHTTP2_REFUSED_STREAM ? policy::ProxyFailure::kRefusedStream
                                                        : policy::ProxyFailure::kReset;
    if (maybe_retry(policy::Outcome::failure(failure), policy::Pushback::none())) return;
    return reply_local({StatusCode::kUnavailable,
                        what + (state_ == State::kHolding ? " before response trailers"
                                                          : " before response headers")});
  }
  if (state_ == State::kCommitted) {
    StatusCode code = error_code == h2::kConnectionLost ? StatusCode::kUnavailable
                                                        : grpc::status_from_h2_error(error_code);
    abort_committed(code, what + " after response headers", NGHTTP2_INTERNAL_ERROR);
  }
}

void Call::on_deadline() {
  if (downstream_ == nullptr || state_ == State::kDone) return;
  SKIFF_LOG(kDebug) << "stream " << downstream_id_ << ": deadline exceeded";
  if (state_ == State::kCommitted) {
    cancel_upstream();
    return abort_committed(StatusCode::kDeadlineExceeded, "deadline exceeded", NGHTTP2_CANCEL);
  }
  reply_local({StatusCode::kDeadlineExceeded, "deadline exceeded"});
}

void Call::reply_local(grpc::LocalReply reply) {
  cancel_upstream();
  stop_deadline();
  if (downstream_ == nullptr || state_ >= State::kCommitted) return;
  SKIFF_LOG(kDebug) << "stream " << downstream_id_ << ": local reply "
                    << grpc::status_name(reply.code) << ": " << reply.message;
  if (state_ == State::kHolding) drop_held();
  transition_to(State::kDone);
  note_status(reply.code);
  local_message_ = reply.message;
  downstream_->session().submit_response(downstream_id_, to_h2(grpc::trailers_only_headers(reply)),
                                         /*with_body=*/false);
}

void Call::abort_committed(StatusCode code, std::string_view message, uint32_t h2_error) {
  transition_to(State::kDone);
  note_status(code);
  if (response_framer_.at_boundary() && !response_body_.finished()) {
    // Clean end after the last whole message: the client sees |code|, not a truncation.
    response_body_.finish_with(to_h2(grpc::status_trailers(code, message)));
    return;
  }
  // Mid-message: only a reset says "this response is broken".
  downstream_->session().reset_stream(downstream_id_, h2_error);
}

void Call::stop_deadline() {
  ctx_.worker.deadlines().remove(deadline_entry_);
  if (deadline_timer_) deadline_timer_->stop();
}

void Call::arm_deadline_timer() {
  if (!deadline_timer_) {
    deadline_timer_.emplace(ctx_.worker.timer_pool(), [this] { on_deadline(); });
  }
  const auto left = std::max(*deadline_ - base::SteadyClock::now(), base::Duration::zero());
  deadline_timer_->start(std::chrono::ceil<std::chrono::milliseconds>(left));
}

void Call::cancel_upstream() {
  cancel_copies();
  if (retry_timer_) retry_timer_->stop();
  if (attempt_timer_) attempt_timer_->stop();
  attempt_.release();
  if (waiting_in_pool_) {
    pool_->cancel(this);
    waiting_in_pool_ = false;
  }
  detach_upstream();
}

void Call::detach_upstream() {
  if (upstream_ == nullptr) return;
  h2::ClientSession* session = std::exchange(upstream_, nullptr);
  session->consume(upstream_id_, response_body_.undrained());
  session->detach(upstream_id_);
}

policy::HedgeGate Call::hedge_gate() const {
  policy::HedgeGate gate;
  gate.throttled = policy_->retry_budget && !policy_->retry_budget->retry_allowed();
  // A copy replays the whole request: once it outgrew buffer_bytes, one copy is all (A6).
  gate.buffer_overflowed = !request_body_.retaining();
  gate.deadline = deadline_ ? policy::Deadline::at(*deadline_) : policy::Deadline::none();
  return gate;
}

void Call::pump_hedges() {
  Hedge& h = *hedge_;
  while (state_ == State::kHedging) {
    const auto now = base::SteadyClock::now();
    const policy::HedgeTiming timing = policy_->hedging->next_hedge(h.state, hedge_gate(), now);
    if (timing.kind == policy::HedgeTiming::Kind::kNoMore) {
      if (h.state.outstanding == 0) answer_hedged();
      return;
    }
    if (timing.kind == policy::HedgeTiming::Kind::kWaitUntil) {
      if (!h.timer) h.timer.emplace(ctx_.worker.timer_pool(), [this] { pump_hedges(); });
      h.timer->start(std::chrono::ceil<std::chrono::milliseconds>(timing.at - now));
      return;
    }
    // A later copy carries the whole request: until it has all arrived, on_request_end asks
    // again.
    if (h.state.sent > 0 && !request_body_.finished()) return;
    send_copy();
  }
}

void Call::send_copy() {
  Hedge& h = *hedge_;
  const unsigned index = h.state.sent;
  std::unique_ptr<Copy> copy;
  if (index == 0) {
    copy = std::make_unique<Copy>(*this, 0, &request_body_);
  } else {
    // Cluster max_retries: a copy after the first counts as a retry while it runs.
    auto lease =
        ctx_.snapshot->clusters[route_->cluster].limits->acquire(policy::ClusterResource::kRetries);
    if (!lease) {
      SKIFF_LOG(kDebug) << "stream " << downstream_id_ << ": no hedged copy (cluster max_retries)";
      counters_->retry_budget_exhausted.add();
      h.state.stopped = true;
      return;
    }
    copy = std::make_unique<Copy>(*this, index, nullptr);
    copy->retry_lease = std::move(lease);
    // Its own copy of the whole request. The downstream's window credit for those bytes goes
    // back now: the first copy may never take them all.
    request_body_.credit_received();
    request_body_.append_replay_to(copy->own_body());
    copy->own_body().finish();
    counters_->hedges.add();
  }
  policy_->hedging->on_sent(h.state, base::SteadyClock::now());
  // Spread the copies: not the endpoint the previous copy went to, when there is another.
  std::optional<size_t> avoid;
  if (!h.copies.empty() && h.copies.back()->endpoint != nullptr) {
    avoid = h.copies.back()->endpoint->index;
  }
  Copy& sent = *copy;
  h.copies.push_back(std::move(copy));
  sent.waiting = true;
  pool_->acquire(&sent, avoid);
}

void Call::on_copy_ready(Copy& copy, h2::ClientSession* session,
                         const upstream::EndpointSpec& endpoint, upstream::AttemptTicket ticket) {
  if (state_ != State::kHedging) return;
  copy.endpoint = &endpoint;
  std::string timeout_scratch;
  std::string attempts_scratch;
  // A6: a hedged copy's grpc-previous-rpc-attempts is the number of copies sent before it.
  int32_t id = session->open_stream(
      upstream_request_headers(endpoint, copy.index(), timeout_scratch, attempts_scratch), &copy);
  if (id < 0) {
    return on_copy_failed(copy, policy::ProxyFailure::kConnectFailure,
                          "cannot open a stream to " + endpoint.name + ": " + nghttp2_strerror(id));
  }
  copy.session = session;
  copy.stream_id = id;
  copy.ticket = std::move(ticket);
  ++attempts_;
  SKIFF_LOG(kTrace) << "stream " << downstream_id_ << " -> " << endpoint.name << " stream " << id
                    << " (copy " << copy.index() + 1 << ")";
}

void Call::on_copy_headers(Copy& copy, h2::HeaderList headers, bool end_stream) {
  if (state_ != State::kHedging) return;
  if (auto failure = as_grpc_failure(headers)) {
    if (!end_stream) copy.cancel();  // as in on_response_headers
    headers = std::move(*failure);
    end_stream = true;
  }
  const StatusCode code = status_of(headers);
  copy.ticket.on_response(end_stream && code == StatusCode::kResourceExhausted);
  if (!end_stream) {
    // Response headers commit the call to this copy (A6), whatever its status will be.
    adopt(copy);
    return on_response_headers(std::move(headers), false);
  }
  copy.finished = true;
  copy.ticket.release();
  const bool rejected = rejected_by_skiff(headers);
  report_attempt(copy.endpoint, is_failure(code) && !rejected);
  policy::HedgeResponse response;
  response.outcome = policy::Outcome::status(static_cast<uint8_t>(code));
  response.pushback = pushback_of(headers);
  response.local_rejection = rejected;
  on_copy_result(copy, response, std::move(headers));
}

void Call::on_copy_failed(Copy& copy, policy::ProxyFailure failure, std::string reason,
                          bool overflow) {
  if (state_ != State::kHedging) return;
  copy.finished = true;
  policy::HedgeResponse response;
  response.outcome = policy::Outcome::failure(failure);
  // Load shedding by the cluster's limits: no more copies because of it.
  response.local_rejection = overflow;
  grpc::LocalReply reply{StatusCode::kUnavailable, std::move(reason)};
  if (overflow) reply.rejected = grpc::kRejectedOverflow;
  on_copy_result(copy, response, std::move(reply));
}

void Call::on_copy_closed(Copy& copy, uint32_t error_code, h2::ClientSession* session) {
  if (state_ != State::kHedging) return;
  report_attempt(copy.endpoint, true);
  std::string what =
      describe_upstream_close(copy.endpoint, error_code, session) + " before response headers";
  // REFUSED_STREAM: not processed, and non-fatal by default (docs/policies.md).
  on_copy_failed(copy,
                 error_code == NGHTTP2_REFUSED_STREAM ? policy::ProxyFailure::kRefusedStream
                                                      : policy::ProxyFailure::kReset,
                 std::move(what));
}

void Call::on_copy_result(Copy& copy, const policy::HedgeResponse& response,
                          std::variant<h2::HeaderList, grpc::LocalReply> answer) {
  Hedge& h = *hedge_;
  const policy::HedgingPolicy& hedging = *policy_->hedging;
  if (policy_->retry_budget) {
    if (response.outcome.is_ok()) {
      policy_->retry_budget->on_success();
    } else if (hedging.costs_budget(response)) {
      policy_->retry_budget->on_failure();
    }
  }
  const policy::HedgeAction action =
      hedging.on_response(h.state, response, hedge_gate(), base::SteadyClock::now());
  SKIFF_LOG(kDebug) << "stream " << downstream_id_ << ": copy " << copy.index() + 1 << " "
                    << policy::to_string(response.outcome) << ": " << policy::to_string(action);
  h.last = std::move(answer);
  switch (action) {
    case policy::HedgeAction::kCommit:
    case policy::HedgeAction::kFatal:
    case policy::HedgeAction::kGiveUp:
      endpoint_ = copy.endpoint;
      return answer_hedged();
    case policy::HedgeAction::kSendNext:
    case policy::HedgeAction::kWaitForOthers:
      return pump_hedges();
  }
}

void Call::answer_hedged() {
  Hedge& h = *hedge_;
  cancel_copies();
  if (!h.last) {
    return reply_local({StatusCode::kUnavailable, "no hedged copy could be sent"});
  }
  auto last = std::move(*h.last);
  h.last.reset();
  if (auto* reply = std::get_if<grpc::LocalReply>(&last)) {
    if (reply->rejected == grpc::kRejectedOverflow) return reply_shed(std::move(*reply));
    return reply_local(std::move(*reply));
  }
  forward_trailers_only(std::move(std::get<h2::HeaderList>(last)));
}

void Call::adopt(Copy& copy) {
  copy.adopted = true;
  upstream_ = copy.session;
  upstream_id_ = copy.stream_id;
  endpoint_ = copy.endpoint;
  attempt_ = std::move(copy.ticket);
  retry_lease_ = std::move(copy.retry_lease);
  cancel_copies();
  transition_to(State::kForwarding);
}

void Call::cancel_copies() {
  if (!hedge_) return;
  if (hedge_->timer) hedge_->timer->stop();
  hedge_->state.stopped = true;
  for (auto& copy : hedge_->copies) {
    // A finished copy's stream is closing by itself; ~Copy detaches it if it has not.
    if (copy->adopted || copy->finished) continue;
    policy::HedgingPolicy::on_cancelled(hedge_->state);
    copy->finished = true;
    copy->cancel();
  }
}

std::unique_ptr<h2::StreamHandler> CallFactory::on_request(h2::ServerStream& stream) {
  auto call = std::make_unique<Call>(
      CallContext{worker_, snapshot_, snapshot_->listeners[listener_], pools_, calls_, observers_},
      stream);
  call->start();
  return call;
}

}  // namespace skiff::proxy
