// Tracing and the access log through the real binary: trace context continued (W3C, B3 multi,
// B3 single) or started, one trace across two chained skiffs with the right parent links, the
// caller's sampling decision honoured (unsampled calls export nothing, even on the exit flush),
// spans received by a local Zipkin stand-in (civetweb), access-log lines, and trace headers left
// untouched without a `tracing` block.
#include <arpa/inet.h>
#include <civetweb.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "http_client.h"

namespace skiff::it {
namespace {

using grpc::StatusCode;
using nlohmann::json;
using skiff::testing::Request;
using skiff::testing::Response;
using skiff::testing::TestService;
using Clock = std::chrono::steady_clock;

constexpr Millis kCallDeadline(20'000);
// "It eventually happens" on a loaded machine: spans are flushed at least every second.
constexpr Millis kObserveTimeout(20'000);
constexpr Millis kExitTimeout(20'000);
constexpr const char* kUnaryPath = "/skiff.testing.TestService/Unary";
constexpr const char* kUnarySpanName = "skiff.testing.TestService/Unary";

// A client's W3C context: a fixed trace id and the caller's span id.
constexpr const char* kTraceId = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr const char* kClientSpan = "00f067aa0ba902b7";

const std::regex kTraceparent("00-([0-9a-f]{32})-([0-9a-f]{16})-(0[0-9a-f])");
const std::regex kHex16("[0-9a-f]{16}");
const std::regex kHex32("[0-9a-f]{32}");
const std::regex kUuidV4("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");

// Polls |done| every 20 ms until it holds or |timeout| passes.
bool eventually(const std::function<bool()>& done, Millis timeout = kObserveTimeout) {
  const auto deadline = Clock::now() + timeout;
  while (!done()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(Millis(20));
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// A Zipkin stand-in: civetweb on 127.0.0.1 (ephemeral port) accepting POST /api/v2/spans with
// 202 and keeping every span it got.

class Collector {
 public:
  Collector() {
    const char* options[] = {"listening_ports", "127.0.0.1:0", "num_threads", "4", nullptr};
    mg_callbacks callbacks{};
    ctx_ = mg_start(&callbacks, nullptr, options);
    if (ctx_ == nullptr) throw std::runtime_error("Collector: mg_start failed");
    mg_set_request_handler(ctx_, "/api/v2/spans", &Collector::on_request, this);
    mg_server_port ports[4];
    int n = mg_get_server_ports(ctx_, 4, ports);
    if (n <= 0) throw std::runtime_error("Collector: no port");
    port_ = ports[0].port;
  }
  ~Collector() {
    // civetweb's listener thread notices mg_stop() only when its poll() returns, which without a
    // new connection takes up to 2 s: connect until it has stopped.
    std::atomic<bool> stopped{false};
    std::thread poke([&] {
      while (!stopped.load()) {
        connect_and_close();
        std::this_thread::sleep_for(Millis(10));
      }
    });
    mg_stop(ctx_);
    stopped = true;
    poke.join();
  }
  Collector(const Collector&) = delete;
  Collector& operator=(const Collector&) = delete;

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/api/v2/spans"; }

  std::vector<json> spans() const {
    std::lock_guard lock(mu_);
    return spans_;
  }
  std::vector<json> spans_of(const std::string& trace_id) const {
    std::vector<json> out;
    for (const json& s : spans()) {
      if (s.value("traceId", "") == trace_id) out.push_back(s);
    }
    return out;
  }
  size_t requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }
  std::vector<std::string> errors() const {
    std::lock_guard lock(mu_);
    return errors_;
  }
  // Waits until |n| spans of |trace_id| have arrived.
  bool wait_for_trace(const std::string& trace_id, size_t n) const {
    return eventually([&] { return spans_of(trace_id).size() >= n; });
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
      if (std::string(info->request_method) != "POST") {
        errors_.push_back(std::string("method ") + info->request_method);
      }
      if (content_type == nullptr || std::string(content_type) != "application/json") {
        errors_.push_back("content-type");
      }
      json spans = json::parse(body, nullptr, /*allow_exceptions=*/false);
      if (!spans.is_array()) {
        errors_.push_back("body: " + body);
      } else {
        for (json& span : spans) spans_.push_back(std::move(span));
      }
    }
    mg_printf(conn, "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    return 202;
  }

  void connect_and_close() const {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    (void)::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::close(fd);
  }

  mg_context* ctx_ = nullptr;
  int port_ = 0;
  mutable std::mutex mu_;
  std::vector<json> spans_;
  size_t requests_ = 0;
  std::vector<std::string> errors_;
};

// ---------------------------------------------------------------------------------------------
// Config and calls.

// The `tracing` block; no zipkin_url when |url| is empty.
std::string tracing_block(double sample_rate, const std::string& url,
                          const std::string& service_name = "skiff") {
  std::ostringstream y;
  y << "tracing:\n";
  y << "  sample_rate: " << sample_rate << "\n";
  if (!url.empty()) y << "  zipkin_url: \"" << url << "\"\n";
  y << "  service_name: " << service_name << "\n";
  return y.str();
}

// One skiff whose cluster "backend" is |upstream| ("127.0.0.1:PORT"), with |blocks| (top-level
// YAML) appended.
std::unique_ptr<SkiffProcess> start_skiff(const std::string& upstream, const std::string& blocks,
                                          const std::string& listener = "outbound",
                                          bool admin = false) {
  SkiffConfig cfg;
  cfg.listener = listener;
  cfg.cluster("backend", {upstream});
  SkiffOptions options;
  options.listeners = {listener};
  std::string yaml = cfg.yaml() + blocks;
  if (admin) {
    yaml += "admin:\n  address: 127.0.0.1:0\n";
    options.listeners.push_back("admin");
  }
  return std::make_unique<SkiffProcess>(yaml, options);
}

// SIGTERM and a clean exit: the exporter and the access log flush what is queued on the way out.
void stop_gracefully(SkiffProcess& skiff) {
  ExitStatus exit = skiff.terminate(kExitTimeout);
  EXPECT_TRUE(exit.exited()) << exit.to_string();
  EXPECT_EQ(exit.code(), 0) << exit.to_string();
}

using Metadata = std::vector<std::pair<std::string, std::string>>;

// A Unary call tagged |tag| with |metadata|; |respond_status| is the upstream's answer.
grpc::Status unary(TestService::Stub& stub, const std::string& tag, const Metadata& metadata,
                   StatusCode respond_status = StatusCode::OK) {
  grpc::ClientContext ctx;
  ctx.set_deadline(in(kCallDeadline));
  for (const auto& [k, v] : metadata) ctx.AddMetadata(k, v);
  Request req;
  req.set_tag(tag);
  req.set_payload("hello");
  if (respond_status != StatusCode::OK) {
    req.set_respond_status(static_cast<int>(respond_status));
    req.set_respond_message("injected");
  }
  Response resp;
  return stub.Unary(&ctx, req, &resp);
}

// The request metadata of the upstream call tagged |tag| (a test failure if there is none).
std::multimap<std::string, std::string> seen_by_upstream(const TestServer& server,
                                                         const std::string& tag) {
  for (const CallRecord& r : server.records()) {
    if (r.tag == tag) return r.metadata;
  }
  ADD_FAILURE() << "the upstream saw no call tagged " << tag;
  return {};
}

// The one value of |key| (a test failure, and "", unless there is exactly one).
std::string one_value(const std::multimap<std::string, std::string>& md, const std::string& key) {
  auto [begin, end] = md.equal_range(key);
  std::vector<std::string> values;
  for (auto it = begin; it != end; ++it) values.push_back(it->second);
  if (values.size() != 1) {
    ADD_FAILURE() << "expected one '" << key << "' header upstream, got " << values.size();
    return "";
  }
  return values[0];
}

bool has_key(const std::multimap<std::string, std::string>& md, const std::string& key) {
  return md.count(key) != 0;
}

struct Traceparent {
  std::string trace_id;
  std::string parent_id;
  std::string flags;
};

// Parses a version-00 traceparent; a test failure if it is not one.
Traceparent parse_traceparent(const std::string& value) {
  std::smatch m;
  if (!std::regex_match(value, m, kTraceparent)) {
    ADD_FAILURE() << "not a version-00 traceparent: '" << value << "'";
    return {};
  }
  return {m[1].str(), m[2].str(), m[3].str()};
}

// W3C traceparent for |trace_id| / |span_id|, sampled or not.
std::string traceparent(const std::string& trace_id, const std::string& span_id, bool sampled) {
  return "00-" + trace_id + "-" + span_id + (sampled ? "-01" : "-00");
}

// A trace id (32 hex) made from |n|, distinct per n.
std::string trace_id_for(int n) {
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016x%016x", 0x5eedu, n + 1);
  return buf;
}

// The value of the unlabelled sample |name| in skiff's /metrics; nullopt if absent.
std::optional<double> metric(const SkiffProcess& skiff, const std::string& name) {
  const HttpResponse r = http_get("http://" + skiff.address("admin") + "/metrics");
  EXPECT_EQ(r.status, 200) << r;
  std::istringstream text(r.status == 200 ? r.body : "");
  for (std::string line; std::getline(text, line);) {
    if (line.starts_with(name + " ")) return std::stod(line.substr(name.size() + 1));
  }
  return std::nullopt;
}

int64_t now_micros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The span started and ended within [from_us, to_us] (wall clock, microseconds), give or take a
// second: catches a timestamp or duration in the wrong unit.
void expect_within(const json& span, int64_t from_us, int64_t to_us) {
  constexpr int64_t kSlackUs = 1'000'000;
  const int64_t start = span.value("timestamp", int64_t{0});
  const int64_t duration = span.value("duration", int64_t{0});
  EXPECT_GE(start, from_us - kSlackUs) << span.dump();
  EXPECT_LE(start + duration, to_us + kSlackUs) << span.dump();
}

// Checks the fields every skiff span of a successful Unary call has.
void expect_ok_unary_span(const json& span, const std::string& service_name,
                          const std::string& listener) {
  SCOPED_TRACE(span.dump());
  EXPECT_EQ(span.value("name", ""), kUnarySpanName);
  EXPECT_EQ(span.value("kind", ""), "CLIENT");
  EXPECT_TRUE(std::regex_match(span.value("traceId", ""), kHex32));
  EXPECT_TRUE(std::regex_match(span.value("id", ""), kHex16));
  ASSERT_TRUE(span.contains("localEndpoint"));
  EXPECT_EQ(span["localEndpoint"].value("serviceName", ""), service_name);
  ASSERT_TRUE(span.contains("tags"));
  const json& tags = span["tags"];
  EXPECT_EQ(tags.value("grpc.status_code", ""), "0");
  EXPECT_EQ(tags.value("grpc.path", ""), kUnaryPath);
  EXPECT_EQ(tags.value("skiff.listener", ""), listener);
  EXPECT_EQ(tags.value("skiff.cluster", ""), "backend");
  EXPECT_EQ(tags.value("skiff.attempts", ""), "1");
  EXPECT_FALSE(tags.contains("error"));
  EXPECT_GE(span.value("duration", int64_t{0}), 1);
}

// ---------------------------------------------------------------------------------------------

// client -> skiff A -> skiff B -> server: one trace, A's span a child of the client's, B's a
// child of A's, and the server's parent is B's span.
TEST(Tracing, ChainedSkiffsKeepOneTraceWithParentLinks) {
  TestServer server;
  Collector collector;
  auto b = start_skiff(server.address(), tracing_block(1, collector.url(), "skiff-b"), "inbound");
  auto a = start_skiff(b->address("inbound"), tracing_block(1, collector.url(), "skiff-a"));
  auto stub = TestService::NewStub(make_channel(a->address()));

  const int64_t before_us = now_micros();
  ASSERT_TRUE(is_ok(unary(*stub, "chain",
                          {{"traceparent", traceparent(kTraceId, kClientSpan, true)},
                           {"tracestate", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"}})));
  const int64_t after_us = now_micros();
  auto md = seen_by_upstream(server, "chain");
  // tracestate is passed on unchanged, through both hops.
  EXPECT_EQ(one_value(md, "tracestate"), "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
  Traceparent seen = parse_traceparent(one_value(md, "traceparent"));
  EXPECT_EQ(seen.trace_id, kTraceId);
  EXPECT_EQ(seen.flags, "01");
  EXPECT_NE(seen.parent_id, kClientSpan);
  // skiff A made a request id; B kept it.
  const std::string request_id = one_value(md, "x-request-id");
  EXPECT_TRUE(std::regex_match(request_id, kUuidV4)) << request_id;

  ASSERT_TRUE(collector.wait_for_trace(kTraceId, 2))
      << collector.spans_of(kTraceId).size() << " of 2 spans arrived";
  stop_gracefully(*a);
  stop_gracefully(*b);

  // Exactly two, also after the exit flush.
  std::vector<json> spans = collector.spans_of(kTraceId);
  ASSERT_EQ(spans.size(), 2u) << json(spans).dump();
  EXPECT_EQ(collector.spans().size(), 2u);
  EXPECT_EQ(collector.errors(), std::vector<std::string>{});
  std::optional<json> span_a;
  std::optional<json> span_b;
  for (const json& s : spans) {
    const std::string service = s["localEndpoint"].value("serviceName", "");
    if (service == "skiff-a") span_a = s;
    if (service == "skiff-b") span_b = s;
  }
  ASSERT_TRUE(span_a && span_b) << json(spans).dump();
  expect_ok_unary_span(*span_a, "skiff-a", "outbound");
  expect_ok_unary_span(*span_b, "skiff-b", "inbound");
  expect_within(*span_a, before_us, after_us);
  expect_within(*span_b, before_us, after_us);

  const std::string a_id = span_a->value("id", "");
  const std::string b_id = span_b->value("id", "");
  EXPECT_EQ(span_a->value("parentId", ""), kClientSpan);
  EXPECT_EQ(span_b->value("parentId", ""), a_id);
  EXPECT_EQ(seen.parent_id, b_id);
  EXPECT_NE(a_id, kClientSpan);
  EXPECT_NE(b_id, kClientSpan);
  EXPECT_NE(a_id, b_id);
  EXPECT_NE(seen.parent_id, a_id);
  // Both hops tag the one request id.
  EXPECT_EQ((*span_a)["tags"].value("guid:x-request-id", ""), request_id);
  EXPECT_EQ((*span_b)["tags"].value("guid:x-request-id", ""), request_id);
  // A's remote endpoint is B; B's is the server.
  EXPECT_EQ((*span_a)["remoteEndpoint"].value("port", 0), b->port("inbound"));
  EXPECT_EQ((*span_b)["remoteEndpoint"].value("port", 0), server.port());
}

// Without incoming context skiff starts a sampled trace (rate 1): a valid traceparent and a
// UUID request id upstream, and a root span with those ids; a caller's x-request-id is kept.
TEST(Tracing, StartsTraceWithoutIncomingContext) {
  TestServer server;
  Collector collector;
  auto skiff = start_skiff(server.address(), tracing_block(1, collector.url()));
  auto stub = TestService::NewStub(make_channel(skiff->address()));

  ASSERT_TRUE(is_ok(unary(*stub, "fresh-1", {})));
  ASSERT_TRUE(is_ok(unary(*stub, "fresh-2", {})));
  ASSERT_TRUE(is_ok(unary(*stub, "with-id", {{"x-request-id", "my-request-42"}})));

  auto md1 = seen_by_upstream(server, "fresh-1");
  Traceparent tp1 = parse_traceparent(one_value(md1, "traceparent"));
  EXPECT_TRUE(std::regex_match(tp1.trace_id, kHex32));
  EXPECT_NE(tp1.trace_id, std::string(32, '0'));
  EXPECT_NE(tp1.parent_id, std::string(16, '0'));
  EXPECT_EQ(tp1.flags, "01");
  const std::string request_id1 = one_value(md1, "x-request-id");
  EXPECT_TRUE(std::regex_match(request_id1, kUuidV4)) << request_id1;
  EXPECT_FALSE(has_key(md1, "b3"));
  EXPECT_FALSE(has_key(md1, "x-b3-traceid"));

  // Every call starts its own trace, with its own request id.
  auto md2 = seen_by_upstream(server, "fresh-2");
  Traceparent tp2 = parse_traceparent(one_value(md2, "traceparent"));
  EXPECT_NE(tp2.trace_id, tp1.trace_id);
  EXPECT_NE(one_value(md2, "x-request-id"), request_id1);

  auto md3 = seen_by_upstream(server, "with-id");
  EXPECT_EQ(one_value(md3, "x-request-id"), "my-request-42");
  Traceparent tp3 = parse_traceparent(one_value(md3, "traceparent"));
  EXPECT_EQ(tp3.flags, "01");

  // The root span: the trace id and span the upstream saw, no parent.
  ASSERT_TRUE(collector.wait_for_trace(tp1.trace_id, 1));
  ASSERT_TRUE(collector.wait_for_trace(tp3.trace_id, 1));
  json root = collector.spans_of(tp1.trace_id).at(0);
  expect_ok_unary_span(root, "skiff", "outbound");
  EXPECT_EQ(root.value("id", ""), tp1.parent_id);
  EXPECT_FALSE(root.contains("parentId")) << root.dump();
  EXPECT_EQ(root["tags"].value("guid:x-request-id", ""), request_id1);
  json with_id = collector.spans_of(tp3.trace_id).at(0);
  EXPECT_EQ(with_id["tags"].value("guid:x-request-id", ""), "my-request-42");
}

// B3 multi headers are continued in B3 multi: same trace id, the caller's span as parent, a new
// span id; the exported span matches.
TEST(Tracing, B3MultiContinued) {
  TestServer server;
  Collector collector;
  // Rate 0: the span is exported only because the caller's X-B3-Sampled says so.
  auto skiff = start_skiff(server.address(), tracing_block(0, collector.url()));
  auto stub = TestService::NewStub(make_channel(skiff->address()));

  const std::string trace_id = "80f198ee56343ba864fe8b2a57d3eff7";
  const std::string client_span = "e457b5a2e4d86bd1";
  ASSERT_TRUE(is_ok(unary(*stub, "b3multi",
                          {{"x-b3-traceid", trace_id},
                           {"x-b3-spanid", client_span},
                           {"x-b3-parentspanid", "05e3ac9a4f6e3b90"},
                           {"x-b3-sampled", "1"}})));
  auto md = seen_by_upstream(server, "b3multi");
  EXPECT_EQ(one_value(md, "x-b3-traceid"), trace_id);
  EXPECT_EQ(one_value(md, "x-b3-parentspanid"), client_span);
  const std::string skiff_span = one_value(md, "x-b3-spanid");
  EXPECT_TRUE(std::regex_match(skiff_span, kHex16)) << skiff_span;
  EXPECT_NE(skiff_span, client_span);
  EXPECT_EQ(one_value(md, "x-b3-sampled"), "1");
  EXPECT_FALSE(has_key(md, "traceparent"));
  EXPECT_FALSE(has_key(md, "b3"));
  EXPECT_TRUE(std::regex_match(one_value(md, "x-request-id"), kUuidV4));

  // A 64-bit B3 trace id keeps its width upstream; Zipkin gets it left-padded to 32 digits.
  const std::string short_trace = "a3ce929d0e0e4736";
  ASSERT_TRUE(is_ok(
      unary(*stub, "b3multi-64",
            {{"x-b3-traceid", short_trace}, {"x-b3-spanid", client_span}, {"x-b3-sampled", "1"}})));
  auto md64 = seen_by_upstream(server, "b3multi-64");
  EXPECT_EQ(one_value(md64, "x-b3-traceid"), short_trace);
  EXPECT_EQ(one_value(md64, "x-b3-parentspanid"), client_span);
  const std::string skiff_span64 = one_value(md64, "x-b3-spanid");

  ASSERT_TRUE(collector.wait_for_trace(trace_id, 1));
  json span = collector.spans_of(trace_id).at(0);
  expect_ok_unary_span(span, "skiff", "outbound");
  EXPECT_EQ(span.value("id", ""), skiff_span);
  EXPECT_EQ(span.value("parentId", ""), client_span);

  const std::string padded = std::string(16, '0') + short_trace;
  ASSERT_TRUE(collector.wait_for_trace(padded, 1));
  json span64 = collector.spans_of(padded).at(0);
  EXPECT_EQ(span64.value("id", ""), skiff_span64);
  EXPECT_EQ(span64.value("parentId", ""), client_span);
}

// b3: {trace}-{span}-1 is continued as b3: {trace}-{new span}-1-{caller's span}.
TEST(Tracing, B3SingleContinued) {
  TestServer server;
  Collector collector;
  auto skiff = start_skiff(server.address(), tracing_block(0, collector.url()));
  auto stub = TestService::NewStub(make_channel(skiff->address()));

  const std::string trace_id = "463ac35c9f6413ad48485a3953bb6124";
  const std::string client_span = "a2fb4a1d1a96d312";
  ASSERT_TRUE(is_ok(unary(*stub, "b3single", {{"b3", trace_id + "-" + client_span + "-1"}})));
  auto md = seen_by_upstream(server, "b3single");
  const std::string b3 = one_value(md, "b3");
  std::smatch m;
  ASSERT_TRUE(std::regex_match(b3, m, std::regex("([0-9a-f]{32})-([0-9a-f]{16})-1-([0-9a-f]{16})")))
      << b3;
  EXPECT_EQ(m[1].str(), trace_id);
  const std::string skiff_span = m[2].str();
  EXPECT_NE(skiff_span, client_span);
  EXPECT_EQ(m[3].str(), client_span);
  EXPECT_FALSE(has_key(md, "traceparent"));
  EXPECT_FALSE(has_key(md, "x-b3-traceid"));

  ASSERT_TRUE(collector.wait_for_trace(trace_id, 1));
  json span = collector.spans_of(trace_id).at(0);
  expect_ok_unary_span(span, "skiff", "outbound");
  EXPECT_EQ(span.value("id", ""), skiff_span);
  EXPECT_EQ(span.value("parentId", ""), client_span);
}

// A caller sending W3C and B3 gets W3C continued; the B3 headers are not forwarded.
TEST(Tracing, W3CPreferredOverB3) {
  TestServer server;
  auto skiff = start_skiff(server.address(), tracing_block(1, ""));
  auto stub = TestService::NewStub(make_channel(skiff->address()));

  ASSERT_TRUE(is_ok(unary(*stub, "both",
                          {{"traceparent", traceparent(kTraceId, kClientSpan, true)},
                           {"b3", "463ac35c9f6413ad48485a3953bb6124-a2fb4a1d1a96d312-0"},
                           {"x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"},
                           {"x-b3-spanid", "e457b5a2e4d86bd1"},
                           {"x-b3-sampled", "0"}})));
  auto md = seen_by_upstream(server, "both");
  Traceparent seen = parse_traceparent(one_value(md, "traceparent"));
  EXPECT_EQ(seen.trace_id, kTraceId);
  EXPECT_NE(seen.parent_id, kClientSpan);
  EXPECT_EQ(seen.flags, "01");
  for (const char* key : {"b3", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled"}) {
    EXPECT_FALSE(has_key(md, key)) << key;
  }
}

// The caller said "not sampled": skiff (rate 1) passes that on and exports nothing, not even on
// the exit flush; a sampled call on the same skiff is exported.
TEST(Tracing, UnsampledCallerExportsNothing) {
  TestServer server;
  Collector collector;
  auto skiff = start_skiff(server.address(), tracing_block(1, collector.url()), "outbound",
                           /*admin=*/true);
  auto stub = TestService::NewStub(make_channel(skiff->address()));

  constexpr int kUnsampled = 20;
  std::set<std::string> unsampled_traces;
  for (int i = 0; i < kUnsampled; ++i) {
    const std::string trace_id = trace_id_for(i);
    unsampled_traces.insert(trace_id);
    const std::string tag = "unsampled-" + std::to_string(i);
    ASSERT_TRUE(
        is_ok(unary(*stub, tag, {{"traceparent", traceparent(trace_id, kClientSpan, false)}})));
    Traceparent seen = parse_traceparent(one_value(seen_by_upstream(server, tag), "traceparent"));
    EXPECT_EQ(seen.trace_id, trace_id);
    EXPECT_EQ(seen.flags, "00");
    EXPECT_NE(seen.parent_id, kClientSpan);
  }
  EXPECT_EQ(metric(*skiff, "skiff_tracing_spans_exported_total"), 0.0);
  EXPECT_EQ(metric(*skiff, "skiff_tracing_spans_dropped_total"), 0.0);
  EXPECT_EQ(metric(*skiff, "skiff_tracing_spans_failed_total"), 0.0);

  // A sampled call after them: once its span has been exported, any of theirs would have been.
  ASSERT_TRUE(
      is_ok(unary(*stub, "sampled", {{"traceparent", traceparent(kTraceId, kClientSpan, true)}})));
  ASSERT_TRUE(collector.wait_for_trace(kTraceId, 1));
  EXPECT_TRUE(eventually([&] {
    return metric(*skiff, "skiff_tracing_spans_exported_total") == 1.0;
  })) << "skiff_tracing_spans_exported_total is "
      << metric(*skiff, "skiff_tracing_spans_exported_total").value_or(-1);

  stop_gracefully(*skiff);
  std::vector<json> spans = collector.spans();
  ASSERT_EQ(spans.size(), 1u) << json(spans).dump();
  EXPECT_EQ(spans[0].value("traceId", ""), kTraceId);
  EXPECT_EQ(spans[0].value("parentId", ""), kClientSpan);
  for (const json& s : spans) EXPECT_FALSE(unsampled_traces.contains(s.value("traceId", "")));
  EXPECT_EQ(collector.errors(), std::vector<std::string>{});
}

// sample_rate 0 and no incoming context: nothing is exported, but the (unsampled) trace context
// still goes upstream.
TEST(Tracing, SampleRateZeroPropagatesButExportsNothing) {
  TestServer server;
  Collector collector;
  auto skiff = start_skiff(server.address(), tracing_block(0, collector.url()));
  auto stub = TestService::NewStub(make_channel(skiff->address()));

  std::set<std::string> traces;
  constexpr int kCalls = 10;
  for (int i = 0; i < kCalls; ++i) {
    const std::string tag = "rate0-" + std::to_string(i);
    ASSERT_TRUE(is_ok(unary(*stub, tag, {})));
    auto md = seen_by_upstream(server, tag);
    Traceparent seen = parse_traceparent(one_value(md, "traceparent"));
    EXPECT_TRUE(std::regex_match(seen.trace_id, kHex32));
    EXPECT_TRUE(std::regex_match(seen.parent_id, kHex16));
    EXPECT_EQ(seen.flags, "00");
    EXPECT_TRUE(std::regex_match(one_value(md, "x-request-id"), kUuidV4));
    traces.insert(seen.trace_id);
  }
  EXPECT_EQ(traces.size(), static_cast<size_t>(kCalls)) << "each call starts its own trace";

  stop_gracefully(*skiff);
  EXPECT_EQ(collector.spans().size(), 0u) << json(collector.spans()).dump();
  EXPECT_EQ(collector.requests(), 0u);
}

// One JSON line per call, flushed on exit, with the call's method, status, attempts, listener
// and trace context.
TEST(Tracing, AccessLogLines) {
  TestServer server;
  TempDir dir;
  const std::string log_path = dir.path() + "/access.log";
  auto skiff = start_skiff(server.address(), tracing_block(1, "") + "access_log:\n  path: \"" +
                                                 log_path + "\"\n  sample_rate: 1.0\n");
  auto stub = TestService::NewStub(make_channel(skiff->address()));

  constexpr int kCalls = 5;
  constexpr int kFailing = 3;  // this one fails with NOT_FOUND
  for (int i = 0; i < kCalls; ++i) {
    grpc::Status status = unary(*stub, "log-" + std::to_string(i),
                                {{"traceparent", traceparent(trace_id_for(i), kClientSpan, true)},
                                 {"x-request-id", "req-" + std::to_string(i)}},
                                i == kFailing ? StatusCode::NOT_FOUND : StatusCode::OK);
    if (i == kFailing) {
      EXPECT_TRUE(has_code(status, StatusCode::NOT_FOUND));
    } else {
      EXPECT_TRUE(is_ok(status));
    }
  }
  stop_gracefully(*skiff);

  std::ifstream in(log_path);
  ASSERT_TRUE(in) << "no access log at " << log_path;
  std::vector<json> lines;
  for (std::string line; std::getline(in, line);) {
    json parsed = json::parse(line, nullptr, /*allow_exceptions=*/false);
    ASSERT_TRUE(parsed.is_object()) << "not a JSON object: " << line;
    lines.push_back(std::move(parsed));
  }
  ASSERT_EQ(lines.size(), static_cast<size_t>(kCalls));

  std::set<int> seen_calls;
  for (const json& line : lines) {
    SCOPED_TRACE(line.dump());
    const std::string request_id = line.value("request_id", "");
    ASSERT_TRUE(request_id.starts_with("req-"));
    const int i = std::stoi(request_id.substr(4));
    ASSERT_TRUE(i >= 0 && i < kCalls);
    EXPECT_TRUE(seen_calls.insert(i).second) << "two lines for call " << i;

    EXPECT_EQ(line.value("listener", ""), "outbound");
    EXPECT_EQ(line.value("method", ""), kUnaryPath);
    ASSERT_TRUE(line.contains("grpc_status") && line["grpc_status"].is_number_integer());
    EXPECT_EQ(line["grpc_status"].get<int>(), i == kFailing ? 5 : 0);
    EXPECT_FALSE(line.contains("grpc_message")) << "only skiff's own replies carry one";
    EXPECT_EQ(line.value("attempts", -1), 1);
    EXPECT_EQ(line.value("cluster", ""), "backend");
    EXPECT_EQ(line.value("upstream_address", ""), server.address());
    EXPECT_EQ(line.value("request_messages", -1), 1);
    EXPECT_EQ(line.value("response_messages", -1), i == kFailing ? 0 : 1);
    EXPECT_EQ(line.value("trace_id", ""), trace_id_for(i));
    const std::string span_id = line.value("span_id", "");
    EXPECT_TRUE(std::regex_match(span_id, kHex16));
    EXPECT_NE(span_id, kClientSpan);
    // The span id logged is the one the upstream saw as its parent.
    Traceparent upstream = parse_traceparent(
        one_value(seen_by_upstream(server, "log-" + std::to_string(i)), "traceparent"));
    EXPECT_EQ(span_id, upstream.parent_id);
    EXPECT_TRUE(std::regex_match(line.value("time", ""),
                                 std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")));
    EXPECT_TRUE(line.contains("duration_ms") && line["duration_ms"].is_number());
    EXPECT_GE(line.value("duration_ms", -1.0), 0.0);
  }
  EXPECT_EQ(seen_calls.size(), static_cast<size_t>(kCalls));
}

// Without a `tracing` block skiff does not touch trace headers or x-request-id.
TEST(Tracing, WithoutTracingHeadersPassThrough) {
  TestServer server;
  TempDir dir;
  const std::string log_path = dir.path() + "/access.log";
  auto skiff = start_skiff(server.address(), "access_log: { path: \"" + log_path + "\" }\n");
  auto stub = TestService::NewStub(make_channel(skiff->address()));

  const std::string tp = traceparent(kTraceId, kClientSpan, true);
  const Metadata sent = {{"traceparent", tp},
                         {"tracestate", "congo=t61rcWkgMzE"},
                         {"b3", "463ac35c9f6413ad48485a3953bb6124-a2fb4a1d1a96d312-1"},
                         {"x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"},
                         {"x-b3-spanid", "e457b5a2e4d86bd1"},
                         {"x-b3-sampled", "1"},
                         {"x-request-id", "untouched-1"}};
  ASSERT_TRUE(is_ok(unary(*stub, "plain", sent)));
  auto md = seen_by_upstream(server, "plain");
  for (const auto& [k, v] : sent) EXPECT_EQ(one_value(md, k), v) << k;
  EXPECT_FALSE(has_key(md, "x-b3-parentspanid"));

  // No context at all: none is made up.
  ASSERT_TRUE(is_ok(unary(*stub, "bare", {})));
  auto bare = seen_by_upstream(server, "bare");
  for (const char* key : {"traceparent", "tracestate", "b3", "x-b3-traceid", "x-b3-spanid",
                          "x-b3-sampled", "x-request-id"}) {
    EXPECT_FALSE(has_key(bare, key)) << key;
  }

  // Access-log lines have no trace context; the request id is the caller's header, or "".
  stop_gracefully(*skiff);
  std::ifstream in(log_path);
  std::vector<json> lines;
  for (std::string line; std::getline(in, line);) {
    lines.push_back(json::parse(line, nullptr, /*allow_exceptions=*/false));
  }
  ASSERT_EQ(lines.size(), 2u);
  std::multiset<std::string> request_ids;
  for (const json& line : lines) {
    ASSERT_TRUE(line.is_object());
    EXPECT_FALSE(line.contains("trace_id")) << line.dump();
    EXPECT_EQ(line.value("span_id", "?"), "") << line.dump();
    EXPECT_EQ(line.value("grpc_status", -1), 0) << line.dump();
    request_ids.insert(line.value("request_id", "?"));
  }
  EXPECT_EQ(request_ids, (std::multiset<std::string>{"", "untouched-1"}));
}

}  // namespace
}  // namespace skiff::it
