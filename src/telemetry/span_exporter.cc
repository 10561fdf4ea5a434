// SpanExporter: Zipkin v2 JSON over HTTP POST with libcurl, from the BackgroundQueue's thread.
#include "telemetry/span_exporter.h"

#include <arpa/inet.h>
#include <curl/curl.h>

#include <algorithm>
#include <charconv>
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

size_t discard_body(char*, size_t size, size_t nmemb, void*) { return size * nmemb; }

}  // namespace

std::string to_zipkin_json(std::span<const CallRecord> records, std::string_view service_name) {
  Json spans = Json::array();
  for (const CallRecord& record : records) spans.push_back(to_span(record, service_name));
  // Paths and ids come from the network: replace invalid UTF-8 rather than throw.
  return spans.dump(-1, ' ', false, Json::error_handler_t::replace);
}

struct SpanExporter::Http {
  CURL* handle = nullptr;
  curl_slist* headers = nullptr;
  char error[CURL_ERROR_SIZE] = {};

  explicit Http(const SpanExporterOptions& options) {
    static std::once_flag global_init;
    std::call_once(global_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    handle = curl_easy_init();
    if (handle == nullptr) return;
    headers = curl_slist_append(headers, "Content-Type: application/json");
    // No "Expect: 100-continue" round trip before a large batch.
    headers = curl_slist_append(headers, "Expect:");
    long timeout_ms = static_cast<long>(options.timeout.count());
    curl_easy_setopt(handle, CURLOPT_URL, options.url.c_str());
    curl_easy_setopt(handle, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(handle, CURLOPT_NOSIGNAL, 1L);  // a background thread: no SIGALRM for DNS
    curl_easy_setopt(handle, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(handle, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, error);
  }
  ~Http() {
    if (handle != nullptr) curl_easy_cleanup(handle);
    curl_slist_free_all(headers);
  }
  Http(const Http&) = delete;
  Http& operator=(const Http&) = delete;

  // One POST of |body|; on failure, returns why.
  std::optional<std::string> post(const std::string& body) {
    if (handle == nullptr) return "curl_easy_init failed";
    error[0] = '\0';
    curl_easy_setopt(handle, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(handle, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    CURLcode rc = curl_easy_perform(handle);
    if (rc != CURLE_OK) return std::string(error[0] != '\0' ? error : curl_easy_strerror(rc));
    long status = 0;
    curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status > 299) return "HTTP status " + std::to_string(status);
    return std::nullopt;
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
  stopping_.store(true, std::memory_order_relaxed);
  queue_.stop();
}

void SpanExporter::send(std::vector<CallRecord>& batch) {
  if (failing_ && stopping_.load(std::memory_order_relaxed)) {
    // Shutting down with the collector unreachable: one more timeout per batch would hold the
    // exit for minutes with a full queue. Count the rest as failed instead.
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
