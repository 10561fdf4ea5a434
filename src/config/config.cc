// Loads the YAML config into a validated config::Config; every error carries file:line:col.
#include "config/config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <string_view>
#include <utility>

#include "base/spiffe.h"

namespace skiff::config {
namespace {

constexpr int64_t kMaxInt31 = std::numeric_limits<int32_t>::max();
constexpr int64_t kMiB = 1024 * 1024;
// Larger durations would overflow a nanosecond steady_clock time point once added to "now".
constexpr int64_t kMaxDurationHours = 876000;  // 100 years
constexpr Millis kMaxDuration = std::chrono::hours(kMaxDurationHours);

// Validation stops at the first error. Inside this file that error travels as an exception
// (yaml-cpp throws anyway), so the readers below go straight through the document; load_string
// is the only catch site and turns it into a ConfigError, so nothing escapes config/.
struct Failure {
  Position pos;
  std::string message;
};

Position position_of(const YAML::Mark& mark) {
  if (mark.is_null()) return {};
  return {mark.line + 1, mark.column + 1};
}

// A node to read, the path that names it in messages ("listeners[0].address") and the position
// to blame for it.
struct Value {
  YAML::Node node;
  std::string path;
  Position pos;
};

[[noreturn]] void fail(Position pos, std::string_view path, std::string_view message) {
  throw Failure{pos, path.empty() ? std::string(message) : fmt::format("{}: {}", path, message)};
}

[[noreturn]] void fail(const Value& value, std::string_view message) {
  fail(value.pos, value.path, message);
}

std::string join_path(std::string_view parent, std::string_view key) {
  return parent.empty() ? std::string(key) : fmt::format("{}.{}", parent, key);
}

// yaml-cpp tags a quoted scalar "!" and a plain one "?": "8" is a string, 8 is a number.
bool is_quoted(const YAML::Node& node) { return node.Tag() == "!"; }

// What the user wrote, for "expected X, got Y" messages.
std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar: {
      constexpr size_t kMaxShown = 40;
      std::string text = node.Scalar();
      if (text.size() > kMaxShown) text = text.substr(0, kMaxShown - 3) + "...";
      return is_quoted(node) ? fmt::format("the quoted string \"{}\"", text)
                             : fmt::format("'{}'", text);
    }
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      break;
  }
  return "an empty value";
}

// Levenshtein distance, for "did you mean" hints on misspelled keys.
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// The fields of one YAML map, checked on construction: it must be a map, every key must be one of
// |allowed|, and no key may appear twice.
class MapReader {
 public:
  MapReader(const Value& map, std::initializer_list<std::string_view> allowed) : map_(map) {
    if (!map.node.IsMap()) fail(map, fmt::format("expected a map, got {}", describe(map.node)));
    for (auto it = map.node.begin(); it != map.node.end(); ++it) {
      const YAML::Node key = it->first;
      const YAML::Node value = it->second;
      const Position key_pos = position_of(key.Mark());
      if (!key.IsScalar()) {
        fail(key_pos, map.path, fmt::format("expected a string as the key, got {}", describe(key)));
      }
      const std::string& name = key.Scalar();
      if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
        fail(key_pos, map.path, unknown_key_message(name, allowed));
      }
      if (find(name)) fail(key_pos, map.path, fmt::format("duplicate key '{}'", name));
      // An empty value ("key:") is blamed on its key: yaml-cpp marks it at the next token.
      const Position value_pos = value.IsNull() ? key_pos : position_of(value.Mark());
      fields_.emplace_back(name, Value{value, join_path(map.path, name), value_pos});
    }
  }

  std::optional<Value> find(std::string_view key) const {
    for (const auto& [name, value] : fields_) {
      if (name == key) return value;
    }
    return std::nullopt;
  }

  // A missing required key is blamed on the map that lacks it.
  Value require(std::string_view key) const {
    if (auto value = find(key)) return *value;
    fail(map_, fmt::format("missing required key '{}'", key));
  }

 private:
  static std::string unknown_key_message(std::string_view name,
                                         std::initializer_list<std::string_view> allowed) {
    std::string message = fmt::format("unknown key '{}'", name);
    std::string_view closest;
    size_t best = std::max<size_t>(1, name.size() / 3) + 1;
    for (std::string_view candidate : allowed) {
      size_t distance = edit_distance(name, candidate);
      if (distance < best) {
        best = distance;
        closest = candidate;
      }
    }
    if (!closest.empty()) message += fmt::format(" (did you mean '{}'?)", closest);
    return message + fmt::format("; allowed keys: {}", fmt::join(allowed, ", "));
  }

  Value map_;
  std::vector<std::pair<std::string, Value>> fields_;
};

// The elements of a YAML list, each named "path[i]".
std::vector<Value> read_list(const Value& list) {
  if (!list.node.IsSequence()) {
    fail(list, fmt::format("expected a list, got {}", describe(list.node)));
  }
  std::vector<Value> items;
  size_t index = 0;
  for (auto it = list.node.begin(); it != list.node.end(); ++it, ++index) {
    const YAML::Node item = *it;
    const Position pos = item.IsNull() ? list.pos : position_of(item.Mark());
    items.push_back(Value{item, fmt::format("{}[{}]", list.path, index), pos});
  }
  return items;
}

std::string read_string(const Value& value) {
  if (!value.node.IsScalar()) {
    fail(value, fmt::format("expected a string, got {}", describe(value.node)));
  }
  return value.node.Scalar();
}

// A plain decimal integer in [lo, hi]; |expected| names what is accepted, for type errors.
int64_t read_integer(const Value& value, int64_t lo, int64_t hi,
                     std::string_view expected = "an integer") {
  const std::string type_error = fmt::format("expected {}, got {}", expected, describe(value.node));
  if (!value.node.IsScalar() || is_quoted(value.node)) fail(value, type_error);
  const std::string& text = value.node.Scalar();
  const char* first = text.data();
  const char* last = text.data() + text.size();
  if (first != last && *first == '-') ++first;
  if (first == last || !std::all_of(first, last, [](char c) { return c >= '0' && c <= '9'; })) {
    fail(value, type_error);
  }
  int64_t number = 0;
  auto [end, error] = std::from_chars(text.data(), last, number);
  if (error != std::errc() || end != last || number < lo || number > hi) {
    fail(value, fmt::format("{} is out of range {}..{}", text, lo, hi));
  }
  return number;
}

// A plain decimal number in [lo, hi], such as 5, 0.5 or 1e3; |range| shows the bounds in
// messages (e.g. "0.001..1e9"). Quoted numbers, hex, inf and nan are type errors.
double read_number(const Value& value, double lo, double hi, std::string_view range) {
  const std::string type_error = fmt::format("expected a number, got {}", describe(value.node));
  if (!value.node.IsScalar() || is_quoted(value.node)) fail(value, type_error);
  const std::string& text = value.node.Scalar();
  const char* first = text.data();
  const char* last = text.data() + text.size();
  const char* digits = (first != last && *first == '-') ? first + 1 : first;
  if (digits == last || *digits < '0' || *digits > '9') fail(value, type_error);
  double number = 0;
  auto [end, error] = std::from_chars(first, last, number, std::chars_format::general);
  if (end != last) fail(value, type_error);
  if (error != std::errc() || !(number >= lo && number <= hi)) {
    fail(value, fmt::format("{} is out of range {}", text, range));
  }
  return number;
}

// "250ms", "5s", "2m", "1h": a non-negative integer and a unit, nothing else.
Millis read_duration(const Value& value) {
  if (!value.node.IsScalar()) {
    fail(value,
         fmt::format("expected a duration such as 250ms or 5s, got {}", describe(value.node)));
  }
  const std::string& text = value.node.Scalar();
  const auto invalid = [&](std::string_view why) {
    fail(value, fmt::format("invalid duration '{}': {}", text, why));
  };
  const auto digits_end =
      std::find_if(text.begin(), text.end(), [](char c) { return c < '0' || c > '9'; });
  const std::string_view digits(text.begin(), digits_end);
  const std::string_view unit(digits_end, text.end());
  if (!text.empty() && text.front() == '-') invalid("must not be negative");
  if (digits.empty()) invalid("expected an integer followed by ms, s, m or h (e.g. 250ms, 5s)");
  if (unit.starts_with('.')) invalid("fractions are not allowed; use a smaller unit (e.g. 1500ms)");
  int64_t millis_per_unit = 0;
  if (unit == "ms") {
    millis_per_unit = 1;
  } else if (unit == "s") {
    millis_per_unit = 1000;
  } else if (unit == "m") {
    millis_per_unit = 60 * 1000;
  } else if (unit == "h") {
    millis_per_unit = 60 * 60 * 1000;
  } else if (unit.empty()) {
    invalid("missing unit (ms, s, m or h)");
  } else {
    invalid(fmt::format("unknown unit '{}' (use ms, s, m or h)", unit));
  }
  const std::string too_large = fmt::format("too large (at most {}h)", kMaxDurationHours);
  int64_t count = 0;
  auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), count);
  if (error != std::errc() || count > kMaxDuration.count() / millis_per_unit) invalid(too_large);
  return Millis(count * millis_per_unit);
}

// "host:port" or "[v6]:port"; the host is kept without brackets and is not resolved.
Address read_address(const Value& value, int64_t min_port) {
  const std::string text = read_string(value);
  const auto invalid = [&](std::string_view why) {
    fail(value, fmt::format("invalid address '{}': {}", text, why));
  };
  std::string_view rest(text);
  Address address;
  address.pos = value.pos;
  if (rest.starts_with('[')) {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos) invalid("missing ']' after the IPv6 host");
    address.host = rest.substr(1, close - 1);
    rest.remove_prefix(close + 1);
    if (!rest.starts_with(':')) invalid("expected ':port' after ']'");
    rest.remove_prefix(1);
  } else {
    const size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos) invalid("missing port (expected host:port)");
    address.host = rest.substr(0, colon);
    if (address.host.find(':') != std::string::npos) {
      invalid("an IPv6 host must be in brackets, e.g. [::1]:8080");
    }
    rest.remove_prefix(colon + 1);
  }
  if (address.host.empty()) invalid("empty host");
  if (std::any_of(address.host.begin(), address.host.end(),
                  [](char c) { return c == ' ' || c == '\t' || c == '/'; })) {
    invalid("the host must not contain spaces or '/'");
  }
  if (rest.empty()) invalid("missing port (expected host:port)");
  if (!std::all_of(rest.begin(), rest.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    invalid(fmt::format("port '{}' is not a number", rest));
  }
  int64_t port = -1;
  auto [end, error] = std::from_chars(rest.data(), rest.data() + rest.size(), port);
  if (error != std::errc() || port < min_port || port > 65535) {
    invalid(fmt::format("port {} is out of range {}..65535", rest, min_port));
  }
  address.port = static_cast<uint16_t>(port);
  return address;
}

// Listener and cluster names appear in metrics labels and admin URLs, so keep them plain.
std::string read_name(const Value& value) {
  std::string name = read_string(value);
  const bool plain = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
  if (!plain) {
    fail(value, fmt::format("invalid name '{}': use only letters, digits, '_', '.' and '-'", name));
  }
  return name;
}

// A service or method name from a route's match: non-empty and without '/', which separates the
// two in ":path".
std::string read_path_part(const Value& value) {
  std::string part = read_string(value);
  if (part.empty()) fail(value, "must not be empty (leave the key out to match any)");
  if (part.find('/') != std::string::npos) {
    fail(value, fmt::format("'{}' must not contain '/'", part));
  }
  return part;
}

std::string read_authority(const Value& value) {
  std::string authority = read_string(value);
  if (authority.empty()) fail(value, "must not be empty (leave the key out to match any)");
  if (std::any_of(authority.begin(), authority.end(),
                  [](char c) { return c == ' ' || c == '\t' || c == '/'; })) {
    fail(value, fmt::format("invalid authority '{}': must not contain spaces or '/'", authority));
  }
  return authority;
}

bool read_bool(const Value& value) {
  if (value.node.IsScalar() && !is_quoted(value.node)) {
    const std::string& text = value.node.Scalar();
    if (text == "true") return true;
    if (text == "false") return false;
  }
  fail(value, fmt::format("expected true or false, got {}", describe(value.node)));
}

// A certificate, key or CA file. Only its name is checked here; server/ reads it at startup and
// on every change, and reports problems at this position.
FilePath read_file_path(const Value& value) {
  FilePath file;
  file.path = read_string(value);
  file.pos = value.pos;
  if (file.path.empty()) fail(value, "must not be empty");
  return file;
}

// A non-empty list of identity patterns (base/spiffe.h), each checked where it was written.
std::vector<std::string> read_identity_patterns(const Value& value) {
  std::vector<std::string> patterns;
  for (const Value& item : read_list(value)) {
    std::string pattern = read_string(item);
    if (auto checked = base::check_identity_pattern(pattern); !checked) {
      fail(item, checked.error().message);
    }
    patterns.push_back(std::move(pattern));
  }
  if (patterns.empty()) {
    fail(value, "at least one identity is required (leave the key out to allow any)");
  }
  return patterns;
}

ListenerTls read_listener_tls(const Value& value) {
  const MapReader map(value, {"cert", "key", "client_ca", "require_client_cert"});
  ListenerTls tls;
  tls.pos = value.pos;
  tls.cert = read_file_path(map.require("cert"));
  tls.key = read_file_path(map.require("key"));
  if (auto ca = map.find("client_ca")) tls.client_ca = read_file_path(*ca);
  if (auto require = map.find("require_client_cert")) {
    tls.require_client_cert = read_bool(*require);
    if (tls.client_ca.path.empty()) {
      fail(*require, "needs 'client_ca' (the CAs that client certificates are verified against)");
    }
  }
  return tls;
}

// A DNS name for SNI and certificate checks: letters, digits, '-', '.' and a leading "*." is
// not allowed (it names one server).
std::string read_server_name(const Value& value) {
  std::string name = read_string(value);
  const bool valid = !name.empty() && name.size() <= 253 && name.front() != '.' &&
                     name.back() != '.' && std::all_of(name.begin(), name.end(), [](char c) {
                       return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                              (c >= '0' && c <= '9') || c == '-' || c == '.';
                     });
  if (!valid) {
    fail(value,
         fmt::format("invalid server name '{}': expected a DNS name such as users.example.com",
                     name));
  }
  return name;
}

ClusterTls read_cluster_tls(const Value& value) {
  const MapReader map(value, {"ca", "cert", "key", "server_name", "identities"});
  ClusterTls tls;
  tls.pos = value.pos;
  if (auto ca = map.find("ca")) tls.ca = read_file_path(*ca);
  auto cert = map.find("cert");
  auto key = map.find("key");
  if (cert) tls.cert = read_file_path(*cert);
  if (key) tls.key = read_file_path(*key);
  if (cert && !key) fail(*cert, "needs 'key' too (the private key of this client certificate)");
  if (key && !cert) fail(*key, "needs 'cert' too (the client certificate of this key)");
  if (auto name = map.find("server_name")) tls.server_name = read_server_name(*name);
  if (auto identities = map.find("identities")) {
    tls.identities = read_identity_patterns(*identities);
  }
  if (tls.identities.empty() && tls.server_name.empty()) {
    fail(value,
         "set 'identities' (the SPIFFE identities a mesh upstream may present) or 'server_name' "
         "(the DNS name in a non-mesh upstream's certificate); without either, any certificate "
         "from the CA would be accepted");
  }
  return tls;
}

// A route's cluster reference, checked once every cluster has been read.
struct ClusterRef {
  std::string name;
  Value where;
};

Http2 read_http2(const Value& value) {
  const MapReader map(value, {"max_concurrent_streams", "initial_stream_window_bytes",
                              "initial_connection_window_bytes", "max_header_list_bytes",
                              "max_header_count", "max_frame_bytes", "stream_flush_timeout"});
  Http2 http2;
  const auto read = [&](std::string_view key, uint32_t& field, int64_t lo, int64_t hi) {
    if (auto found = map.find(key)) field = static_cast<uint32_t>(read_integer(*found, lo, hi));
  };
  read("max_concurrent_streams", http2.max_concurrent_streams, 1, kMaxInt31);
  read("initial_stream_window_bytes", http2.initial_stream_window_bytes, 65535, kMaxInt31);
  read("initial_connection_window_bytes", http2.initial_connection_window_bytes, 65535, kMaxInt31);
  read("max_header_list_bytes", http2.max_header_list_bytes, 1024, 16 * kMiB);
  read("max_header_count", http2.max_header_count, 1, 10000);
  read("max_frame_bytes", http2.max_frame_bytes, 16384, 16 * kMiB - 1);
  if (auto flush = map.find("stream_flush_timeout")) {
    http2.stream_flush_timeout = read_duration(*flush);
    if (http2.stream_flush_timeout.count() == 0) fail(*flush, "must be greater than 0");
  }
  return http2;
}

// Route `rate_limit` (docs/policies.md). `key` and `max_keys` are not accepted yet.
// `rps` (required) and `burst` of a token bucket.
void read_rps_burst(const MapReader& map, double& rps_out, uint32_t& burst_out) {
  const Value rps = map.require("rps");
  rps_out = read_number(rps, 0.001, 1e9, "0.001..1e9");
  if (auto burst = map.find("burst")) {
    burst_out = static_cast<uint32_t>(read_integer(*burst, 1, kMaxInt31));
    // The bucket's tolerance (burst / rps, in nanoseconds) must stay far from int64 overflow;
    // the same bound as policy::TokenBucketParams::validate.
    if (static_cast<double>(burst_out) * 1e9 / rps_out > 1e17) {
      fail(*burst, fmt::format("{} is too large for rps {}: burst / rps must be at most 1e8 "
                               "(about 3 years of tokens)",
                               burst->node.Scalar(), rps.node.Scalar()));
    }
  }
}

MessageRateLimit read_message_rate_limit(const Value& value) {
  const MapReader map(value, {"rps", "burst"});
  MessageRateLimit limit;
  limit.pos = value.pos;
  read_rps_burst(map, limit.rps, limit.burst);
  return limit;
}

RateLimit read_rate_limit(const Value& value) {
  const MapReader map(value, {"rps", "burst", "status", "key", "max_keys"});
  RateLimit limit;
  limit.pos = value.pos;
  read_rps_burst(map, limit.rps, limit.burst);
  if (auto key = map.find("key")) {
    // `identity`, or `{ header: NAME }`.
    if (key->node.IsMap()) {
      const MapReader header(*key, {"header"});
      const Value name = header.require("header");
      limit.key = RateLimit::Key::kHeader;
      limit.key_header = read_string(name);
      for (char& c : limit.key_header) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      }
      if (limit.key_header.empty() || limit.key_header.starts_with(':')) {
        fail(name, "expected a request header name (not empty, not a pseudo-header)");
      }
    } else if (read_string(*key) == "identity") {
      limit.key = RateLimit::Key::kPeer;
    } else {
      fail(*key, fmt::format("unknown key '{}'; allowed: identity, {{ header: NAME }}",
                             key->node.Scalar()));
    }
  }
  if (auto max = map.find("max_keys")) {
    if (limit.key == RateLimit::Key::kNone)
      fail(*max, "needs 'key' (identity or { header: NAME })");
    limit.max_keys = static_cast<uint32_t>(read_integer(*max, 4, 1 << 20));
  }
  if (auto status = map.find("status")) {
    const std::string name = read_string(*status);
    if (name == "unavailable") {
      limit.unavailable = true;
    } else if (name != "resource_exhausted") {
      fail(*status,
           fmt::format("unknown status '{}'; allowed: resource_exhausted, unavailable", name));
    }
  }
  return limit;
}

// Route `circuit_breaker` (docs/policies.md "Method breaker").
CircuitBreaker read_circuit_breaker(const Value& value) {
  const MapReader map(value, {"consecutive_failures", "open_for", "half_open_probes"});
  CircuitBreaker breaker;
  breaker.pos = value.pos;
  if (auto failures = map.find("consecutive_failures")) {
    breaker.consecutive_failures = static_cast<uint32_t>(read_integer(*failures, 1, 1000000));
  }
  if (auto open_for = map.find("open_for")) {
    breaker.open_for = read_duration(*open_for);
    if (breaker.open_for.count() == 0) fail(*open_for, "must be greater than 0");
  }
  if (auto probes = map.find("half_open_probes")) {
    breaker.half_open_probes = static_cast<uint32_t>(read_integer(*probes, 1, 1000));
  }
  return breaker;
}

// A list of status names (retry `on`, route `failure_codes`). The names are only lower-cased
// here: server/ checks them against policy::FailureCodes and reports a bad one at its position.
std::vector<Retry::Code> read_status_names(const Value& list) {
  std::vector<Retry::Code> names;
  for (const Value& item : read_list(list)) {
    std::string name = read_string(item);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    names.push_back(Retry::Code{std::move(name), item.pos});
  }
  return names;
}

// Route `retry` (docs/policies.md "retry").
Retry read_retry(const Value& value) {
  const MapReader map(value, {"max_attempts", "on", "per_try_timeout", "backoff", "buffer_bytes"});
  Retry retry;
  retry.pos = value.pos;
  if (auto attempts = map.find("max_attempts")) {
    retry.max_attempts = static_cast<uint32_t>(read_integer(*attempts, 1, 5));
  }
  if (auto on = map.find("on")) {
    retry.on = read_status_names(*on);
    if (retry.on.empty()) {
      fail(*on,
           "at least one status is required (leave the key out to retry the route's failure "
           "codes)");
    }
  }
  if (auto timeout = map.find("per_try_timeout")) {
    retry.per_try_timeout = read_duration(*timeout);
    if (retry.per_try_timeout->count() == 0) fail(*timeout, "must be greater than 0");
  }
  if (auto backoff_value = map.find("backoff")) {
    const MapReader backoff(*backoff_value, {"initial", "max", "multiplier"});
    auto initial = backoff.find("initial");
    if (initial) {
      retry.backoff_initial = read_duration(*initial);
      if (retry.backoff_initial.count() == 0) fail(*initial, "must be greater than 0");
    }
    if (auto max = backoff.find("max")) {
      retry.backoff_max = read_duration(*max);
      if (retry.backoff_max < retry.backoff_initial) {
        fail(*max, fmt::format("{} is less than initial ({}ms)", max->node.Scalar(),
                               retry.backoff_initial.count()));
      }
    } else if (initial && retry.backoff_max < retry.backoff_initial) {
      fail(*initial, fmt::format("{} is more than the default max ({}ms); set max too",
                                 initial->node.Scalar(), retry.backoff_max.count()));
    }
    if (auto multiplier = backoff.find("multiplier")) {
      retry.backoff_multiplier = read_number(*multiplier, 1, 10, "1..10");
    }
  }
  if (auto buffer = map.find("buffer_bytes")) {
    retry.buffer_bytes = static_cast<uint32_t>(read_integer(*buffer, 0, 16 * kMiB));
  }
  return retry;
}

// Route `hedging` (docs/policies.md "hedging").
Hedging read_hedging(const Value& value) {
  const MapReader map(value, {"max_attempts", "hedging_delay", "non_fatal_codes", "buffer_bytes"});
  Hedging hedging;
  hedging.pos = value.pos;
  if (auto attempts = map.find("max_attempts")) {
    hedging.max_attempts = static_cast<uint32_t>(read_integer(*attempts, 1, 5));
  }
  hedging.hedging_delay = read_duration(map.require("hedging_delay"));
  if (auto codes = map.find("non_fatal_codes")) hedging.non_fatal = read_status_names(*codes);
  if (auto buffer = map.find("buffer_bytes")) {
    hedging.buffer_bytes = static_cast<uint32_t>(read_integer(*buffer, 0, 16 * kMiB));
  }
  return hedging;
}

Route read_route(const Value& value, std::vector<ClusterRef>& cluster_refs) {
  const MapReader map(value,
                      {"match", "cluster", "timeout", "grpc_timeout_offset", "allow", "rate_limit",
                       "message_rate_limit", "circuit_breaker", "retry", "hedging", "failure_codes",
                       "max_request_message_bytes", "max_response_message_bytes"});
  Route route;
  route.pos = value.pos;

  const MapReader match(map.require("match"), {"service", "method", "authority"});
  if (auto service = match.find("service")) route.match.service = read_path_part(*service);
  if (auto method = match.find("method")) {
    route.match.method = read_path_part(*method);
    if (route.match.service.empty()) fail(*method, "a method match also needs 'service'");
  }
  if (auto authority = match.find("authority")) route.match.authority = read_authority(*authority);

  const Value cluster = map.require("cluster");
  route.cluster = read_string(cluster);
  cluster_refs.push_back(ClusterRef{route.cluster, cluster});

  if (auto timeout = map.find("timeout")) {
    route.timeout = read_duration(*timeout);
    if (route.timeout->count() == 0) fail(*timeout, "must be greater than 0");
  }
  if (auto offset = map.find("grpc_timeout_offset")) {
    route.grpc_timeout_offset = read_duration(*offset);
  }
  if (auto allow = map.find("allow")) {
    route.allow = read_identity_patterns(*allow);
    route.allow_pos = allow->pos;
  }
  if (auto limit = map.find("rate_limit")) route.rate_limit = read_rate_limit(*limit);
  if (auto limit = map.find("message_rate_limit")) {
    route.message_rate_limit = read_message_rate_limit(*limit);
  }
  if (auto codes = map.find("failure_codes")) {
    route.failure_codes = read_status_names(*codes);
    route.failure_codes_pos = codes->pos;
    if (route.failure_codes.empty()) fail(*codes, "at least one status is required");
  }
  if (auto breaker = map.find("circuit_breaker")) {
    route.circuit_breaker = read_circuit_breaker(*breaker);
  }
  if (auto retry = map.find("retry")) route.retry = read_retry(*retry);
  if (auto hedging = map.find("hedging")) {
    if (route.retry) {
      fail(*hedging,
           "a route has either retry or hedging, not both (as in gRPC service config); "
           "hedging is for idempotent methods only");
    }
    route.hedging = read_hedging(*hedging);
  }
  if (auto max = map.find("max_request_message_bytes")) {
    route.max_request_message_bytes = static_cast<uint32_t>(read_integer(*max, 1, kMaxInt31));
  }
  if (auto max = map.find("max_response_message_bytes")) {
    route.max_response_message_bytes = static_cast<uint32_t>(read_integer(*max, 1, kMaxInt31));
  }
  return route;
}

// Reads one listener; |earlier| are the listeners before it, which it must not duplicate.
Listener read_listener(const Value& value, const std::vector<Listener>& earlier,
                       std::vector<ClusterRef>& cluster_refs) {
  const MapReader map(value, {"name", "address", "tls", "routes"});
  Listener listener;
  listener.pos = value.pos;

  const Value name = map.require("name");
  listener.name = read_name(name);
  for (const Listener& other : earlier) {
    if (other.name == listener.name) {
      fail(name, fmt::format("duplicate listener name '{}' (first at line {})", listener.name,
                             other.pos.line));
    }
  }

  const Value address = map.require("address");
  listener.address = read_address(address, 0);
  for (const Listener& other : earlier) {
    // Port 0 asks the kernel for a fresh port each time, so those never collide.
    if (other.address.host == listener.address.host &&
        other.address.port == listener.address.port && listener.address.port != 0) {
      fail(address, fmt::format("address '{}' is already used by listener '{}' (line {})",
                                address.node.Scalar(), other.name, other.address.pos.line));
    }
  }

  if (auto tls = map.find("tls")) listener.tls = read_listener_tls(*tls);

  const Value routes = map.require("routes");
  for (const Value& route : read_list(routes)) {
    listener.routes.push_back(read_route(route, cluster_refs));
    const Route& added = listener.routes.back();
    if (!added.allow.empty() && (!listener.tls || listener.tls->client_ca.path.empty())) {
      fail(added.allow_pos,
           fmt::format("{}.routes[{}].allow", value.path, listener.routes.size() - 1),
           "needs a listener with 'tls.client_ca': without client certificates no caller has "
           "an identity to allow");
    }
  }
  if (listener.routes.empty()) fail(routes, "at least one route is required");
  return listener;
}

// Cluster `outlier_detection` (docs/policies.md "outlier_detection").
OutlierDetection read_outlier_detection(const Value& value) {
  const MapReader map(value, {"consecutive_failures", "base_ejection_time", "max_ejection_time",
                              "max_ejection_percent", "interval"});
  OutlierDetection od;
  od.pos = value.pos;
  if (auto failures = map.find("consecutive_failures")) {
    od.consecutive_failures = static_cast<uint32_t>(read_integer(*failures, 1, 1000000));
  }
  if (auto base = map.find("base_ejection_time")) {
    od.base_ejection_time = read_duration(*base);
    if (od.base_ejection_time.count() == 0) fail(*base, "must be greater than 0");
  }
  if (auto max = map.find("max_ejection_time")) {
    od.max_ejection_time = read_duration(*max);
    if (od.max_ejection_time < od.base_ejection_time) {
      fail(*max, fmt::format("{}ms is less than base_ejection_time ({}ms)",
                             od.max_ejection_time.count(), od.base_ejection_time.count()));
    }
  } else if (od.max_ejection_time < od.base_ejection_time) {
    od.max_ejection_time = od.base_ejection_time;
  }
  if (auto percent = map.find("max_ejection_percent")) {
    od.max_ejection_percent = static_cast<uint32_t>(read_integer(*percent, 0, 100));
  }
  if (auto interval = map.find("interval")) {
    od.interval = read_duration(*interval);
    if (od.interval.count() == 0) fail(*interval, "must be greater than 0");
  }
  return od;
}

// Cluster `circuit_breaker` (docs/policies.md "Cluster thresholds").
ClusterCircuitBreaker read_cluster_circuit_breaker(const Value& value) {
  const MapReader map(value, {"max_connections", "max_pending_requests", "max_requests",
                              "max_retries", "retry_budget"});
  ClusterCircuitBreaker breaker;
  breaker.pos = value.pos;
  if (auto max = map.find("max_connections")) {
    breaker.max_connections = static_cast<uint32_t>(read_integer(*max, 1, 1000000));
  }
  if (auto max = map.find("max_pending_requests")) {
    breaker.max_pending_requests = static_cast<uint32_t>(read_integer(*max, 1, 1000000));
  }
  if (auto max = map.find("max_requests")) {
    breaker.max_requests = static_cast<uint32_t>(read_integer(*max, 1, 1000000));
  }
  if (auto max = map.find("max_retries")) {
    breaker.max_retries = static_cast<uint32_t>(read_integer(*max, 1, 1000000));
  }
  if (auto budget_value = map.find("retry_budget")) {
    const MapReader budget(*budget_value, {"budget_percent", "min_retry_concurrency"});
    ClusterCircuitBreaker::RetryBudget b;
    if (auto percent = budget.find("budget_percent")) {
      b.budget_percent = read_number(*percent, 0, 100, "0..100");
    }
    if (auto min = budget.find("min_retry_concurrency")) {
      b.min_retry_concurrency = static_cast<uint32_t>(read_integer(*min, 0, 1000000));
    }
    breaker.retry_budget = b;
  }
  return breaker;
}

PeakEwma read_peak_ewma(const Value& value) {
  const MapReader map(value, {"decay", "default_rtt", "resource_exhausted_penalty"});
  PeakEwma params;
  params.pos = value.pos;
  if (auto decay = map.find("decay")) {
    params.decay = read_duration(*decay);
    if (params.decay.count() == 0) fail(*decay, "must be greater than 0");
  }
  if (auto rtt = map.find("default_rtt")) {
    params.default_rtt = read_duration(*rtt);
    if (params.default_rtt.count() == 0) fail(*rtt, "must be greater than 0");
  }
  if (auto penalty = map.find("resource_exhausted_penalty")) {
    params.resource_exhausted_penalty = read_duration(*penalty);
  }
  return params;
}

// Cluster `retry_throttling` (docs/policies.md "retry_throttling").
RetryThrottling read_retry_throttling(const Value& value) {
  const MapReader map(value, {"max_tokens", "token_ratio"});
  RetryThrottling throttling;
  throttling.pos = value.pos;
  if (auto tokens = map.find("max_tokens")) {
    throttling.max_tokens = static_cast<uint32_t>(read_integer(*tokens, 1, 1000));
  }
  if (auto ratio = map.find("token_ratio")) {
    throttling.token_ratio = read_number(*ratio, 0.001, 1000, "0.001..1000");
  }
  return throttling;
}

// Reads one cluster; |earlier| are the clusters before it, which it must not duplicate.
Cluster read_cluster(const Value& value, const std::vector<Cluster>& earlier) {
  const MapReader map(value, {"name", "endpoints", "load_balancing", "peak_ewma", "connect_timeout",
                              "max_connections_per_endpoint", "idle_connection_timeout",
                              "max_requests_per_connection", "tls", "outlier_detection",
                              "circuit_breaker", "retry_throttling"});
  Cluster cluster;
  cluster.pos = value.pos;
  cluster.circuit_breaker.pos = value.pos;
  cluster.retry_throttling.pos = value.pos;

  const Value name = map.require("name");
  cluster.name = read_name(name);
  for (const Cluster& other : earlier) {
    if (other.name == cluster.name) {
      fail(name, fmt::format("duplicate cluster name '{}' (first at line {})", cluster.name,
                             other.pos.line));
    }
  }

  const Value endpoints = map.require("endpoints");
  for (const Value& item : read_list(endpoints)) {
    Address endpoint = read_address(item, 1);
    for (const Address& earlier : cluster.endpoints) {
      if (earlier.host == endpoint.host && earlier.port == endpoint.port) {
        fail(item, fmt::format("duplicate endpoint '{}' (first at line {})", item.node.Scalar(),
                               earlier.pos.line));
      }
    }
    cluster.endpoints.push_back(std::move(endpoint));
  }
  if (cluster.endpoints.empty()) fail(endpoints, "at least one endpoint is required");

  if (auto policy = map.find("load_balancing")) {
    const std::string name = read_string(*policy);
    if (name == "round_robin") {
      cluster.load_balancing = LoadBalancing::kRoundRobin;
    } else if (name == "least_request") {
      cluster.load_balancing = LoadBalancing::kLeastRequest;
    } else if (name == "peak_ewma") {
      cluster.load_balancing = LoadBalancing::kPeakEwma;
    } else {
      fail(*policy, fmt::format("unknown load balancing policy '{}'; allowed: round_robin, "
                                "least_request, peak_ewma",
                                name));
    }
  }
  if (auto peak_ewma = map.find("peak_ewma")) {
    if (cluster.load_balancing != LoadBalancing::kPeakEwma) {
      fail(*peak_ewma,
           fmt::format("only valid with load_balancing: peak_ewma (this cluster uses {})",
                       to_string(cluster.load_balancing)));
    }
    cluster.peak_ewma = read_peak_ewma(*peak_ewma);
  }
  if (auto timeout = map.find("connect_timeout")) {
    cluster.connect_timeout = read_duration(*timeout);
    if (cluster.connect_timeout.count() == 0) fail(*timeout, "must be greater than 0");
  }
  if (auto max = map.find("max_connections_per_endpoint")) {
    cluster.max_connections_per_endpoint = static_cast<uint32_t>(read_integer(*max, 1, 1024));
  }
  if (auto idle = map.find("idle_connection_timeout")) {
    cluster.idle_connection_timeout = read_duration(*idle);
    if (cluster.idle_connection_timeout.count() == 0) fail(*idle, "must be greater than 0");
  }
  if (auto max = map.find("max_requests_per_connection")) {
    // 2^30: the stream ids one HTTP/2 connection has.
    cluster.max_requests_per_connection = static_cast<uint32_t>(read_integer(*max, 1, 1 << 30));
  }
  if (auto tls = map.find("tls")) cluster.tls = read_cluster_tls(*tls);
  if (auto outliers = map.find("outlier_detection")) {
    cluster.outlier_detection = read_outlier_detection(*outliers);
  }
  if (auto breaker = map.find("circuit_breaker")) {
    cluster.circuit_breaker = read_cluster_circuit_breaker(*breaker);
  }
  if (auto throttling = map.find("retry_throttling")) {
    cluster.retry_throttling = read_retry_throttling(*throttling);
  }
  return cluster;
}

Admin read_admin(const Value& value) {
  const MapReader map(value, {"address"});
  Admin admin;
  admin.pos = value.pos;
  if (auto address = map.find("address")) {
    admin.address = read_address(*address, 0);
    // Debian's civetweb is built without IPv6: found here, not as a failed start.
    if (admin.address.host.find(':') != std::string::npos) {
      fail(*address, fmt::format("invalid address '{}': the admin server listens on IPv4 only "
                                 "(e.g. 0.0.0.0:9901 or 127.0.0.1:9901)",
                                 admin.address.to_string()));
    }
  }
  return admin;
}

Tracing read_tracing(const Value& value) {
  const MapReader map(value, {"sample_rate", "zipkin_url", "service_name", "max_queue"});
  Tracing tracing;
  tracing.pos = value.pos;
  if (auto rate = map.find("sample_rate")) tracing.sample_rate = read_number(*rate, 0, 1, "0..1");
  if (auto url = map.find("zipkin_url")) {
    tracing.zipkin_url = read_string(*url);
    const std::string_view u = tracing.zipkin_url;
    if (u.starts_with("https://")) {
      fail(*url,
           "https is not supported: spans are sent over plain HTTP, to a collector in the "
           "pod or on the node (Zipkin's is http://HOST:9411/api/v2/spans)");
    }
    if (!u.starts_with("http://")) {
      fail(*url, fmt::format("invalid URL '{}': expected http://host:port/path (Zipkin's is "
                             "http://HOST:9411/api/v2/spans)",
                             u));
    }
    const std::string_view authority = u.substr(7, u.find('/', 7) - 7);
    // Not echoed: the message would print the password.
    if (authority.find('@') != std::string_view::npos) {
      fail(*url, "credentials in the URL are not supported (they would not be sent)");
    }
    if (authority.empty()) fail(*url, "no host: expected http://host:port/path");
  }
  if (auto name = map.find("service_name")) {
    tracing.service_name = read_string(*name);
    if (tracing.service_name.empty()) fail(*name, "must not be empty");
  }
  if (auto max = map.find("max_queue")) {
    tracing.max_queue = static_cast<uint32_t>(read_integer(*max, 1, 10'000'000));
  }
  return tracing;
}

AccessLog read_access_log(const Value& value) {
  const MapReader map(value, {"path", "sample_rate"});
  AccessLog log;
  log.pos = value.pos;
  if (auto path = map.find("path")) {
    log.path = read_string(*path);
    if (log.path.empty()) fail(*path, "must not be empty (use \"-\" for stdout)");
  }
  if (auto rate = map.find("sample_rate")) log.sample_rate = read_number(*rate, 0, 1, "0..1");
  return log;
}

uint32_t read_workers(const Value& value) {
  if (value.node.IsScalar() && value.node.Scalar() == "auto") return 0;
  return static_cast<uint32_t>(read_integer(value, 1, 1024, "'auto' or an integer"));
}

Config read_config(const YAML::Node& root, const std::string& source) {
  const MapReader map(Value{root, "", position_of(root.Mark())},
                      {"workers", "drain_timeout", "http2", "admin", "tracing", "access_log",
                       "listeners", "clusters"});
  Config config;
  config.source = source;
  if (auto workers = map.find("workers")) config.workers = read_workers(*workers);
  if (auto drain = map.find("drain_timeout")) config.drain_timeout = read_duration(*drain);
  if (auto http2 = map.find("http2")) config.http2 = read_http2(*http2);
  if (auto admin = map.find("admin")) config.admin = read_admin(*admin);
  if (auto tracing = map.find("tracing")) config.tracing = read_tracing(*tracing);
  if (auto log = map.find("access_log")) config.access_log = read_access_log(*log);

  std::vector<ClusterRef> cluster_refs;
  const Value listeners = map.require("listeners");
  for (const Value& item : read_list(listeners)) {
    config.listeners.push_back(read_listener(item, config.listeners, cluster_refs));
  }
  if (config.listeners.empty()) fail(listeners, "at least one listener is required");

  if (auto clusters = map.find("clusters")) {
    for (const Value& item : read_list(*clusters)) {
      config.clusters.push_back(read_cluster(item, config.clusters));
    }
  }

  // Checked last so that a route may name a cluster defined further down the file.
  for (const ClusterRef& ref : cluster_refs) {
    const bool defined =
        std::any_of(config.clusters.begin(), config.clusters.end(),
                    [&](const Cluster& cluster) { return cluster.name == ref.name; });
    if (defined) continue;
    std::vector<std::string_view> names;
    for (const Cluster& cluster : config.clusters) names.push_back(cluster.name);
    fail(ref.where, names.empty()
                        ? fmt::format("unknown cluster '{}' (no clusters are defined)", ref.name)
                        : fmt::format("unknown cluster '{}'; defined clusters: {}", ref.name,
                                      fmt::join(names, ", ")));
  }
  return config;
}

Config read_documents(const std::vector<YAML::Node>& documents, const std::string& source) {
  if (documents.empty()) throw Failure{{}, "the file is empty; a config needs 'listeners'"};
  if (documents.size() > 1) {
    throw Failure{position_of(documents[1].Mark()),
                  fmt::format("expected one YAML document, found {}", documents.size())};
  }
  return read_config(documents[0], source);
}

}  // namespace

std::string Address::to_string() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string_view to_string(LoadBalancing policy) {
  switch (policy) {
    case LoadBalancing::kRoundRobin:
      return "round_robin";
    case LoadBalancing::kLeastRequest:
      return "least_request";
    case LoadBalancing::kPeakEwma:
      return "peak_ewma";
  }
  return "round_robin";
}

std::string ConfigError::to_string() const {
  // Line 0 means the error is about the whole file (unreadable, empty).
  if (line == 0) return fmt::format("{}: {}", file, message);
  return fmt::format("{}:{}:{}: {}", file, line, col, message);
}

std::expected<Config, ConfigError> load_string(const std::string& text, const std::string& name) {
  const auto error = [&](Position pos, std::string message) {
    return std::unexpected(ConfigError{name, pos.line, pos.col, std::move(message)});
  };
  try {
    return read_documents(YAML::LoadAll(text), name);
  } catch (const Failure& failure) {
    return error(failure.pos, failure.message);
  } catch (const YAML::Exception& e) {
    return error(position_of(e.mark), fmt::format("invalid YAML: {}", e.msg));
  } catch (const std::exception& e) {
    return error({}, fmt::format("cannot load config: {}", e.what()));
  } catch (...) {
    return error({}, "cannot load config: unknown error");
  }
}

std::expected<Config, ConfigError> load_file(const std::string& path) {
  const auto unreadable = [&](int error) {
    return std::unexpected(
        ConfigError{path, 0, 0, fmt::format("cannot read file: {}", std::strerror(error))});
  };
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return unreadable(errno);
  std::string text;
  char buffer[16 * 1024];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, file)) > 0) text.append(buffer, n);
  const int read_error = std::ferror(file) ? errno : 0;
  std::fclose(file);
  if (read_error != 0) return unreadable(read_error);
  return load_string(text, path);
}

}  // namespace skiff::config
