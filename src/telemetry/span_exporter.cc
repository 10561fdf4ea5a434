// SpanExporter: Zipkin v2 JSON over HTTP POST with civetweb's HTTP client, from the
// BackgroundQueue's thread. (civetweb already serves the admin endpoints; libcurl would add two
// dozen shared libraries, about 4 MB of resident memory, to every sidecar.)
#include "telemetry/span_exporter.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>

#include "base/log.h"
#include "base/status_code_names.h"

namespace skiff::telemetry {

namespace {

using Json = nlohmann::ordered_json;

struct IpPort {
  std::string ip;
  bool v6 = false;
  uint16_t port = 0;  // 0: none given
};

// "10.0.0.7:8080", "[fd00::7]:8080" (a zone id, "%eth0", is dropped: Zipkin has no field for it).
// nullopt when the host part is not an IP literal or the port is not a number in 1..65535.
std::optional<IpPort> parse_ip_port(std::string_view address) {
  std::string_view host = address;
  std::string_view port;
  if (address.starts_with('[')) {
    size_t close = address.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = address.substr(1, close - 1);
    std::string_view rest = address.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return std::nullopt;
      port = rest.substr(1);
    }
  } else if (size_t colon = address.rfind(':');
             colon != std::string_view::npos && address.find(':') == colon) {
    host = address.substr(0, colon);  // exactly one ':': IPv4 (or a name) and a port
    port = address.substr(colon + 1);
  }
  host = host.substr(0, host.find('%'));

  IpPort out;
  out.ip = std::string(host);
  unsigned char buf[sizeof(in6_addr)];
  if (inet_pton(AF_INET, out.ip.c_str(), buf) == 1) {
    out.v6 = false;
  } else if (inet_pton(AF_INET6, out.ip.c_str(), buf) == 1) {
    out.v6 = true;
  } else {
    return std::nullopt;
  }
  if (!port.empty()) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535) {
      return std::nullopt;
    }
    out.port = static_cast<uint16_t>(value);
  }
  return out;
}

std::string status_tag(int code) {
  if (code >= 0 && static_cast<size_t>(code) < base::kStatusCodeNames.size()) {
    return std::string(base::status_code_name(static_cast<uint32_t>(code)));
  }
  return std::to_string(code);  // outside the table: the number says more than "UNKNOWN"
}

int64_t micros(std::chrono::nanoseconds d) {
  return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

void set_tag(Json& tags, const char* key, std::string_view value) {
  if (!value.empty()) tags[key] = value;
}

Json to_span(const CallRecord& r, std::string_view service_name) {
  Json span = Json::object();
  span["traceId"] = r.trace_id;
  if (!r.parent_span_id.empty()) span["parentId"] = r.parent_span_id;
  span["id"] = r.span_id;
  span["kind"] = "CLIENT";  // skiff's span is the hop that calls the upstream
  std::string_view name = r.path;
  if (name.starts_with('/')) name.remove_prefix(1);
  if (!name.empty()) span["name"] = name;
  span["timestamp"] = micros(r.start.time_since_epoch());
  span["duration"] = std::max<int64_t>(1, micros(r.duration));  // Zipkin drops a 0 duration
  span["localEndpoint"] = Json{{"serviceName", service_name}};
  if (!r.upstream_address.empty()) {
    if (std::optional<IpPort> remote = parse_ip_port(r.upstream_address)) {
      Json endpoint = Json::object();
      endpoint[remote->v6 ? "ipv6" : "ipv4"] = remote->ip;
      if (remote->port != 0) endpoint["port"] = remote->port;
      span["remoteEndpoint"] = std::move(endpoint);
    }
  }

  // Zipkin v2 tag values are strings, numbers included.
  Json tags = Json::object();
  if (r.grpc_status) tags["grpc.status_code"] = std::to_string(*r.grpc_status);
  set_tag(tags, "grpc.path", r.path);
  set_tag(tags, "skiff.listener", r.listener);
  set_tag(tags, "skiff.cluster", r.upstream_cluster);
  set_tag(tags, "skiff.upstream", r.upstream_endpoint);
  tags["skiff.attempts"] = std::to_string(r.attempts);
  set_tag(tags, "peer.identity", r.peer_identity);
  set_tag(tags, "guid:x-request-id", r.request_id);
  if (r.grpc_status && *r.grpc_status != 0) tags["error"] = status_tag(*r.grpc_status);
  span["tags"] = std::move(tags);
  return span;
}

}  // namespace

std::string to_zipkin_json(std::span<const CallRecord> records, std::string_view service_name) {
  Json spans = Json::array();
  for (const CallRecord& record : records) spans.push_back(to_span(record, service_name));
  // Paths and ids come from the network: replace invalid UTF-8 rather than throw.
  return spans.dump(-1, ' ', false, Json::error_handler_t::replace);
}

namespace {

// A connect to |host|:|port| that gives up after |timeout_ms|, closed at once. civetweb's
// client waits a built-in 10 s for its connect: a collector that drops SYNs would hold every
// batch, and the flush at exit, that long. Returns why it failed.
std::optional<std::string> connect_within(const std::string& host, int port, int timeout_ms) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found); rc != 0) {
    return "cannot resolve " + host + ": " + gai_strerror(rc);
  }
  const std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> owner(found, &freeaddrinfo);
  const int fd = socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::string("socket: ") + std::strerror(errno);
  std::optional<std::string> error;
  if (connect(fd, found->ai_addr, found->ai_addrlen) != 0) {
    if (errno != EINPROGRESS) {
      error = std::string("connect: ") + std::strerror(errno);
    } else {
      pollfd p{.fd = fd, .events = POLLOUT, .revents = 0};
      int soerr = 0;
      socklen_t len = sizeof soerr;
      const int ready = poll(&p, 1, timeout_ms);
      if (ready == 0) {
        error = "connect: no answer within " + std::to_string(timeout_ms) + " ms";
      } else if (ready < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0) {
        error = std::string("connect: ") + std::strerror(errno);
      } else if (soerr != 0) {
        error = std::string("connect: ") + std::strerror(soerr);
      }
    }
  }
  ::close(fd);
  return error;
}

}  // namespace

struct SpanExporter::Http {
  std::string host;
  int port = 80;
  std::string path = "/";
  std::string host_header;
  int timeout_ms;
  std::string bad_url;  // why the URL can't be used; empty when it can

  explicit Http(const SpanExporterOptions& options)
      : timeout_ms(static_cast<int>(options.timeout.count())) {
    static std::once_flag init;
    std::call_once(init, [] { mg_init_library(0); });
    // http://host[:port][/path]; an IPv6 host in brackets. The config allows no https and no
    // credentials.
    std::string_view url = options.url;
    if (!url.starts_with("http://")) {
      bad_url = "not an http:// URL";
      return;
    }
    url.remove_prefix(7);
    const size_t slash = url.find('/');
    std::string_view authority = url.substr(0, slash);
    if (slash != std::string_view::npos) path = std::string(url.substr(slash));
    host_header = std::string(authority);
    std::string_view port_text;
    if (authority.starts_with('[')) {
      const size_t close = authority.find(']');
      if (close == std::string_view::npos) {
        bad_url = "missing ']' after an IPv6 host";
        return;
      }
      host = std::string(authority.substr(1, close - 1));
      if (close + 1 < authority.size() && authority[close + 1] == ':') {
        port_text = authority.substr(close + 2);
      }
    } else if (const size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
      host = std::string(authority.substr(0, colon));
      port_text = authority.substr(colon + 1);
    } else {
      host = std::string(authority);
    }
    if (!port_text.empty()) {
      auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
      if (ec != std::errc() || end != port_text.data() + port_text.size() || port < 1 ||
          port > 65535) {
        bad_url = "bad port";
      }
    }
    if (host.empty()) bad_url = "no host";
  }

  // One POST of |body| on a new connection (at most one batch a flush interval); on failure,
  // returns why.
  std::optional<std::string> post(const std::string& body) {
    if (!bad_url.empty()) return "bad URL: " + bad_url;
    if (auto unreachable = connect_within(host, port, timeout_ms)) return unreachable;
    char error[256] = {};
    mg_connection* conn = mg_connect_client(host.c_str(), port, 0, error, sizeof error);
    if (conn == nullptr) return std::string(error[0] != '\0' ? error : "cannot connect");
    mg_printf(conn,
              "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
              "Content-Length: %zu\r\nConnection: close\r\n\r\n",
              path.c_str(), host_header.c_str(), body.size());
    std::optional<std::string> result;
    if (mg_write(conn, body.data(), body.size()) != static_cast<int>(body.size())) {
      result = "connection closed while sending";
    } else if (mg_get_response(conn, error, sizeof error, timeout_ms) < 0) {
      result = std::string(error[0] != '\0' ? error : "no response");
    } else {
      const mg_response_info* info = mg_get_response_info(conn);
      const int status = info != nullptr ? info->status_code : 0;
      if (status < 200 || status > 299) result = "HTTP status " + std::to_string(status);
    }
    mg_close_connection(conn);
    return result;
  }
};

SpanExporter::SpanExporter(SpanExporterOptions options)
    : options_(std::move(options)),
      http_(std::make_unique<Http>(options_)),
      queue_("skiff-spans", options_.max_queue, options_.max_batch, options_.flush_interval,
             [this](std::vector<CallRecord>& batch) { send(batch); }) {}

SpanExporter::~SpanExporter() { stop(); }

bool SpanExporter::submit(CallRecord record) {
  // Without a span id the collector would refuse the whole batch, not just this span.
  if (!record.sampled || record.trace_id.empty() || record.span_id.empty()) return false;
  return queue_.push(std::move(record));
}

void SpanExporter::stop() {
  const auto by = std::chrono::steady_clock::now() + kStopBudget;
  stop_by_ns_.store(by.time_since_epoch().count(), std::memory_order_relaxed);
  stopping_.store(true, std::memory_order_release);
  queue_.stop();
}

void SpanExporter::send(std::vector<CallRecord>& batch) {
  if (stopping_.load(std::memory_order_acquire) &&
      (failing_ || std::chrono::steady_clock::now().time_since_epoch().count() >
                       stop_by_ns_.load(std::memory_order_relaxed))) {
    // Shutting down with the collector unreachable, or past the flush's budget: one more
    // timeout per batch would hold the exit for minutes with a full queue. Count the rest as
    // failed instead.
    failed_.fetch_add(batch.size(), std::memory_order_relaxed);
    return;
  }
  std::optional<std::string> error = http_->post(to_zipkin_json(batch, options_.service_name));
  if (!error) {
    exported_.fetch_add(batch.size(), std::memory_order_relaxed);
    if (failing_) {
      SKIFF_LOG(kInfo) << "span exporter: " << options_.url << " accepts spans again";
    }
    failing_ = false;
    return;
  }
  failed_.fetch_add(batch.size(), std::memory_order_relaxed);
  // Warn once per outage, not per batch; failed() counts every lost span.
  if (!failing_) {
    SKIFF_LOG(kWarn) << "span exporter: POST " << options_.url << " failed: " << *error
                     << " (dropping spans until it succeeds)";
  }
  failing_ = true;
}

}  // namespace skiff::telemetry
