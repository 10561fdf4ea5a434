// Server: config -> snapshot -> sockets -> workers; signals -> drain -> exit.
#include "server/server.h"

#include <signal.h>
#include <unistd.h>
#include <uv.h>

#include <atomic>
#include <cstdio>
#include <functional>
#include <mutex>
#include <random>
#include <thread>
#include <utility>

#include "admin/admin_server.h"
#include "base/log.h"
#include "net/address.h"
#include "net/listener.h"
#include "net/worker.h"
#include "server/cert_watcher.h"
#include "server/config_json.h"
#include "server/stats.h"
#include "server/worker_setup.h"
#include "telemetry/observers.h"

namespace skiff::server {
namespace {

std::string where(const config::Config& config, const config::Position& pos) {
  return config.source + ":" + std::to_string(pos.line) + ":" + std::to_string(pos.col) + ": ";
}

h2::Limits to_limits(const config::Http2& h) {
  h2::Limits limits;
  limits.max_concurrent_streams = h.max_concurrent_streams;
  limits.initial_stream_window = h.initial_stream_window_bytes;
  limits.initial_connection_window = h.initial_connection_window_bytes;
  limits.max_header_list_bytes = h.max_header_list_bytes;
  limits.max_header_count = h.max_header_count;
  limits.max_frame_size = h.max_frame_bytes;
  limits.stream_flush_timeout = h.stream_flush_timeout;
  return limits;
}

// The main thread's loop: signals, worker completion, the drain deadline.
class MainLoop {
 public:
  MainLoop(std::vector<std::unique_ptr<net::Worker>>& workers,
           std::vector<std::unique_ptr<WorkerSetup>>& setups, std::chrono::milliseconds drain)
      : workers_(workers), setups_(setups), drain_timeout_(drain) {
    uv_loop_init(&loop_);
    uv_async_init(&loop_, &finished_async_,
                  [](uv_async_t* h) { static_cast<MainLoop*>(h->data)->on_worker_finished(); });
    finished_async_.data = this;
    uv_async_init(&loop_, &drain_async_, [](uv_async_t* h) {
      auto* self = static_cast<MainLoop*>(h->data);
      if (!self->draining_) self->start_drain();
    });
    drain_async_.data = this;
    for (uv_signal_t* s : {&sigterm_, &sigint_, &sighup_}) {
      uv_signal_init(&loop_, s);
      s->data = this;
    }
    uv_signal_start(&sigterm_, &MainLoop::on_signal, SIGTERM);
    uv_signal_start(&sigint_, &MainLoop::on_signal, SIGINT);
    // The default action of SIGHUP would end the process and every call with it.
    uv_signal_start(
        &sighup_,
        [](uv_signal_t*, int) {
          SKIFF_LOG(kWarn) << "received SIGHUP: skiff does not reload its config; restart it to "
                              "apply a changed file (certificates reload by themselves)";
        },
        SIGHUP);
    uv_timer_init(&loop_, &drain_timer_);
    drain_timer_.data = this;
  }

  ~MainLoop() { uv_loop_close(&loop_); }

  // Thread-safe: a worker has finished draining.
  void worker_finished() {
    finished_count_.fetch_add(1);
    uv_async_send(&finished_async_);
  }

  // Thread-safe (the admin server's POST /drain): drain as on SIGTERM. Safe to call even while
  // or after the loop closes its handles (then it only records the request).
  void request_drain() {
    drain_requested_.store(true);
    std::lock_guard lock(handles_mutex_);
    if (!handles_closed_) uv_async_send(&drain_async_);
  }

  // Closes the loop's own handles; run() then returns once they are closed. Used at the end,
  // and when start-up fails before any worker ran.
  void close_handles() {
    {
      std::lock_guard lock(handles_mutex_);
      if (handles_closed_) return;
      handles_closed_ = true;
    }
    for (uv_handle_t* h :
         {reinterpret_cast<uv_handle_t*>(&finished_async_),
          reinterpret_cast<uv_handle_t*>(&drain_async_), reinterpret_cast<uv_handle_t*>(&sigterm_),
          reinterpret_cast<uv_handle_t*>(&sigint_), reinterpret_cast<uv_handle_t*>(&sighup_),
          reinterpret_cast<uv_handle_t*>(&drain_timer_)}) {
      uv_close(h, nullptr);
    }
    // Closing the signal handles restores the default actions. What follows (the admin server
    // stopping, queued spans and log lines going out) is short and bounded: a signal now must
    // not turn a clean exit into death by signal.
    for (int signum : {SIGTERM, SIGINT, SIGHUP}) signal(signum, SIG_IGN);
  }
  // Thread-safe: a drain has started (signal or request).
  bool draining() const { return drain_requested_.load(); }

  void run() { uv_run(&loop_, UV_RUN_DEFAULT); }
  uv_loop_t* loop() { return &loop_; }
  // Runs once every worker has finished, before the main loop's own handles close (owners of
  // other main-loop handles close theirs here).
  void at_finish(std::function<void()> fn) { at_finish_ = std::move(fn); }

 private:
  // The first SIGTERM/SIGINT drains (or lets a drain that POST /drain started run on: a preStop
  // hook's request followed by the kubelet's SIGTERM is one shutdown); the second closes now.
  static void on_signal(uv_signal_t* handle, int signum) {
    auto* self = static_cast<MainLoop*>(handle->data);
    if (++self->signals_ > 1) {
      SKIFF_LOG(kInfo) << "received signal " << signum << " again, closing now";
      self->force_close();
    } else if (self->draining_) {
      SKIFF_LOG(kInfo) << "received signal " << signum
                       << ", already draining; a second signal closes at once";
    } else {
      SKIFF_LOG(kInfo) << "received signal " << signum << ", draining (up to "
                       << self->drain_timeout_.count() << "ms)";
      self->start_drain();
    }
  }

  void start_drain() {
    draining_ = true;
    drain_requested_.store(true);
    for (size_t i = 0; i < workers_.size(); ++i) {
      WorkerSetup* setup = setups_[i].get();
      workers_[i]->post([setup] { setup->drain(); });
    }
    uv_timer_start(
        &drain_timer_, [](uv_timer_t* t) { static_cast<MainLoop*>(t->data)->force_close(); },
        static_cast<uint64_t>(drain_timeout_.count()), 0);
  }

  void force_close() {
    uv_timer_stop(&drain_timer_);
    for (size_t i = 0; i < workers_.size(); ++i) {
      WorkerSetup* setup = setups_[i].get();
      workers_[i]->post([setup] { setup->force_close(); });
    }
  }

  void on_worker_finished() {
    if (finished_count_.load() < workers_.size()) return;
    if (at_finish_) std::exchange(at_finish_, nullptr)();
    close_handles();
  }

  std::vector<std::unique_ptr<net::Worker>>& workers_;
  std::vector<std::unique_ptr<WorkerSetup>>& setups_;
  std::chrono::milliseconds drain_timeout_;
  uv_loop_t loop_{};
  uv_async_t finished_async_{};
  uv_async_t drain_async_{};
  std::atomic<bool> drain_requested_{false};
  std::mutex handles_mutex_;  // request_drain (any thread) vs close_handles
  bool handles_closed_ = false;
  uv_signal_t sigterm_{};
  uv_signal_t sigint_{};
  uv_signal_t sighup_{};
  uv_timer_t drain_timer_{};
  int signals_ = 0;  // SIGTERM and SIGINT received
  std::atomic<size_t> finished_count_{0};
  std::function<void()> at_finish_;
  bool draining_ = false;
};

// Status names (retry `on`, route `failure_codes`) -> a set; names are checked here, against
// the one name table (policy::FailureCodes), and a bad one is reported at its position.
base::Result<policy::FailureCodes> to_failure_codes(const config::Config& config,
                                                    const std::vector<config::Retry::Code>& codes) {
  // Parsed one name at a time, so an error points at that entry's position.
  policy::FailureCodes set;
  for (const config::Retry::Code& code : codes) {
    std::string one[] = {code.name};
    auto parsed = policy::FailureCodes::parse(one);
    if (!parsed) {
      std::string_view message = parsed.error().message;
      if (message.starts_with("[0]: ")) message.remove_prefix(5);  // a one-entry list
      return base::fail(where(config, code.pos) + std::string(message));
    }
    set = set.merge(*parsed);
  }
  // As in gRPC's own retries, failures skiff reports with a status count as that status:
  // connect failures and resets surface as UNAVAILABLE, a per-try timeout as
  // DEADLINE_EXCEEDED (docs/policies.md).
  if (set.contains(policy::kCodeUnavailable)) {
    set = set.add(policy::ProxyFailure::kConnectFailure)
              .add(policy::ProxyFailure::kReset)
              .add(policy::ProxyFailure::kRefusedStream);
  }
  if (set.contains(policy::kCodeDeadlineExceeded)) {
    set = set.add(policy::ProxyFailure::kPerTryTimeout);
  }
  return set;
}

// config's retry -> policy::RetryPolicy. Without `on`, the route's failure codes are retried.
base::Result<policy::RetryPolicy> to_retry_policy(const config::Config& config,
                                                  const config::Retry& r,
                                                  policy::FailureCodes failure_codes) {
  policy::RetryPolicy p;
  p.max_attempts = r.max_attempts;
  p.per_try_timeout = r.per_try_timeout;
  p.backoff.initial = r.backoff_initial;
  p.backoff.max = r.backoff_max;
  p.backoff.multiplier = r.backoff_multiplier;
  // REFUSED_STREAM was certainly not processed: always safe to retry.
  p.retry_on = failure_codes.add(policy::ProxyFailure::kRefusedStream);
  if (!r.on.empty()) {
    auto retry_on = to_failure_codes(config, r.on);
    if (!retry_on) return std::unexpected(retry_on.error());
    p.retry_on = *retry_on;
  }
  if (auto valid = p.validate(); !valid) {
    return base::fail(where(config, r.pos) + valid.error().message);
  }
  return p;
}

// config's validated values -> the route's shared policy objects (docs/policies.md).
// |budget| is the route's cluster's retry budget.
base::Result<proxy::RoutePolicy> to_route_policy(const config::Config& config,
                                                 const config::Route& r,
                                                 std::shared_ptr<policy::RetryBudget> budget) {
  proxy::RoutePolicy p;
  p.grpc_timeout_offset = r.grpc_timeout_offset;
  if (!r.failure_codes.empty()) {
    auto codes = to_failure_codes(config, r.failure_codes);
    if (!codes) return std::unexpected(codes.error());
    p.failure_codes = *codes;
  }
  if (r.retry) {
    auto retry = to_retry_policy(config, *r.retry, p.failure_codes);
    if (!retry) return std::unexpected(retry.error());
    if (retry->max_attempts > 1) {
      p.retry = *retry;
      p.retry_buffer_bytes = r.retry->buffer_bytes;
      p.retry_budget = std::move(budget);
    }
  }
  if (r.hedging) {
    policy::HedgingPolicy hedging;
    hedging.max_attempts = r.hedging->max_attempts;
    hedging.hedging_delay = r.hedging->hedging_delay;
    if (!r.hedging->non_fatal.empty()) {
      auto non_fatal = to_failure_codes(config, r.hedging->non_fatal);
      if (!non_fatal) return std::unexpected(non_fatal.error());
      hedging.non_fatal = *non_fatal;
    }
    // A refused stream was never processed: it sends the next copy, on every hedging route (the
    // transparent retry of a route with `retry`).
    hedging.non_fatal = hedging.non_fatal.add(policy::ProxyFailure::kRefusedStream);
    if (auto valid = hedging.validate(); !valid) {
      return base::fail(where(config, r.hedging->pos) + valid.error().message);
    }
    if (hedging.max_attempts > 1) {
      p.hedging = hedging;
      p.retry_buffer_bytes = r.hedging->buffer_bytes;
      p.retry_budget = std::move(budget);
    }
  }
  if (r.rate_limit) {
    const config::RateLimit& limit = *r.rate_limit;
    if (limit.key == config::RateLimit::Key::kNone) {
      p.rate_limit =
          std::make_shared<policy::TokenBucket>(policy::TokenBucketParams{limit.rps, limit.burst});
    } else {
      policy::KeyedTokenBucketsParams params;
      params.rate = limit.rps;
      params.burst = limit.burst;
      params.max_keys = limit.max_keys;
      params.hash_seed = std::random_device{}() | (uint64_t{std::random_device{}()} << 32);
      if (auto valid = params.validate(); !valid) {
        return base::fail(where(config, limit.pos) + valid.error().message);
      }
      p.keyed_rate_limit = std::make_shared<policy::KeyedTokenBuckets>(params);
      p.rate_limit_key_header = limit.key_header;  // empty: keyed by the caller's identity
    }
    if (limit.unavailable) p.rate_limited_code = grpc::StatusCode::kUnavailable;
  }
  if (r.message_rate_limit) {
    p.message_rate_limit =
        policy::TokenBucketParams{r.message_rate_limit->rps, r.message_rate_limit->burst};
  }
  if (r.circuit_breaker) {
    // One breaker per method: a route naming a method needs no table.
    p.breaker = std::make_shared<policy::MethodBreakers>(
        policy::CircuitBreakerParams{r.circuit_breaker->consecutive_failures,
                                     r.circuit_breaker->open_for,
                                     r.circuit_breaker->half_open_probes},
        r.match.method.empty() ? policy::kMaxBreakerMethods : 1);
  }
  if (r.max_request_message_bytes) p.max_request_message_bytes = *r.max_request_message_bytes;
  if (r.max_response_message_bytes) p.max_response_message_bytes = *r.max_response_message_bytes;
  return p;
}

upstream::LoadBalancing to_load_balancing(config::LoadBalancing policy) {
  switch (policy) {
    case config::LoadBalancing::kRoundRobin:
      return upstream::LoadBalancing::kRoundRobin;
    case config::LoadBalancing::kLeastRequest:
      return upstream::LoadBalancing::kLeastRequest;
    case config::LoadBalancing::kPeakEwma:
      return upstream::LoadBalancing::kPeakEwma;
  }
  return upstream::LoadBalancing::kRoundRobin;
}

// Tracing and the access log (each null when off). Their background threads outlive the
// workers; |observers| points into the two objects.
struct Observability {
  telemetry::CallObservers observers;
  std::unique_ptr<telemetry::SpanExporter> span_exporter;
  std::unique_ptr<telemetry::AccessLog> access_log;
};

// Starts span export and the access log as configured, and registers their counters.
base::Result<Observability> start_observability(const config::Config& config,
                                                telemetry::Metrics& metrics) {
  Observability o;
  if (config.tracing) {
    o.observers.trace = true;
    o.observers.sample_rate = config.tracing->sample_rate;
    if (!config.tracing->zipkin_url.empty()) {
      telemetry::SpanExporterOptions options;
      options.url = config.tracing->zipkin_url;
      options.service_name = config.tracing->service_name;
      options.max_queue = config.tracing->max_queue;
      o.span_exporter = std::make_unique<telemetry::SpanExporter>(std::move(options));
      o.observers.spans = o.span_exporter.get();
    }
  }
  if (config.access_log) {
    telemetry::AccessLogOptions options;
    options.path = config.access_log->path;
    options.sample_rate = config.access_log->sample_rate;
    auto opened = telemetry::AccessLog::open(std::move(options));
    if (!opened) return base::fail(where(config, config.access_log->pos) + opened.error().message);
    o.access_log = std::move(*opened);
    o.observers.access_log = o.access_log.get();
  }
  metrics.add_collector(
      [spans = o.observers.spans, log = o.observers.access_log](telemetry::Families& out) {
        if (spans != nullptr) {
          out.counter("skiff_tracing_spans_exported_total", "Spans the collector accepted.", {},
                      static_cast<double>(spans->exported()));
          out.counter("skiff_tracing_spans_dropped_total",
                      "Spans dropped because the export queue was full.", {},
                      static_cast<double>(spans->dropped()));
          out.counter("skiff_tracing_spans_failed_total",
                      "Spans in batches the collector refused or that could not be sent.", {},
                      static_cast<double>(spans->failed()));
        }
        if (log != nullptr) {
          out.counter("skiff_access_log_lines_total", "Access log lines written.", {},
                      static_cast<double>(log->written()));
          out.counter("skiff_access_log_dropped_total",
                      "Access log lines dropped (queue full or write failed).", {},
                      static_cast<double>(log->dropped() + log->failed()));
        }
      });
  return o;
}

}  // namespace

base::Result<std::shared_ptr<const proxy::Snapshot>> build_snapshot(const config::Config& config,
                                                                    const TlsSetup* tls) {
  auto snapshot = std::make_shared<proxy::Snapshot>();
  snapshot->limits = to_limits(config.http2);
  for (const config::Cluster& c : config.clusters) {
    upstream::ClusterSpec spec;
    spec.name = c.name;
    spec.connect_timeout = c.connect_timeout;
    spec.max_connections_per_endpoint = c.max_connections_per_endpoint;
    spec.idle_connection_timeout = c.idle_connection_timeout;
    spec.max_requests_per_connection = c.max_requests_per_connection;
    spec.load_balancing = to_load_balancing(c.load_balancing);
    if (c.peak_ewma) {
      spec.peak_ewma = {c.peak_ewma->decay, c.peak_ewma->default_rtt,
                        c.peak_ewma->resource_exhausted_penalty};
    }
    if (tls != nullptr) spec.tls = tls->clusters[snapshot->clusters.size()];
    for (const config::Address& a : c.endpoints) {
      auto resolved = net::resolve(a.host, a.port);
      if (!resolved) return base::fail(where(config, a.pos) + resolved.error().message);
      // Each address of a name is an endpoint of its own (a headless service's pods); its
      // name says which, so metrics and /clusters never show two endpoints as one.
      const std::string name = a.to_string();
      for (const net::SocketAddress& addr : *resolved) {
        const std::string shown = addr.to_string();
        spec.endpoints.push_back(
            {resolved->size() == 1 || shown == name ? name : name + " (" + shown + ")", addr,
             static_cast<uint32_t>(spec.endpoints.size())});
      }
    }
    if (c.outlier_detection) {
      policy::OutlierDetectorParams params;
      params.consecutive_failures = c.outlier_detection->consecutive_failures;
      params.base_ejection_time = c.outlier_detection->base_ejection_time;
      params.max_ejection_time = c.outlier_detection->max_ejection_time;
      params.max_ejection_percent = c.outlier_detection->max_ejection_percent;
      params.interval = c.outlier_detection->interval;
      spec.outliers = std::make_shared<policy::OutlierDetector>(params, spec.endpoints.size());
    }
    policy::ClusterLimitsParams limits;
    limits.max_connections = c.circuit_breaker.max_connections;
    limits.max_pending_requests = c.circuit_breaker.max_pending_requests;
    limits.max_requests = c.circuit_breaker.max_requests;
    limits.max_retries = c.circuit_breaker.max_retries;
    if (c.circuit_breaker.retry_budget) {
      limits.retry_budget =
          policy::RetryConcurrencyBudget{c.circuit_breaker.retry_budget->budget_percent,
                                         c.circuit_breaker.retry_budget->min_retry_concurrency};
    }
    spec.limits = std::make_shared<policy::ClusterLimits>(limits);
    snapshot->clusters.push_back(std::move(spec));
  }
  // gRFC A6 retry throttling is per cluster (a channel, in gRPC terms), shared by all workers.
  std::vector<std::shared_ptr<policy::RetryBudget>> budgets;
  for (const config::Cluster& c : config.clusters) {
    policy::RetryBudgetParams params{c.retry_throttling.max_tokens, c.retry_throttling.token_ratio};
    if (auto valid = params.validate(); !valid) {
      return base::fail(where(config, c.retry_throttling.pos) + valid.error().message);
    }
    budgets.push_back(std::make_shared<policy::RetryBudget>(params));
  }
  // One metric series per distinct (listener, service, method) a route names; methods and
  // services no route names share "_other" (bounded cardinality).
  auto series_of = [&snapshot](const std::string& listener, const std::string& service,
                               const std::string& method) {
    telemetry::CallSeriesLabels labels{
        listener, service.empty() ? std::string(telemetry::kOtherLabel) : service,
        method.empty() ? std::string(telemetry::kOtherLabel) : method};
    auto& all = snapshot->series;
    auto it = std::find(all.begin(), all.end(), labels);
    if (it != all.end()) return static_cast<uint32_t>(it - all.begin());
    all.push_back(std::move(labels));
    return static_cast<uint32_t>(all.size() - 1);
  };
  for (const config::Listener& l : config.listeners) {
    proxy::ListenerView view;
    view.name = l.name;
    view.other_series = series_of(l.name, "", "");
    for (const config::Route& r : l.routes) {
      route::Route route;
      route.match = {r.match.service, r.match.method, r.match.authority};
      for (size_t i = 0; i < config.clusters.size(); ++i) {
        if (config.clusters[i].name == r.cluster) route.cluster = static_cast<uint32_t>(i);
      }
      route.timeout = r.timeout;
      route.allow = r.allow;
      auto route_policy = to_route_policy(config, r, budgets[route.cluster]);
      if (!route_policy) return std::unexpected(route_policy.error());
      view.routes.add(std::move(route));
      view.policies.push_back(std::move(*route_policy));
      view.route_series.push_back(series_of(l.name, r.match.service, r.match.method));
    }
    snapshot->listeners.push_back(std::move(view));
  }
  return std::shared_ptr<const proxy::Snapshot>(std::move(snapshot));
}

int run(const Options& options) {
  auto loaded = config::load_file(options.config_path);
  if (!loaded) {
    std::fprintf(stderr, "%s\n", loaded.error().to_string().c_str());
    return kExitConfigError;
  }
  const config::Config& config = *loaded;
  // Certificates and keys are read and checked before anything else can fail or listen.
  auto tls = build_tls(config);
  if (!tls) {
    std::fprintf(stderr, "%s\n", tls.error().message.c_str());
    return kExitConfigError;
  }
  auto snapshot = build_snapshot(config, &*tls);
  if (!snapshot) {
    std::fprintf(stderr, "%s\n", snapshot.error().message.c_str());
    return kExitConfigError;
  }
  if (options.check_only) {
    std::printf("%s: OK (%zu listeners, %zu clusters)\n", options.config_path.c_str(),
                config.listeners.size(), config.clusters.size());
    return kExitOk;
  }

  uint32_t n_workers = options.workers != 0 ? options.workers : config.workers;
  if (n_workers == 0) n_workers = std::max(1u, std::thread::hardware_concurrency());

  // Bind every worker's socket now, so an address in use stops skiff before anything serves.
  // Port 0 is resolved by the first bind and reused for the other workers' sockets.
  std::vector<std::vector<int>> fds(n_workers);
  std::vector<std::string> bound;
  for (const config::Listener& l : config.listeners) {
    auto addresses = net::resolve(l.address.host, l.address.port);
    if (!addresses) {
      std::fprintf(stderr, "%s%s\n", where(config, l.address.pos).c_str(),
                   addresses.error().message.c_str());
      return kExitConfigError;
    }
    net::SocketAddress address = addresses->front();
    if (address.port() != 0) {
      if (auto free = net::check_address_free(address); !free) {
        std::fprintf(stderr, "listener \"%s\": %s\n", l.name.c_str(), free.error().message.c_str());
        return kExitRuntimeError;
      }
    }
    for (uint32_t w = 0; w < n_workers; ++w) {
      auto fd = net::open_listen_socket(address);
      if (!fd) {
        std::fprintf(stderr, "listener \"%s\": %s\n", l.name.c_str(), fd.error().message.c_str());
        return kExitRuntimeError;
      }
      if (w == 0) address = *net::local_address(*fd);
      fds[w].push_back(*fd);
    }
    bound.push_back(address.to_string());
  }

  // Statistics outlive the workers and the admin server that reads them.
  telemetry::Metrics metrics((*snapshot)->series, n_workers);
  AllWorkerStats stats;
  for (uint32_t w = 0; w < n_workers; ++w)
    stats.push_back(std::make_unique<WorkerStats>(**snapshot));
  add_collectors(metrics, **snapshot, stats);

  auto observability = start_observability(config, metrics);
  if (!observability) {
    std::fprintf(stderr, "%s\n", observability.error().message.c_str());
    return kExitConfigError;
  }
  const telemetry::CallObservers& observers = observability->observers;

  signal(SIGPIPE, SIG_IGN);
  std::vector<std::unique_ptr<net::Worker>> workers;
  std::vector<std::unique_ptr<WorkerSetup>> setups;
  MainLoop main_loop(workers, setups, config.drain_timeout);
  std::atomic<uint32_t> workers_listening{0};
  // Rotated certificates reach new handshakes through the slots; the watcher's handles live on
  // the main loop and close when the workers have finished.
  CertWatcher cert_watcher(main_loop.loop(), tls->entries);
  main_loop.at_finish([&cert_watcher] { cert_watcher.close(); });
  // Every collector is added before the admin server starts: scrapes read the list unlocked.
  metrics.add_collector([&main_loop, &cert_watcher](telemetry::Families& out) {
    out.gauge("skiff_build_info", "skiff's version (the value is always 1).",
              {{"version", SKIFF_VERSION}}, 1);
    out.gauge("skiff_draining", "1 once a drain has started.", {}, main_loop.draining() ? 1 : 0);
    out.counter("skiff_tls_certificate_reloads_total",
                "Certificate and key files reloaded after they changed, by result (failed: the "
                "old certificate keeps serving).",
                {{"result", "ok"}}, static_cast<double>(cert_watcher.reloads()));
    out.counter("skiff_tls_certificate_reloads_total", "", {{"result", "failed"}},
                static_cast<double>(cert_watcher.reload_failures()));
  });

  // The admin server starts before any worker, so a port in use stops skiff before it serves.
  // Its threads read only what outlives them: |metrics|, |stats|, the snapshot and the main
  // loop's thread-safe calls. It stops (joining its threads) before those go away.
  std::unique_ptr<admin::AdminServer> admin_server;
  if (config.admin) {
    const std::string effective_config = config_json(config);
    admin::Handlers handlers;
    handlers.metrics = [&metrics] { return metrics.render(); };
    handlers.ready = [&main_loop, &workers_listening, n_workers] {
      return workers_listening.load() == n_workers && !main_loop.draining();
    };
    handlers.draining = [&main_loop] { return main_loop.draining(); };
    handlers.config = [effective_config] { return effective_config; };
    handlers.clusters = [&stats, snap = *snapshot] { return clusters_json(*snap, stats); };
    handlers.drain = [&main_loop] { main_loop.request_drain(); };
    auto started = admin::AdminServer::start(config.admin->address.host, config.admin->address.port,
                                             std::move(handlers));
    if (!started) {
      // A defaulted address has no position of its own: point at the admin block.
      const config::Position& pos =
          config.admin->address.pos.line != 0 ? config.admin->address.pos : config.admin->pos;
      std::fprintf(stderr, "%s%s\n", where(config, pos).c_str(), started.error().message.c_str());
      main_loop.close_handles();
      main_loop.run();
      return kExitRuntimeError;
    }
    admin_server = std::move(*started);
  }

  for (uint32_t w = 0; w < n_workers; ++w) workers.push_back(std::make_unique<net::Worker>(w));
  for (uint32_t w = 0; w < n_workers; ++w) {
    setups.push_back(std::make_unique<WorkerSetup>(*workers[w], *snapshot, fds[w], tls->listeners,
                                                   *stats[w], metrics.worker_calls(w), observers,
                                                   [&main_loop] { main_loop.worker_finished(); }));
  }
  for (uint32_t w = 0; w < n_workers; ++w) {
    WorkerSetup* setup = setups[w].get();
    workers[w]->start([setup, &workers_listening] {
      setup->start();
      workers_listening.fetch_add(1);
    });
  }
  cert_watcher.start();
  SKIFF_LOG(kInfo) << "skiff " << SKIFF_VERSION << " started with " << n_workers << " worker(s)";
  for (const TlsEntry& entry : tls->entries) {
    SKIFF_LOG(kInfo) << entry.name << ": TLS certificate "
                     << entry.slot->get()->certificate_description();
  }
  for (size_t i = 0; i < config.listeners.size(); ++i) {
    SKIFF_LOG(kInfo) << "listener \"" << config.listeners[i].name << "\" listening on " << bound[i];
  }
  if (admin_server) {
    SKIFF_LOG(kInfo) << "admin listening on " << admin_server->address();
  }
  main_loop.run();
  for (auto& w : workers) w->join();
  admin_server.reset();
  // Export and write what the last calls left queued.
  if (observability->span_exporter) observability->span_exporter->stop();
  if (observability->access_log) observability->access_log->stop();
  SKIFF_LOG(kInfo) << "drained, exiting";
  return kExitOk;
}

}  // namespace skiff::server
