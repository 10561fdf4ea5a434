// Tests for telemetry/span_exporter.h: the Zipkin v2 JSON shape, and export to a real local HTTP
// collector (civetweb on 127.0.0.1, ephemeral port) and to an unreachable one.
#include "telemetry/span_exporter.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace skiff::telemetry {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

bool eventually(const std::function<bool()>& done) {
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

std::chrono::system_clock::time_point at_micros(int64_t us) {
  return std::chrono::system_clock::time_point(std::chrono::microseconds(us));
}

CallRecord sampled_record(int i) {
  CallRecord r;
  r.start = at_micros(1'790'000'000'000'000 + i);
  r.duration = std::chrono::microseconds(1500);
  r.listener = "inbound";
  r.path = "/user.UserService/GetUser";
  r.upstream_cluster = "users";
  r.upstream_endpoint = "users-0:8080";
  r.upstream_address = "10.1.2.3:8080";
  r.grpc_status = 0;
  r.attempts = 1;
  r.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  char span_id[17];
  std::snprintf(span_id, sizeof span_id, "%016x", i + 1);
  r.span_id = span_id;
  r.sampled = true;
  return r;
}

// --- to_zipkin_json ------------------------------------------------------------------------

TEST(ZipkinJson, ChildSpanWithIpv4RemoteAndErrorStatus) {
  CallRecord r = sampled_record(0);
  r.parent_span_id = "00f067aa0ba902b7";
  r.span_id = "b7ad6b7169203331";
  r.duration = std::chrono::microseconds(2345);
  r.grpc_status = 14;
  r.attempts = 3;
  r.peer_identity = "spiffe://mesh.local/ns/default/sa/frontend";
  r.request_id = "req-42";

  json spans = json::parse(to_zipkin_json(std::span(&r, 1), "skiff-test"));
  ASSERT_TRUE(spans.is_array());
  ASSERT_EQ(spans.size(), 1u);
  const json& s = spans[0];
  EXPECT_EQ(s["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(s["id"], "b7ad6b7169203331");
  EXPECT_EQ(s["parentId"], "00f067aa0ba902b7");
  EXPECT_EQ(s["name"], "user.UserService/GetUser");
  EXPECT_EQ(s["kind"], "CLIENT");
  EXPECT_EQ(s["timestamp"], 1'790'000'000'000'000);
  EXPECT_EQ(s["duration"], 2345);
  EXPECT_EQ(s["localEndpoint"], json({{"serviceName", "skiff-test"}}));
  EXPECT_EQ(s["remoteEndpoint"], json({{"ipv4", "10.1.2.3"}, {"port", 8080}}));
  EXPECT_FALSE(s.contains("debug"));

  const json& tags = s["tags"];
  EXPECT_EQ(tags["grpc.status_code"], "14");
  EXPECT_EQ(tags["grpc.path"], "/user.UserService/GetUser");
  EXPECT_EQ(tags["skiff.listener"], "inbound");
  EXPECT_EQ(tags["skiff.cluster"], "users");
  EXPECT_EQ(tags["skiff.upstream"], "users-0:8080");
  EXPECT_EQ(tags["skiff.attempts"], "3");
  EXPECT_EQ(tags["peer.identity"], "spiffe://mesh.local/ns/default/sa/frontend");
  EXPECT_EQ(tags["guid:x-request-id"], "req-42");
  EXPECT_EQ(tags["error"], "UNAVAILABLE");
  for (const auto& [key, value] : tags.items()) EXPECT_TRUE(value.is_string()) << key;
}

TEST(ZipkinJson, RootSpanWithIpv6RemoteAndOkStatus) {
  CallRecord r = sampled_record(0);
  r.upstream_address = "[fd00::7]:9000";
  r.duration = std::chrono::nanoseconds(300);  // rounds to 0 us: reported as 1

  json s = json::parse(to_zipkin_json(std::span(&r, 1), "skiff"))[0];
  EXPECT_FALSE(s.contains("parentId"));
  EXPECT_EQ(s["duration"], 1);
  EXPECT_EQ(s["remoteEndpoint"], json({{"ipv6", "fd00::7"}, {"port", 9000}}));
  EXPECT_EQ(s["tags"]["grpc.status_code"], "0");
  EXPECT_FALSE(s["tags"].contains("error"));
  EXPECT_FALSE(s["tags"].contains("peer.identity"));
  EXPECT_FALSE(s["tags"].contains("guid:x-request-id"));
  EXPECT_FALSE(s.contains("debug"));
}

TEST(ZipkinJson, NoStatusNoUpstream) {
  CallRecord r = sampled_record(0);
  r.grpc_status.reset();
  r.upstream_address.clear();
  r.upstream_cluster.clear();
  r.upstream_endpoint.clear();
  r.attempts = 0;

  json s = json::parse(to_zipkin_json(std::span(&r, 1), "skiff"))[0];
  EXPECT_FALSE(s.contains("remoteEndpoint"));
  EXPECT_FALSE(s["tags"].contains("grpc.status_code"));
  EXPECT_FALSE(s["tags"].contains("error"));
  EXPECT_EQ(s["tags"]["skiff.attempts"], "0");
  for (const auto& [key, value] : s["tags"].items()) EXPECT_TRUE(value.is_string()) << key;
}

TEST(ZipkinJson, StatusOutsideTheTableIsTaggedByNumber) {
  CallRecord r = sampled_record(0);
  r.grpc_status = 99;
  json s = json::parse(to_zipkin_json(std::span(&r, 1), "skiff"))[0];
  EXPECT_EQ(s["tags"]["error"], "99");
  EXPECT_EQ(s["tags"]["grpc.status_code"], "99");
}

TEST(ZipkinJson, UnparsableAddressOmitsRemoteEndpoint) {
  for (const char* address : {"users-0:8080", "10.1.2.3:http", "[fd00::7", "10.1.2.3:70000"}) {
    CallRecord r = sampled_record(0);
    r.upstream_address = address;
    json s = json::parse(to_zipkin_json(std::span(&r, 1), "skiff"))[0];
    EXPECT_FALSE(s.contains("remoteEndpoint")) << address;
  }
}

TEST(ZipkinJson, InvalidUtf8IsReplacedNotThrown) {
  CallRecord r = sampled_record(0);
  r.path = "/svc/\xff\xfe";
  json s = json::parse(to_zipkin_json(std::span(&r, 1), "skiff"))[0];
  EXPECT_TRUE(s["name"].is_string());
}

TEST(ZipkinJson, ManyRecordsMakeOneArray) {
  std::vector<CallRecord> records;
  for (int i = 0; i < 5; ++i) records.push_back(sampled_record(i));
  json spans = json::parse(to_zipkin_json(records, "skiff"));
  ASSERT_EQ(spans.size(), 5u);
  EXPECT_EQ(spans[4]["id"], "0000000000000005");
  EXPECT_EQ(json::parse(to_zipkin_json({}, "skiff")), json::array());
}

// --- export over HTTP ------------------------------------------------------------------------

void connect_and_close(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  (void)connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  close(fd);
}

// A Zipkin stand-in: civetweb on 127.0.0.1 with an ephemeral port, answering |status| to every
// POST /api/v2/spans (|delay| after reading it) and remembering what it got.
class Collector {
 public:
  explicit Collector(int status = 202, std::chrono::milliseconds delay = 0ms)
      : status_(status), delay_(delay) {
    const char* options[] = {"listening_ports", "127.0.0.1:0", "num_threads", "2", nullptr};
    mg_callbacks callbacks{};
    ctx_ = mg_start(&callbacks, nullptr, options);
    if (ctx_ == nullptr) return;
    mg_set_request_handler(ctx_, "/api/v2/spans", &Collector::on_request, this);
    mg_server_port ports[4];
    int n = mg_get_server_ports(ctx_, 4, ports);
    if (n > 0) port_ = ports[0].port;
  }
  ~Collector() {
    if (ctx_ == nullptr) return;
    // civetweb's listener thread notices mg_stop() only when its poll() returns, which without a
    // new connection takes up to 2 s: connect until it has stopped.
    std::atomic<bool> stopped{false};
    std::thread poke([&] {
      while (!stopped.load()) {
        connect_and_close(port_);
        std::this_thread::sleep_for(10ms);
      }
    });
    mg_stop(ctx_);
    stopped = true;
    poke.join();
  }

  bool running() const { return ctx_ != nullptr && port_ > 0; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/api/v2/spans"; }
  size_t span_count() {
    std::lock_guard lock(mu_);
    return span_ids_.size() + duplicates_;
  }
  std::set<std::string> span_ids() {
    std::lock_guard lock(mu_);
    return span_ids_;
  }
  std::vector<std::string> errors() {
    std::lock_guard lock(mu_);
    return errors_;
  }
  size_t requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  static int on_request(mg_connection* conn, void* self) {
    return static_cast<Collector*>(self)->handle(conn);
  }

  int handle(mg_connection* conn) {
    const mg_request_info* info = mg_get_request_info(conn);
    std::string body;
    char buf[4096];
    for (int n; (n = mg_read(conn, buf, sizeof buf)) > 0;) body.append(buf, static_cast<size_t>(n));
    const char* content_type = mg_get_header(conn, "Content-Type");
    {
      std::lock_guard lock(mu_);
      ++requests_;
      if (std::string(info->request_method) != "POST") errors_.push_back("method");
      if (content_type == nullptr || std::string(content_type) != "application/json") {
        errors_.push_back("content-type");
      }
      json spans = json::parse(body, nullptr, /*allow_exceptions=*/false);
      if (!spans.is_array()) {
        errors_.push_back("body: " + body);
      } else if (status_ / 100 == 2) {
        for (const json& span : spans) {
          if (!span_ids_.insert(span.value("id", "")).second) ++duplicates_;
        }
      }
    }
    std::this_thread::sleep_for(delay_);  // a slow collector (this is its behaviour, no wait)
    mg_printf(conn, "HTTP/1.1 %d Status\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
              status_);
    return status_;
  }

  const int status_;
  const std::chrono::milliseconds delay_;
  mg_context* ctx_ = nullptr;
  int port_ = 0;
  std::mutex mu_;
  std::set<std::string> span_ids_;
  size_t duplicates_ = 0;
  size_t requests_ = 0;
  std::vector<std::string> errors_;
};

// A 127.0.0.1 port that was just bound and closed: nothing listens there.
int closed_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

TEST(SpanExporter, SampledSpansArriveAtTheCollector) {
  Collector collector;
  ASSERT_TRUE(collector.running());
  SpanExporter exporter(
      SpanExporterOptions{.url = collector.url(), .max_batch = 4, .flush_interval = 10ms});

  std::set<std::string> expected;
  for (int i = 0; i < 10; ++i) {
    CallRecord r = sampled_record(i);
    expected.insert(r.span_id);
    EXPECT_TRUE(exporter.submit(std::move(r)));
  }
  // Unsampled, or without a trace: not submitted at all.
  CallRecord unsampled = sampled_record(100);
  unsampled.sampled = false;
  EXPECT_FALSE(exporter.submit(unsampled));
  CallRecord untraced = sampled_record(101);
  untraced.trace_id.clear();
  EXPECT_FALSE(exporter.submit(untraced));

  ASSERT_TRUE(eventually([&] { return exporter.exported() == 10; }));
  EXPECT_EQ(collector.span_count(), 10u);
  EXPECT_EQ(collector.span_ids(), expected);
  EXPECT_GE(collector.requests(), 3u);  // batches of at most 4
  EXPECT_EQ(collector.errors(), std::vector<std::string>{});
  exporter.stop();
  EXPECT_EQ(collector.span_count(), 10u);
  EXPECT_EQ(exporter.failed(), 0u);
  EXPECT_EQ(exporter.dropped(), 0u);
}

TEST(SpanExporter, DestructorExportsWhatIsQueued) {
  Collector collector;
  ASSERT_TRUE(collector.running());
  {
    SpanExporter exporter(
        SpanExporterOptions{.url = collector.url(), .flush_interval = std::chrono::hours(1)});
    for (int i = 0; i < 5; ++i) EXPECT_TRUE(exporter.submit(sampled_record(i)));
  }
  EXPECT_EQ(collector.span_count(), 5u);
}

// A slow collector does not hold the exit: stop() flushes for SpanExporter::kStopBudget, and
// what is left counts as failed. Sent one by one at 1 s each, the 10 spans would take 10 s.
TEST(SpanExporter, StopFlushesWithinItsBudget) {
  Collector collector(/*status=*/202, /*delay=*/1000ms);
  ASSERT_TRUE(collector.running());
  SpanExporter exporter(SpanExporterOptions{
      .url = collector.url(), .max_batch = 1, .flush_interval = std::chrono::hours(1)});
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(exporter.submit(sampled_record(i)));
  const auto start = std::chrono::steady_clock::now();
  exporter.stop();
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(exporter.exported() + exporter.failed(), 10u);
  EXPECT_GE(exporter.failed(), 1u) << "every span was sent: the budget did not apply";
  EXPECT_LT(took, 7s) << "stop() waited for the whole queue";
}

TEST(SpanExporter, RefusedBatchesCountAsFailed) {
  Collector collector(/*status=*/400);
  ASSERT_TRUE(collector.running());
  SpanExporter exporter(SpanExporterOptions{.url = collector.url(), .flush_interval = 10ms});
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(exporter.submit(sampled_record(i)));
  exporter.stop();
  EXPECT_EQ(exporter.failed(), 3u);
  EXPECT_EQ(exporter.exported(), 0u);
}

TEST(SpanExporter, UnreachableCollectorCountsFailuresWithoutBlockingSubmit) {
  SpanExporter exporter(SpanExporterOptions{
      .url = "http://127.0.0.1:" + std::to_string(closed_port()) + "/api/v2/spans",
      .max_batch = 2,
      .flush_interval = 1ms});
  auto before = std::chrono::steady_clock::now();
  for (int i = 0; i < 6; ++i) EXPECT_TRUE(exporter.submit(sampled_record(i)));
  // Submitting only queues: far below even one connect attempt's timeout.
  EXPECT_LT(std::chrono::steady_clock::now() - before, 1s);
  ASSERT_TRUE(eventually([&] { return exporter.failed() == 6; }));
  EXPECT_EQ(exporter.exported(), 0u);
}

// A listener whose accept queue is full: the kernel drops further SYNs, as a collector behind a
// firewall that drops packets does. Its port; the fds are closed with the object.
class BlackHole {
 public:
  BlackHole() {
    listener_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    listen(listener_, 0);  // never accepted: one connection fills the queue
    socklen_t len = sizeof addr;
    getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    for (int i = 0; i < 3; ++i) {
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      (void)connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
      fillers_.push_back(fd);
    }
  }
  ~BlackHole() {
    for (int fd : fillers_) close(fd);
    close(listener_);
  }
  int port() const { return port_; }

 private:
  int listener_ = -1;
  int port_ = 0;
  std::vector<int> fillers_;
};

// civetweb's client waits a built-in 10 s for a connect; the exporter gives up after its POST
// timeout, so the exit's flush is not held that long either.
TEST(SpanExporter, CollectorThatDropsConnectsFailsWithinThePostTimeout) {
  BlackHole hole;
  SpanExporter exporter(SpanExporterOptions{
      .url = "http://127.0.0.1:" + std::to_string(hole.port()) + "/api/v2/spans",
      .flush_interval = std::chrono::hours(1),
      .timeout = 300ms});
  EXPECT_TRUE(exporter.submit(sampled_record(0)));
  const auto start = std::chrono::steady_clock::now();
  exporter.stop();
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(exporter.failed(), 1u);
  EXPECT_LT(took, 5s) << "the connect waited for civetweb's 10 s";
}

TEST(SpanExporter, FullQueueDrops) {
  // A collector nobody answers quickly is not needed: a queue of 2 with an hour-long interval
  // and big batches holds exactly 2.
  SpanExporter exporter(
      SpanExporterOptions{.url = "http://127.0.0.1:" + std::to_string(closed_port()) + "/",
                          .max_queue = 2,
                          .max_batch = 100,
                          .flush_interval = std::chrono::hours(1)});
  EXPECT_TRUE(exporter.submit(sampled_record(0)));
  EXPECT_TRUE(exporter.submit(sampled_record(1)));
  EXPECT_FALSE(exporter.submit(sampled_record(2)));
  EXPECT_EQ(exporter.dropped(), 1u);
  exporter.stop();
  EXPECT_EQ(exporter.failed(), 2u);
}

}  // namespace
}  // namespace skiff::telemetry
