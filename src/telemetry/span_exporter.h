// SpanExporter: sends the span of each sampled call to a Zipkin-compatible collector, in batches,
// from a background thread, so the data plane never waits on the collector.
//
// Format choice: Zipkin v2 JSON (POST /api/v2/spans). It is one self-contained HTTP request per
// batch with no schema compilation or gRPC client, and Zipkin, Jaeger (its Zipkin collector port),
// Grafana Tempo and the OpenTelemetry Collector's zipkin receiver all accept it. Its span model
// matches skiff's hop exactly: one CLIENT span per call, parented on the caller's span, with
// string-valued tags. OTLP would need protobuf or a much larger JSON mapping for no extra meaning.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "telemetry/background_queue.h"
#include "telemetry/call_record.h"

namespace skiff::telemetry {

struct SpanExporterOptions {
  std::string url;  // e.g. http://127.0.0.1:9411/api/v2/spans
  std::string service_name = "skiff";
  size_t max_queue = 10000;                        // spans waiting; more are dropped
  size_t max_batch = 256;                          // spans per POST
  std::chrono::milliseconds flush_interval{1000};  // longest a queued span waits for a batch
  // The longest wait for the connect, and then for the response.
  std::chrono::milliseconds timeout{2000};
};

class SpanExporter {
 public:
  explicit SpanExporter(SpanExporterOptions options);
  ~SpanExporter();  // exports what is queued, then stops
  SpanExporter(const SpanExporter&) = delete;
  SpanExporter& operator=(const SpanExporter&) = delete;

  // Any thread. Queues the call's span if it has one to export (sampled, with a trace and span
  // id); returns false if it has none (not counted) or the queue is full (counted in dropped()).
  bool submit(CallRecord record);
  // Exports what is queued, for at most kStopBudget (a slow collector must not hold the
  // process's exit past its grace period; the rest count as failed), then joins the background
  // thread. Idempotent.
  static constexpr std::chrono::milliseconds kStopBudget{2000};
  void stop();

  uint64_t exported() const { return exported_.load(std::memory_order_relaxed); }
  uint64_t dropped() const { return queue_.dropped(); }
  // Spans in batches the collector refused (non-2xx) or that could not be sent.
  uint64_t failed() const { return failed_.load(std::memory_order_relaxed); }

 private:
  struct Http;  // the collector's address (civetweb client); used only on the background thread

  void send(std::vector<CallRecord>& batch);

  const SpanExporterOptions options_;
  std::atomic<uint64_t> exported_{0};
  std::atomic<uint64_t> failed_{0};
  bool failing_ = false;  // background thread only: the last batch failed (logs transitions)
  std::atomic<bool> stopping_{false};   // stop() was called: don't wait on a failing collector
  std::atomic<int64_t> stop_by_ns_{0};  // steady-clock deadline of the flush stop() allows
  std::unique_ptr<Http> http_;
  BackgroundQueue<CallRecord> queue_;  // last: its thread uses the members above
};

// A Zipkin v2 JSON array with one CLIENT span per record (pure; exposed for tests).
std::string to_zipkin_json(std::span<const CallRecord> records, std::string_view service_name);

}  // namespace skiff::telemetry
