// Observability through the real binary: the admin HTTP endpoints (/healthz, /ready, /config,
// /clusters, POST /drain), exact call counts in /metrics, bounded label cardinality under random
// :paths, and a real Prometheus (/usr/bin/prometheus) scraping skiff and answering PromQL with
// the exact counts.
#include <arpa/inet.h>
#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <sstream>
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
using Clock = std::chrono::steady_clock;

constexpr Millis kCallDeadline(20'000);
constexpr Millis kObserveTimeout(10'000);  // "it eventually happens" on a loaded machine
constexpr const char* kService = "skiff.testing.TestService";
constexpr const char* kPrometheusBinary = "/usr/bin/prometheus";

std::string url_escape(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

// Polls |fn| every 200 ms until it returns true or |timeout| passes; returns the last result.
bool poll_until(const std::function<bool()>& fn, Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    if (fn()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(Millis(200));
  }
}

// ---------------------------------------------------------------------------------------------
// The Prometheus text format (0.0.4): `name{label="value",...} value` lines.

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// Parses every sample line; comment (# HELP / # TYPE) and blank lines are skipped. A line that
// does not parse is a test failure.
std::vector<Sample> parse_metrics(const std::string& text) {
  std::vector<Sample> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    const std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.empty() || line[0] == '#') continue;
    Sample s;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') s.name += line[i++];
    bool ok = !s.name.empty();
    if (ok && i < line.size() && line[i] == '{') {
      ++i;
      while (ok && i < line.size() && line[i] != '}') {
        std::string key;
        while (i < line.size() && line[i] != '=') key += line[i++];
        if (i + 1 >= line.size() || line[i + 1] != '"') {
          ok = false;
          break;
        }
        i += 2;  // ="
        std::string value;
        while (i < line.size() && line[i] != '"') {
          if (line[i] == '\\' && i + 1 < line.size()) {
            ++i;
            value += line[i] == 'n' ? '\n' : line[i];
          } else {
            value += line[i];
          }
          ++i;
        }
        if (i >= line.size()) {
          ok = false;
          break;
        }
        ++i;  // closing quote
        s.labels[key] = value;
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (i >= line.size()) ok = false;
      ++i;  // }
    }
    if (ok) {
      while (i < line.size() && line[i] == ' ') ++i;
      const std::string value = line.substr(i, line.find(' ', i) - i);  // no timestamps expected
      char* end = nullptr;
      s.value = std::strtod(value.c_str(), &end);
      ok = !value.empty() && end == value.c_str() + value.size();
    }
    if (!ok) {
      ADD_FAILURE() << "unparsable /metrics line: " << line;
      continue;
    }
    out.push_back(std::move(s));
  }
  return out;
}

class Scrape {
 public:
  explicit Scrape(const std::string& text) : text_(text), samples_(parse_metrics(text)) {}

  const std::vector<Sample>& samples() const { return samples_; }
  const std::string& text() const { return text_; }

  // Samples named |name| whose labels include every one of |labels|.
  std::vector<Sample> all(const std::string& name,
                          const std::map<std::string, std::string>& labels = {}) const {
    std::vector<Sample> out;
    for (const Sample& s : samples_) {
      if (s.name != name) continue;
      bool match = true;
      for (const auto& [k, v] : labels) {
        auto it = s.labels.find(k);
        if (it == s.labels.end() || it->second != v) match = false;
      }
      if (match) out.push_back(s);
    }
    return out;
  }
  // The one matching sample's value; nullopt when none matches. Two matches are a failure.
  std::optional<double> value(const std::string& name,
                              const std::map<std::string, std::string>& labels = {}) const {
    auto found = all(name, labels);
    if (found.size() > 1) {
      ADD_FAILURE() << found.size() << " samples of " << name << " match " << describe(labels);
    }
    if (found.empty()) return std::nullopt;
    return found.front().value;
  }
  double sum(const std::string& name, const std::map<std::string, std::string>& labels = {}) const {
    double total = 0;
    for (const Sample& s : all(name, labels)) total += s.value;
    return total;
  }

  static std::string describe(const std::map<std::string, std::string>& labels) {
    std::string out = "{";
    for (const auto& [k, v] : labels) out += (out.size() > 1 ? "," : "") + k + "=\"" + v + "\"";
    return out + "}";
  }

 private:
  std::string text_;
  std::vector<Sample> samples_;
};

// ---------------------------------------------------------------------------------------------
// skiff with an admin listener.

std::string admin_yaml(SkiffConfig cfg, const TestServer& server) {
  if (!cfg.has_cluster("backend")) cfg.cluster("backend", {server.address()});
  return cfg.yaml() + "admin:\n  address: 127.0.0.1:0\n";
}

SkiffOptions admin_options() {
  SkiffOptions options;
  options.listeners = {"outbound", "admin"};
  return options;
}

std::string admin_url(const SkiffProcess& skiff, const std::string& path) {
  return "http://" + skiff.address("admin") + path;
}

Scrape scrape(const SkiffProcess& skiff) {
  HttpResponse r = http_get(admin_url(skiff, "/metrics"));
  EXPECT_EQ(r.status, 200) << r;
  return Scrape(r.body);
}

// Scrapes until the calls skiff has finished (skiff_calls_total summed over every series) reach
// |calls| and no upstream stream is open: a call's counters are updated as it ends, which may be
// just after the client saw its status.
Scrape scrape_after_calls(const SkiffProcess& skiff, double calls) {
  std::optional<Scrape> last;
  poll_until(
      [&] {
        last.emplace(scrape(skiff));
        return last->sum("skiff_calls_total") >= calls &&
               last->sum("skiff_call_duration_seconds_count") >= calls &&
               last->sum("skiff_upstream_active_streams") == 0;
      },
      kObserveTimeout);
  return *last;
}

grpc::Status unary(skiff::testing::TestService::Stub& stub, const Request& req) {
  return unary_call(stub, req, kCallDeadline);
}

grpc::Status ping(skiff::testing::OtherService::Stub& stub) {
  grpc::ClientContext ctx;
  ctx.set_deadline(in(kCallDeadline));
  Response resp;
  return stub.Ping(&ctx, Request(), &resp);
}

// A ServerStream call reading every response; returns the status and the number of responses.
std::pair<grpc::Status, int> server_stream(skiff::testing::TestService::Stub& stub,
                                           const Request& req) {
  grpc::ClientContext ctx;
  ctx.set_deadline(in(kCallDeadline));
  auto reader = stub.ServerStream(&ctx, req);
  Response resp;
  int n = 0;
  while (reader->Read(&resp)) ++n;
  return {reader->Finish(), n};
}

Request failing_with(StatusCode code) {
  Request req;
  req.set_respond_status(static_cast<int>(code));
  req.set_respond_message("injected");
  return req;
}

// The call mix of the exact-count tests, over a config with a method route (TestService/Unary),
// a service route (TestService, so ServerStream counts as method "_other") and a catch-all
// (OtherService/Ping counts as service "_other", method "_other").
SkiffConfig three_routes() {
  SkiffConfig cfg;
  cfg.route({.service = kService, .method = "Unary"});
  cfg.route({.service = kService});
  cfg.route({});
  return cfg;
}

// ---------------------------------------------------------------------------------------------

TEST(Observability, AdminEndpoints) {
  TestServer server;
  SkiffConfig cfg = three_routes();
  cfg.drain_timeout = "30s";  // the in-flight call below must finish, not be cut
  SkiffProcess skiff(admin_yaml(cfg, server), admin_options());

  HttpResponse healthz = http_get(admin_url(skiff, "/healthz"));
  EXPECT_EQ(healthz.status, 200) << healthz;

  // Ready once every worker is listening (the admin line may be logged a moment before).
  HttpResponse ready;
  EXPECT_TRUE(poll_until(
      [&] {
        ready = http_get(admin_url(skiff, "/ready"));
        return ready.status == 200;
      },
      kObserveTimeout))
      << ready;
  EXPECT_EQ(ready.body, "ready\n");

  // /config: the effective config, keys as in YAML.
  HttpResponse config = http_get(admin_url(skiff, "/config"));
  ASSERT_EQ(config.status, 200) << config;
  EXPECT_NE(config.content_type.find("application/json"), std::string::npos) << config;
  json cj = json::parse(config.body, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(cj.is_discarded()) << "not JSON: " << config.body;
  ASSERT_TRUE(cj["listeners"].is_array()) << cj.dump(2);
  ASSERT_EQ(cj["listeners"].size(), 1u) << cj.dump(2);
  EXPECT_EQ(cj["listeners"][0]["name"], "outbound") << cj.dump(2);
  EXPECT_EQ(cj["listeners"][0]["routes"].size(), 3u) << cj.dump(2);
  EXPECT_EQ(cj["listeners"][0]["routes"][0]["match"],
            (json{{"service", kService}, {"method", "Unary"}}))
      << cj.dump(2);
  EXPECT_EQ(cj["listeners"][0]["routes"][2]["match"], json::object()) << cj.dump(2);
  ASSERT_TRUE(cj["clusters"].is_array()) << cj.dump(2);
  ASSERT_EQ(cj["clusters"].size(), 1u) << cj.dump(2);
  EXPECT_EQ(cj["clusters"][0]["name"], "backend") << cj.dump(2);
  EXPECT_EQ(cj["clusters"][0]["endpoints"], json::array({server.address()})) << cj.dump(2);
  EXPECT_FALSE(cj["clusters"][0].contains("tls")) << "a TLS-free cluster shows no tls block";
  EXPECT_FALSE(cj["listeners"][0].contains("tls")) << "a TLS-free listener shows no tls block";
  EXPECT_TRUE(cj["drain_timeout"] == "30s" || cj["drain_timeout"] == "30000ms") << cj.dump(2);
  EXPECT_EQ(cj["workers"], 2) << cj.dump(2);
  EXPECT_TRUE(cj["admin"]["address"].get<std::string>().starts_with("127.0.0.1:")) << cj.dump(2);

  // /clusters: the endpoint's requests_total is the number of calls forwarded to it.
  constexpr int kCalls = 6;
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  for (int i = 0; i < kCalls; ++i) ASSERT_TRUE(is_ok(unary(*stub, Request())));
  json clusters;
  const std::string endpoint_path = "/clusters/0/endpoints/0";
  poll_until(
      [&] {
        HttpResponse r = http_get(admin_url(skiff, "/clusters"));
        EXPECT_EQ(r.status, 200) << r;
        clusters = json::parse(r.body, nullptr, false);
        if (clusters.is_discarded() || !clusters.contains(json::json_pointer(endpoint_path)))
          return false;
        const json& e = clusters[json::json_pointer(endpoint_path)];
        return e.value("requests_total", -1.0) >= kCalls && e.value("active_requests", -1.0) == 0;
      },
      kObserveTimeout);
  ASSERT_FALSE(clusters.is_discarded());
  ASSERT_TRUE(clusters["clusters"].is_array()) << clusters.dump(2);
  ASSERT_EQ(clusters["clusters"].size(), 1u) << clusters.dump(2);
  const json& cluster = clusters["clusters"][0];
  EXPECT_EQ(cluster["name"], "backend");
  EXPECT_EQ(cluster["tls"], false);
  EXPECT_EQ(cluster["outlier_detection"], false);
  ASSERT_EQ(cluster["endpoints"].size(), 1u) << clusters.dump(2);
  const json& endpoint = cluster["endpoints"][0];
  EXPECT_EQ(endpoint["name"], server.address());
  EXPECT_EQ(endpoint["address"], server.address());
  EXPECT_EQ(endpoint["requests_total"], kCalls) << clusters.dump(2);
  EXPECT_EQ(endpoint["active_requests"], 0) << clusters.dump(2);
  EXPECT_GE(endpoint["connections"].get<double>(), 1) << clusters.dump(2);
  EXPECT_EQ(endpoint["connect_failures"], 0) << clusters.dump(2);
  EXPECT_EQ(endpoint["ejected"], false);
  EXPECT_EQ(endpoint["health"], "healthy");
  EXPECT_EQ(clusters["circuit_breakers"], json::array()) << "no route has a breaker";
  EXPECT_EQ(server.calls("Unary"), kCalls);

  // Unknown paths and wrong methods.
  HttpResponse unknown = http_get(admin_url(skiff, "/no/such/endpoint"));
  EXPECT_EQ(unknown.status, 404) << unknown;
  HttpResponse get_drain = http_get(admin_url(skiff, "/drain"));
  EXPECT_EQ(get_drain.status, 405) << get_drain;
  HttpResponse post_metrics = http_post(admin_url(skiff, "/metrics"));
  EXPECT_EQ(post_metrics.status, 405) << post_metrics;
  // Neither the 404 nor the GET /drain started a drain.
  HttpResponse still_ready = http_get(admin_url(skiff, "/ready"));
  EXPECT_EQ(still_ready.status, 200) << still_ready;

  // POST /drain with a long call in flight: 202, /ready turns 503 "draining" while the call is
  // still running, the call completes OK and skiff exits 0.
  constexpr int kDelayMs = 4000;
  std::atomic<bool> call_done{false};
  grpc::Status long_status;
  std::thread long_call([&] {
    Request req;
    req.set_delay_ms(kDelayMs);
    req.set_payload("in flight during drain");
    grpc::ClientContext ctx;
    ctx.set_deadline(in(Millis(60'000)));
    Response resp;
    long_status = stub->Unary(&ctx, req, &resp);
    if (long_status.ok() && resp.payload() != req.payload()) {
      long_status = grpc::Status(StatusCode::DATA_LOSS, "wrong payload: " + resp.payload());
    }
    call_done.store(true);
  });
  const bool reached_upstream = server.wait_for_calls(kCalls + 1, Millis(20'000));
  const auto drain_sent = Clock::now();
  HttpResponse drain = http_post(admin_url(skiff, "/drain"));
  HttpResponse draining = http_get(admin_url(skiff, "/ready"));
  const bool in_flight_at_503 = !call_done.load();
  HttpResponse healthz_draining = http_get(admin_url(skiff, "/healthz"));
  std::optional<double> draining_gauge = scrape(skiff).value("skiff_draining");
  // The kubelet's SIGTERM after a preStop hook's POST /drain: the same drain goes on (only a
  // second signal closes at once), so the call in flight still completes.
  ::kill(skiff.pid(), SIGTERM);
  const bool signal_logged = skiff.process().wait_for_stderr(
      [](const std::string& err) { return err.find("already draining") != std::string::npos; },
      Millis(10'000));
  long_call.join();
  std::optional<ExitStatus> exit = skiff.process().wait_exit(Millis(30'000));
  const auto exited_after = std::chrono::duration<double>(Clock::now() - drain_sent);
  std::cout << "[ info ] skiff exited " << exited_after.count() << " s after POST /drain ("
            << (exit ? exit->to_string() : std::string("still running")) << ")" << std::endl;

  ASSERT_TRUE(reached_upstream) << "the long call never reached the upstream";
  EXPECT_EQ(drain.status, 202) << drain;
  EXPECT_EQ(draining.status, 503) << draining;
  EXPECT_EQ(draining.body, "draining\n") << draining;
  EXPECT_TRUE(in_flight_at_503) << "the " << kDelayMs
                                << " ms call ended before /ready was read: nothing was in flight";
  EXPECT_EQ(healthz_draining.status, 200) << "alive while draining: " << healthz_draining;
  EXPECT_EQ(draining_gauge, 1.0) << "skiff_draining while draining";
  EXPECT_TRUE(is_ok(long_status)) << "the call in flight when the drain started";
  EXPECT_TRUE(signal_logged) << skiff.process().err();
  ASSERT_TRUE(exit.has_value()) << "skiff still running 30 s after POST /drain";
  EXPECT_TRUE(exit->exited()) << exit->to_string();
  EXPECT_EQ(exit->code(), 0) << exit->to_string();
  EXPECT_GE(exited_after.count(), 0.0);
}

TEST(Observability, AdminAddressInUse_Exit1BeforeServing) {
  ClosedPort taken;  // bound, not listening: binding it again fails
  TempDir dir;
  const std::string path = dir.write("skiff.yaml", "admin: { address: " + taken.address() +
                                                       " }\n"
                                                       "listeners:\n"
                                                       "  - name: outbound\n"
                                                       "    address: 127.0.0.1:0\n"
                                                       "    routes:\n"
                                                       "      - match: {}\n"
                                                       "        cluster: backend\n"
                                                       "clusters:\n"
                                                       "  - name: backend\n"
                                                       "    endpoints: [ \"127.0.0.1:1\" ]\n");
  RunResult r = run_skiff({"--config", path});
  EXPECT_EQ(r.status.code(), 1) << r.status.to_string();
  EXPECT_NE(r.err.find(path + ":1:19: admin: cannot listen on " + taken.address()),
            std::string::npos)
      << r.err;
  // Nothing served: the listeners never announced themselves.
  EXPECT_EQ(r.err.find("listening on"), std::string::npos) << r.err;
}

// An IPv6 endpoint is named as written, brackets included, in /clusters (and so in metrics
// labels) and /config: "::1:1" would read as a host and port of its own.
TEST(Observability, Ipv6EndpointIsNamedAsWritten) {
  TestServer server;
  SkiffConfig cfg = three_routes();
  cfg.cluster("backend", {"[::1]:1"});
  SkiffProcess skiff(admin_yaml(cfg, server), admin_options());
  HttpResponse clusters = http_get(admin_url(skiff, "/clusters"));
  ASSERT_EQ(clusters.status, 200) << clusters;
  const json cj = json::parse(clusters.body, nullptr, /*allow_exceptions=*/false);
  const json::json_pointer endpoint("/clusters/0/endpoints/0");
  ASSERT_TRUE(cj.contains(endpoint)) << clusters.body;
  EXPECT_EQ(cj[endpoint]["name"], "[::1]:1") << clusters.body;
  EXPECT_EQ(cj[endpoint]["address"], "[::1]:1") << clusters.body;
  HttpResponse config = http_get(admin_url(skiff, "/config"));
  ASSERT_EQ(config.status, 200) << config;
  EXPECT_EQ(json::parse(config.body)["clusters"][0]["endpoints"], json::array({"[::1]:1"}))
      << config.body;
}

// A TCP connection to 127.0.0.1:|port| that sends nothing: it holds one of civetweb's admin
// threads until the admin server's request timeout drops it.
class SilentConnection {
 public:
  explicit SilentConnection(int port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    connected_ = fd_ >= 0 && ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~SilentConnection() {
    if (fd_ >= 0) ::close(fd_);
  }
  SilentConnection(const SilentConnection&) = delete;
  SilentConnection& operator=(const SilentConnection&) = delete;

  bool connected() const { return connected_; }
  // Not yet closed by the server: nothing to read, and no EOF.
  bool still_open() const {
    char byte;
    return ::recv(fd_, &byte, 1, MSG_DONTWAIT) < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

 private:
  int fd_;
  bool connected_ = false;
};

// Clients that connect and send nothing (a scanner, a half-open load balancer check) must not
// keep a kubelet probe, whose timeout is 1 s, waiting for a free thread. The probe is answered
// while every one of them is still held open, i.e. before any had to time out.
TEST(Observability, ProbesAreAnsweredWhileSilentConnectionsHoldAdminThreads) {
  TestServer server;
  SkiffProcess skiff(admin_yaml(three_routes(), server), admin_options());
  std::vector<std::unique_ptr<SilentConnection>> silent;
  for (int i = 0; i < 7; ++i) {
    silent.push_back(std::make_unique<SilentConnection>(skiff.port("admin")));
    ASSERT_TRUE(silent.back()->connected());
  }
  for (const char* path : {"/healthz", "/ready", "/metrics"}) {
    HttpResponse r = http_get(admin_url(skiff, path));
    EXPECT_EQ(r.status, 200) << path << ": " << r;
  }
  for (size_t i = 0; i < silent.size(); ++i) {
    EXPECT_TRUE(silent[i]->still_open()) << "silent connection " << i << " was dropped first";
  }
}

TEST(Observability, MetricsExactCounts) {
  TestServer server;
  SkiffProcess skiff(admin_yaml(three_routes(), server), admin_options());
  auto channel = make_channel(skiff.address());
  auto stub = skiff::testing::TestService::NewStub(channel);
  auto other = skiff::testing::OtherService::NewStub(channel);

  constexpr int kUnaryOk = 7;
  constexpr int kUnaryNotFound = 3;
  constexpr int kStreams = 4;  // ServerStream: service route, method "_other"
  constexpr int kStreamResponses = 3;
  constexpr int kPings = 5;  // OtherService/Ping: catch-all, service and method "_other"
  constexpr int kTotal = kUnaryOk + kUnaryNotFound + kStreams + kPings;

  for (int i = 0; i < kUnaryOk; ++i) ASSERT_TRUE(is_ok(unary(*stub, Request())));
  for (int i = 0; i < kUnaryNotFound; ++i) {
    ASSERT_TRUE(has_code(unary(*stub, failing_with(StatusCode::NOT_FOUND)), StatusCode::NOT_FOUND));
  }
  Request streaming;
  streaming.set_response_count(kStreamResponses);
  for (int i = 0; i < kStreams; ++i) {
    auto [status, n] = server_stream(*stub, streaming);
    ASSERT_TRUE(is_ok(status));
    ASSERT_EQ(n, kStreamResponses);
  }
  for (int i = 0; i < kPings; ++i) ASSERT_TRUE(is_ok(ping(*other)));

  HttpResponse raw = http_get(admin_url(skiff, "/metrics"));
  ASSERT_EQ(raw.status, 200) << raw;
  EXPECT_NE(raw.content_type.find("text/plain"), std::string::npos) << raw.content_type;
  EXPECT_NE(raw.content_type.find("version=0.0.4"), std::string::npos) << raw.content_type;

  const Scrape m = scrape_after_calls(skiff, kTotal);
  const std::map<std::string, std::string> unary_labels = {
      {"listener", "outbound"}, {"service", kService}, {"method", "Unary"}};
  const std::map<std::string, std::string> stream_labels = {
      {"listener", "outbound"}, {"service", kService}, {"method", "_other"}};
  const std::map<std::string, std::string> other_labels = {
      {"listener", "outbound"}, {"service", "_other"}, {"method", "_other"}};
  auto with = [](std::map<std::string, std::string> labels, const std::string& k,
                 const std::string& v) {
    labels[k] = v;
    return labels;
  };

  // Started, and finished by code: exactly the calls made, and no other code.
  EXPECT_EQ(m.value("skiff_calls_started_total", unary_labels), kUnaryOk + kUnaryNotFound);
  EXPECT_EQ(m.value("skiff_calls_total", with(unary_labels, "code", "OK")), kUnaryOk);
  EXPECT_EQ(m.value("skiff_calls_total", with(unary_labels, "code", "NOT_FOUND")), kUnaryNotFound);
  EXPECT_EQ(m.all("skiff_calls_total", unary_labels).size(), 2u) << "codes that never happened";
  EXPECT_EQ(m.value("skiff_calls_started_total", stream_labels), kStreams);
  EXPECT_EQ(m.value("skiff_calls_total", with(stream_labels, "code", "OK")), kStreams);
  EXPECT_EQ(m.all("skiff_calls_total", stream_labels).size(), 1u);
  EXPECT_EQ(m.value("skiff_calls_started_total", other_labels), kPings);
  EXPECT_EQ(m.value("skiff_calls_total", with(other_labels, "code", "OK")), kPings);
  EXPECT_EQ(m.all("skiff_calls_total", other_labels).size(), 1u);
  EXPECT_EQ(m.sum("skiff_calls_started_total"), kTotal);
  EXPECT_EQ(m.sum("skiff_calls_total"), kTotal);
  // Exactly the three series the routes name: no per-:path series.
  EXPECT_EQ(m.all("skiff_calls_started_total").size(), 3u) << m.text();

  // The latency histogram: _count = calls, +Inf bucket = _count, buckets cumulative, 18 finite
  // bounds (100 µs .. 30 s) plus +Inf, and a positive _sum.
  for (const auto& [labels, calls] :
       std::vector<std::pair<std::map<std::string, std::string>, int>>{
           {unary_labels, kUnaryOk + kUnaryNotFound},
           {stream_labels, kStreams},
           {other_labels, kPings}}) {
    SCOPED_TRACE(Scrape::describe(labels));
    const auto count = m.value("skiff_call_duration_seconds_count", labels);
    EXPECT_EQ(count, calls);
    EXPECT_EQ(m.value("skiff_call_duration_seconds_bucket", with(labels, "le", "+Inf")), count);
    const auto sum = m.value("skiff_call_duration_seconds_sum", labels);
    ASSERT_TRUE(sum.has_value());
    EXPECT_GT(*sum, 0);
    EXPECT_LT(*sum, calls * 10.0) << "seconds, not nanoseconds";
    auto buckets = m.all("skiff_call_duration_seconds_bucket", labels);
    EXPECT_EQ(buckets.size(), 19u);
    double previous = 0;
    for (const Sample& b : buckets) {
      EXPECT_GE(b.value, previous) << "le=" << b.labels.at("le") << " is not cumulative";
      previous = b.value;
    }
    EXPECT_EQ(m.value("skiff_call_duration_seconds_bucket", with(labels, "le", "30")), count)
        << "no call took 30 s";
  }

  // Per-series message counters: one request message per call; responses as sent.
  EXPECT_EQ(m.value("skiff_request_messages_total", unary_labels), kUnaryOk + kUnaryNotFound);
  EXPECT_EQ(m.value("skiff_response_messages_total", unary_labels), kUnaryOk);
  EXPECT_EQ(m.value("skiff_request_messages_total", stream_labels), kStreams);
  EXPECT_EQ(m.value("skiff_response_messages_total", stream_labels), kStreams * kStreamResponses);
  EXPECT_EQ(m.value("skiff_request_messages_total", other_labels), kPings);
  EXPECT_EQ(m.value("skiff_response_messages_total", other_labels), kPings);
  EXPECT_EQ(m.sum("skiff_retries_total"), 0);
  EXPECT_EQ(m.sum("skiff_rate_limited_total"), 0);
  EXPECT_GT(m.value("skiff_response_bytes_total", unary_labels).value_or(0), 0);

  // Upstream and downstream connection statistics.
  const std::map<std::string, std::string> endpoint = {{"cluster", "backend"},
                                                       {"endpoint", server.address()}};
  EXPECT_EQ(m.value("skiff_upstream_streams_total", endpoint), kTotal);
  EXPECT_EQ(m.value("skiff_upstream_active_streams", endpoint), 0);
  EXPECT_GE(m.value("skiff_upstream_connections", endpoint).value_or(0), 1);
  EXPECT_EQ(m.value("skiff_upstream_connect_failures_total", endpoint), 0);
  EXPECT_GE(m.value("skiff_downstream_connections", {{"listener", "outbound"}}).value_or(0), 1);
  EXPECT_GE(m.value("skiff_downstream_connections_total", {{"listener", "outbound"}}).value_or(0),
            1);
  EXPECT_EQ(server.calls(), kTotal);

  // Process-level gauges.
  auto build = m.all("skiff_build_info");
  ASSERT_EQ(build.size(), 1u) << m.text();
  EXPECT_EQ(build[0].value, 1);
  EXPECT_FALSE(build[0].labels["version"].empty());
  EXPECT_EQ(m.value("skiff_draining"), 0);
  EXPECT_TRUE(m.all("skiff_circuit_breaker_state").empty()) << "no route has a breaker";

  // A scrape is not a call: scraping again changes no call count.
  const Scrape again = scrape(skiff);
  EXPECT_EQ(again.sum("skiff_calls_started_total"), kTotal);
  EXPECT_EQ(again.sum("skiff_calls_total"), kTotal);
}

// Hedged copies are counted per series: a first copy answering UNAVAILABLE (non-fatal) sends
// exactly one more.
TEST(Observability, HedgesCounted) {
  TestServer server;
  const std::string yaml =
      "workers: 1\n"
      "listeners:\n"
      "  - name: outbound\n"
      "    address: 127.0.0.1:0\n"
      "    routes:\n"
      "      - match: {}\n"
      "        cluster: backend\n"
      "        hedging: { max_attempts: 2, hedging_delay: 60s, non_fatal_codes: [unavailable] }\n"
      "clusters:\n"
      "  - name: backend\n"
      "    endpoints: [ \"" +
      server.address() +
      "\" ]\n"
      "admin:\n"
      "  address: 127.0.0.1:0\n";
  SkiffProcess skiff(yaml, admin_options());
  auto stub = skiff::testing::TestService::NewStub(make_channel(skiff.address()));
  constexpr int kCalls = 3;
  Request req = failing_with(StatusCode::UNAVAILABLE);
  req.set_fail_attempts(1);
  for (int i = 0; i < kCalls; ++i) ASSERT_TRUE(is_ok(unary(*stub, req)));
  const Scrape m = scrape_after_calls(skiff, kCalls);
  const std::map<std::string, std::string> labels = {
      {"listener", "outbound"}, {"service", "_other"}, {"method", "_other"}};
  EXPECT_EQ(m.value("skiff_hedges_total", labels), kCalls) << m.text();
  EXPECT_EQ(m.sum("skiff_retries_total"), 0);
  EXPECT_EQ(server.calls("Unary"), 2 * kCalls);
}

// Random :paths must not create series: everything no route names is "_other".
TEST(Observability, CardinalityBoundedUnderRandomMethods) {
  TestServer server;
  SkiffConfig cfg;
  cfg.route({.service = kService, .method = "Unary"});
  cfg.route({});  // catch-all: unknown methods are forwarded (the upstream says UNIMPLEMENTED)
  SkiffProcess skiff(admin_yaml(cfg, server), admin_options());
  auto channel = make_channel(skiff.address());

  // One OK call on the named route, so its series are complete before the baseline.
  auto stub = skiff::testing::TestService::NewStub(channel);
  ASSERT_TRUE(is_ok(unary(*stub, Request())));
  const Scrape baseline = scrape_after_calls(skiff, 1);
  const size_t series_baseline = baseline.samples().size();

  // Calls to |n| distinct random methods (half on random services, half on TestService), 64 at
  // a time over one connection, through grpc++'s generic stub.
  std::mt19937_64 rng(std::random_device{}());
  std::set<std::string> paths_used;
  int total_calls = 0;
  auto call_random_methods = [&](int n) {
    grpc::GenericStub generic(channel);
    const std::string request_bytes = Request().SerializeAsString();
    grpc::CompletionQueue cq;
    constexpr int kBatch = 64;
    int done = 0;
    std::map<StatusCode, int> codes;
    while (done < n) {
      const int batch = std::min(kBatch, n - done);
      struct Call {
        grpc::ClientContext ctx;
        grpc::ByteBuffer response;
        grpc::Status status;
        std::unique_ptr<grpc::GenericClientAsyncResponseReader> reader;
      };
      std::vector<std::unique_ptr<Call>> calls;
      for (int i = 0; i < batch; ++i) {
        std::string path;
        do {
          const uint64_t r = rng();
          path = (i % 2 == 0)
                     ? "/rnd" + std::to_string(r % 1'000'000) + ".Svc" + std::to_string(r >> 40) +
                           "/M" + std::to_string((r >> 20) & 0xfff)
                     : std::string("/") + kService + "/Rnd" + std::to_string(r);
        } while (!paths_used.insert(path).second);
        auto c = std::make_unique<Call>();
        c->ctx.set_deadline(in(kCallDeadline));
        grpc::Slice slice(request_bytes);
        grpc::ByteBuffer request(&slice, 1);
        c->reader = generic.PrepareUnaryCall(&c->ctx, path, request, &cq);
        c->reader->StartCall();
        c->reader->Finish(&c->response, &c->status, c.get());
        calls.push_back(std::move(c));
      }
      for (int i = 0; i < batch; ++i) {
        void* tag = nullptr;
        bool ok = false;
        if (!cq.Next(&tag, &ok)) break;
        codes[static_cast<Call*>(tag)->status.error_code()]++;
      }
      done += batch;
      total_calls += batch;
    }
    cq.Shutdown();
    void* tag = nullptr;
    bool ok = false;
    while (cq.Next(&tag, &ok)) {
    }
    return codes;
  };

  const auto start = Clock::now();
  auto codes_500 = call_random_methods(500);
  const Scrape after_500 = scrape_after_calls(skiff, 1 + 500);
  auto codes_2000 = call_random_methods(1500);
  const Scrape after_2000 = scrape_after_calls(skiff, 1 + 2000);
  std::cout << "[ info ] " << total_calls << " calls to distinct random methods in "
            << std::chrono::duration<double>(Clock::now() - start).count() << " s; series "
            << series_baseline << " -> " << after_500.samples().size() << " (500 methods) -> "
            << after_2000.samples().size() << " (2000 methods)" << std::endl;

  EXPECT_EQ(codes_500, (std::map<StatusCode, int>{{StatusCode::UNIMPLEMENTED, 500}}));
  EXPECT_EQ(codes_2000, (std::map<StatusCode, int>{{StatusCode::UNIMPLEMENTED, 1500}}));
  EXPECT_EQ(server.calls(), 1) << "only the Unary call reaches a handler";

  // Bounded: the "_other" series gained at most a few code series; and independent of the
  // number of distinct methods: 500 and 2000 distinct methods give the same series.
  EXPECT_LE(after_500.samples().size(), series_baseline + 20);
  EXPECT_EQ(after_2000.samples().size(), after_500.samples().size());
  std::set<std::string> names_500, names_2000;
  for (const Sample& s : after_500.samples()) names_500.insert(s.name + Scrape::describe(s.labels));
  for (const Sample& s : after_2000.samples()) {
    names_2000.insert(s.name + Scrape::describe(s.labels));
  }
  EXPECT_EQ(names_500, names_2000);
  EXPECT_EQ(after_2000.text().find("rnd"), std::string::npos) << "a random :path became a label";
  EXPECT_EQ(after_2000.text().find("Rnd"), std::string::npos) << "a random :path became a label";

  const std::map<std::string, std::string> other = {
      {"listener", "outbound"}, {"service", "_other"}, {"method", "_other"}};
  auto other_with_code = other;
  other_with_code["code"] = "UNIMPLEMENTED";
  EXPECT_EQ(after_2000.value("skiff_calls_started_total", other), 2000);
  EXPECT_EQ(after_2000.value("skiff_calls_total", other_with_code), 2000);
  EXPECT_EQ(after_2000.value("skiff_call_duration_seconds_count", other), 2000);
  EXPECT_EQ(after_2000.all("skiff_calls_started_total").size(), 2u)
      << "one series per route (Unary, _other)";
  EXPECT_EQ(
      after_2000.value("skiff_calls_started_total",
                       {{"listener", "outbound"}, {"service", kService}, {"method", "Unary"}}),
      1);
}

// ---------------------------------------------------------------------------------------------
// A real Prometheus scraping skiff.

// A loopback port that was free a moment ago (bound to port 0, then closed).
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("free_port: cannot bind");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

class Prometheus {
 public:
  // Starts Prometheus scraping |target| every second and waits (up to 60 s) for /-/ready. A
  // port taken between free_port() and Prometheus's bind is retried with another port.
  Prometheus(const TempDir& dir, const std::string& target) {
    const std::string config = dir.write("prometheus.yml",
                                         "global:\n"
                                         "  scrape_interval: 1s\n"
                                         "  scrape_timeout: 1s\n"
                                         "scrape_configs:\n"
                                         "  - job_name: skiff\n"
                                         "    scrape_interval: 1s\n"
                                         "    scrape_timeout: 1s\n"
                                         "    static_configs:\n"
                                         "      - targets: [\"" +
                                             target + "\"]\n");
    for (int attempt = 0; attempt < 3; ++attempt) {
      const std::string data = dir.path() + "/tsdb" + std::to_string(attempt);
      std::filesystem::create_directories(data);
      address_ = "127.0.0.1:" + std::to_string(free_port());
      process_ = std::make_unique<Subprocess>(
          "prometheus", std::vector<std::string>{
                            kPrometheusBinary, "--config.file=" + config,
                            "--storage.tsdb.path=" + data, "--web.listen-address=" + address_,
                            "--log.level=warn", "--storage.tsdb.retention.time=1h"});
      process_->set_diagnostics("---- " + config + " ----\nPrometheus on " + address_);
      bool exited = false;
      HttpResponse ready;
      const bool up = poll_until(
          [&] {
            if (!process_->running() || process_->wait_exit(Millis(0))) {
              exited = true;
              return true;
            }
            ready = http_request("GET", url("/-/ready"), Millis(2'000));
            return ready.status == 200;
          },
          Millis(60'000));
      if (up && !exited) return;
      const std::string err = process_->err();
      if (exited && err.find("address already in use") != std::string::npos) {
        std::cout << "[ info ] Prometheus port " << address_ << " was taken; retrying" << std::endl;
        continue;
      }
      ADD_FAILURE() << "Prometheus did not become ready on " << address_ << " within 60 s ("
                    << (exited ? "it exited" : "last /-/ready: " + ready.body) << "):\n"
                    << err << process_->out();
      throw std::runtime_error("Prometheus did not start");
    }
    ADD_FAILURE() << "Prometheus: no free port after 3 attempts";
    throw std::runtime_error("Prometheus did not start");
  }
  ~Prometheus() {
    if (process_) process_->kill();  // by PID; the TSDB directory goes with the TempDir
  }

  std::string url(const std::string& path) const { return "http://" + address_ + path; }

  // The result vector of an instant query, or a json null on an error (recorded in |error|).
  json query(const std::string& promql, std::string* error = nullptr) const {
    HttpResponse r = http_get(url("/api/v1/query?query=" + url_escape(promql)));
    json body = json::parse(r.body, nullptr, false);
    if (r.status != 200 || body.is_discarded() || body.value("status", "") != "success") {
      if (error != nullptr) {
        std::ostringstream os;
        os << promql << ": " << r;
        *error = os.str();
      }
      return nullptr;
    }
    return body["data"]["result"];
  }

 private:
  std::string address_;
  std::unique_ptr<Subprocess> process_;
};

// A query's vector as "label=value,label=value" (the labels |keys|, in that order) -> value.
std::map<std::string, double> by_labels(const json& result, const std::vector<std::string>& keys) {
  std::map<std::string, double> out;
  if (!result.is_array()) return out;
  for (const json& sample : result) {
    std::string key;
    for (const std::string& k : keys) {
      key += (key.empty() ? "" : ",") + k + "=" + sample["metric"].value(k, std::string("?"));
    }
    out[key] = std::stod(sample["value"][1].get<std::string>());
  }
  return out;
}

std::string show(const std::map<std::string, double>& m) {
  std::ostringstream os;
  for (const auto& [k, v] : m) os << "  " << k << " = " << v << "\n";
  return os.str();
}

TEST(Observability, PrometheusScrapesExactCounts) {
  ASSERT_TRUE(std::filesystem::exists(kPrometheusBinary))
      << kPrometheusBinary
      << " is missing: this test runs a real Prometheus. Run scripts/install-deps.sh "
         "(it installs Debian's prometheus package).";

  TestServer server;
  SkiffProcess skiff(admin_yaml(three_routes(), server), admin_options());
  TempDir dir;
  const auto prometheus_start = Clock::now();
  Prometheus prometheus(dir, skiff.address("admin"));
  std::cout << "[ info ] Prometheus ready after "
            << std::chrono::duration<double>(Clock::now() - prometheus_start).count() << " s"
            << std::endl;

  constexpr int kUnaryOk = 6;
  constexpr int kUnaryNotFound = 4;
  constexpr int kSlowStreams = 3;  // ServerStream with a 50 ms delay: method "_other"
  constexpr int kDelayMs = 50;
  constexpr int kPings = 5;  // catch-all: service and method "_other"
  auto channel = make_channel(skiff.address());
  auto stub = skiff::testing::TestService::NewStub(channel);
  auto other = skiff::testing::OtherService::NewStub(channel);
  for (int i = 0; i < kUnaryOk; ++i) ASSERT_TRUE(is_ok(unary(*stub, Request())));
  for (int i = 0; i < kUnaryNotFound; ++i) {
    ASSERT_TRUE(has_code(unary(*stub, failing_with(StatusCode::NOT_FOUND)), StatusCode::NOT_FOUND));
  }
  Request slow;
  slow.set_delay_ms(kDelayMs);
  for (int i = 0; i < kSlowStreams; ++i) ASSERT_TRUE(is_ok(server_stream(*stub, slow).first));
  for (int i = 0; i < kPings; ++i) ASSERT_TRUE(is_ok(ping(*other)));

  const std::string svc = std::string("service=") + kService;
  const std::map<std::string, double> want_calls = {
      {svc + ",method=Unary,code=OK", kUnaryOk},
      {svc + ",method=Unary,code=NOT_FOUND", kUnaryNotFound},
      {svc + ",method=_other,code=OK", kSlowStreams},
      {"service=_other,method=_other,code=OK", kPings},
  };
  const std::map<std::string, double> want_started = {
      {svc + ",method=Unary", kUnaryOk + kUnaryNotFound},
      {svc + ",method=_other", kSlowStreams},
      {"service=_other,method=_other", kPings},
  };

  // Poll Prometheus (every 200 ms, up to 30 s) until its latest scrape has every call.
  std::string error;
  std::map<std::string, double> calls;
  const auto poll_start = Clock::now();
  const bool converged = poll_until(
      [&] {
        calls =
            by_labels(prometheus.query("sum by (service, method, code) "
                                       "(skiff_calls_total{job=\"skiff\",listener=\"outbound\"})",
                                       &error),
                      {"service", "method", "code"});
        return calls == want_calls;
      },
      Millis(30'000));
  std::cout << "[ info ] Prometheus had the exact counts after "
            << std::chrono::duration<double>(Clock::now() - poll_start).count() << " s"
            << std::endl;
  ASSERT_TRUE(converged) << "skiff_calls_total in Prometheus after 30 s:\n"
                         << show(calls) << "expected:\n"
                         << show(want_calls) << error;
  EXPECT_EQ(calls, want_calls);

  // Everything below comes from the same (or a later) scrape: no more waiting is needed, but a
  // newer scrape with the same values may land in between, which is harmless.
  auto q = [&](const std::string& promql, const std::vector<std::string>& keys) {
    std::string err;
    json result = prometheus.query(promql, &err);
    EXPECT_FALSE(result.is_null()) << err;
    return by_labels(result, keys);
  };
  EXPECT_EQ(q("sum by (service, method) (skiff_calls_started_total{job=\"skiff\"})",
              {"service", "method"}),
            want_started);
  EXPECT_EQ(q("sum by (service, method) (skiff_call_duration_seconds_count{job=\"skiff\"})",
              {"service", "method"}),
            want_started);
  EXPECT_EQ(q("sum by (service, method) "
              "(skiff_call_duration_seconds_bucket{job=\"skiff\",le=\"+Inf\"})",
              {"service", "method"}),
            want_started);
  EXPECT_EQ(q("up{job=\"skiff\"}", {"job"}), (std::map<std::string, double>{{"job=skiff", 1}}));
  auto build = q("skiff_build_info", {"job"});
  EXPECT_EQ(build, (std::map<std::string, double>{{"job=skiff", 1}}));

  // Mean latency per method: fast calls well under a second, the delayed ones at least 50 ms.
  auto mean =
      q("sum by (service, method) (skiff_call_duration_seconds_sum{job=\"skiff\"}) / "
        "sum by (service, method) (skiff_call_duration_seconds_count{job=\"skiff\"})",
        {"service", "method"});
  ASSERT_EQ(mean.size(), 3u) << show(mean);
  const double unary_mean = mean[svc + ",method=Unary"];
  const double slow_mean = mean[svc + ",method=_other"];
  const double ping_mean = mean["service=_other,method=_other"];
  EXPECT_GT(unary_mean, 0) << show(mean);
  EXPECT_LT(unary_mean, 1.0) << show(mean);
  EXPECT_GE(slow_mean, kDelayMs / 1000.0) << show(mean);
  EXPECT_LT(slow_mean, 1.0 + kDelayMs / 1000.0) << show(mean);
  EXPECT_GT(ping_mean, 0) << show(mean);
  EXPECT_LT(ping_mean, 1.0) << show(mean);

  // The median of the delayed calls from their buckets: every one took at least 50 ms, so it
  // lies at or above the 0.05 bound, and far below a second.
  auto median =
      q("histogram_quantile(0.5, sum by (le) (skiff_call_duration_seconds_bucket{job="
        "\"skiff\",service=\"" +
            std::string(kService) + "\",method=\"_other\"}))",
        {});
  ASSERT_EQ(median.size(), 1u) << show(median);
  EXPECT_GE(median.begin()->second, kDelayMs / 1000.0) << show(median);
  EXPECT_LE(median.begin()->second, 1.0) << show(median);
}

}  // namespace
}  // namespace skiff::it
