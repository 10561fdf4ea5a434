// TraceContext: parses W3C traceparent/tracestate and B3 (single and multi) request headers into
// one hop's context, and formats the headers that carry it upstream. Never throws: every byte
// comes from the network, so a malformed header is treated as absent.
#include "telemetry/trace_context.h"

#include <bit>
#include <cstddef>
#include <cstring>
#include <random>

#include "base/splitmix.h"

namespace skiff::telemetry {
namespace {

// W3C traceparent layout: "vv-<32 hex>-<16 hex>-ff" is 55 characters for every version.
constexpr size_t kTraceparentLength = 55;
// A longer caller-supplied x-request-id is replaced: it is copied into logs and upstream calls.
constexpr size_t kMaxRequestIdLength = 256;
// |next_id| redraws before falling back to random_id(); only a broken generator returns 0 this
// often, and looping forever on it would hang the worker.
constexpr int kMaxZeroDraws = 8;

// Writes the 8 lower-case hex digits of |v| to |p|, most significant first. Every call formats
// about 80 digits of ids, so without a loop or a table: the nibbles are spread one per byte, the
// bytes put in string order, and each turned into its digit with the other seven at once.
void write_hex8(char* p, uint32_t v) {
  uint64_t x = v;
  x = (x | (x << 16)) & 0x0000ffff0000ffffULL;
  x = (x | (x << 8)) & 0x00ff00ff00ff00ffULL;
  // Byte i now holds nibble i, the least significant first.
  x = (x | (x << 4)) & 0x0f0f0f0f0f0f0f0fULL;
  if constexpr (std::endian::native == std::endian::little) x = std::byteswap(x);
  // A nibble of 10 or more gets 'a' - '0' - 10 more than '0' + nibble.
  const uint64_t letters = ((x + 0x0606060606060606ULL) >> 4) & 0x0101010101010101ULL;
  x += 0x3030303030303030ULL + letters * ('a' - '0' - 10);
  std::memcpy(p, &x, sizeof x);
}

// Writes the 16 hex digits of |v| and returns the end.
char* write_hex16(char* p, uint64_t v) {
  write_hex8(p, static_cast<uint32_t>(v >> 32));
  write_hex8(p + 8, static_cast<uint32_t>(v));
  return p + 16;
}

// Appends the low |digits| (1..16) hex digits of |v|, most significant first, lower-case.
template <typename String>
void append_hex(String& out, uint64_t v, int digits) {
  char all[16];
  write_hex16(all, v);
  out.append(all + 16 - digits, static_cast<size_t>(digits));
}

// Each byte's hex digit value: 0-15 for '0'-'9' and 'a'-'f', that value plus kUpper for 'A'-'F',
// kNotHex for anything else. Ids are parsed on every traced call (about 50 digits of a
// traceparent): a lookup per digit, and one check per id, not per digit.
constexpr uint8_t kUpper = 0x40;
constexpr uint8_t kNotHex = 0x80;
constexpr std::array<uint8_t, 256> kHexDigit = [] {
  std::array<uint8_t, 256> t{};
  t.fill(kNotHex);
  for (int c = '0'; c <= '9'; ++c) t[c] = static_cast<uint8_t>(c - '0');
  for (int c = 'a'; c <= 'f'; ++c) t[c] = static_cast<uint8_t>(c - 'a' + 10);
  for (int c = 'A'; c <= 'F'; ++c) t[c] = static_cast<uint8_t>((c - 'A' + 10) | kUpper);
  return t;
}();

// Parses 1..16 hex digits (nothing else) into |out|.
bool parse_hex64(std::string_view s, bool allow_upper, uint64_t& out) {
  if (s.empty() || s.size() > 16) return false;
  uint64_t v = 0;
  uint8_t seen = 0;  // the flags of every digit
  for (char c : s) {
    const uint8_t d = kHexDigit[static_cast<unsigned char>(c)];
    seen |= d;
    v = (v << 4) | (d & 0x0f);
  }
  const uint8_t rejected = allow_upper ? kNotHex : (kNotHex | kUpper);
  if ((seen & rejected) != 0) return false;
  out = v;
  return true;
}

// A 16-hex span id, non-zero.
bool parse_span_id(std::string_view s, bool allow_upper, uint64_t& out) {
  return s.size() == 16 && parse_hex64(s, allow_upper, out) && out != 0;
}

// A B3 trace id: 16 or 32 hex digits (either case), not all zero. Sets |is_128|.
bool parse_b3_trace_id(std::string_view s, TraceId& out, bool& is_128) {
  TraceId id;
  if (s.size() == 32) {
    if (!parse_hex64(s.substr(0, 16), true, id.high) || !parse_hex64(s.substr(16), true, id.low)) {
      return false;
    }
    is_128 = true;
  } else if (s.size() == 16) {
    if (!parse_hex64(s, true, id.low)) return false;
    is_128 = false;
  } else {
    return false;
  }
  if (!id.valid()) return false;
  out = id;
  return true;
}

// Strips HTTP optional whitespace (SP / HTAB) from both ends.
std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A caller's sampling decision (B3 may carry one without ids).
struct Decision {
  bool sampled = false;
  bool debug = false;
};

// The ids and decision one incoming format carried.
struct Incoming {
  TraceFormat format = TraceFormat::kNone;
  TraceId trace_id;
  uint64_t span_id = 0;  // the caller's span: becomes this hop's parent
  bool b3_128 = true;
  std::optional<Decision> decision;
};

// traceparent per W3C Trace Context level 1, section 3.2 (lower-case hex only).
std::optional<Incoming> parse_traceparent(std::string_view v) {
  v = trim_ows(v);
  if (v.size() < kTraceparentLength) return std::nullopt;
  uint64_t version = 0;
  if (!parse_hex64(v.substr(0, 2), false, version) || version == 0xff) return std::nullopt;
  // Version 00 is exactly 55 characters; a later version may append fields after a '-'.
  if (version == 0 && v.size() != kTraceparentLength) return std::nullopt;
  if (v.size() > kTraceparentLength && v[kTraceparentLength] != '-') return std::nullopt;
  if (v[2] != '-' || v[35] != '-' || v[52] != '-') return std::nullopt;

  Incoming in;
  in.format = TraceFormat::kW3C;
  uint64_t flags = 0;
  if (!parse_hex64(v.substr(3, 16), false, in.trace_id.high) ||
      !parse_hex64(v.substr(19, 16), false, in.trace_id.low) || !in.trace_id.valid() ||
      !parse_span_id(v.substr(36, 16), false, in.span_id) ||
      !parse_hex64(v.substr(53, 2), false, flags)) {
    return std::nullopt;
  }
  in.decision = Decision{.sampled = (flags & 0x01) != 0, .debug = false};
  return in;
}

// A B3 SamplingState: "1", "0" or "d" (debug).
std::optional<Decision> parse_b3_sampling_state(std::string_view s) {
  if (s == "1") return Decision{.sampled = true, .debug = false};
  if (s == "0") return Decision{.sampled = false, .debug = false};
  if (s == "d") return Decision{.sampled = true, .debug = true};
  return std::nullopt;
}

// b3: {TraceId}-{SpanId}[-{SamplingState}[-{ParentSpanId}]] or {SamplingState} alone (then
// the result has a decision but format kNone: no ids to continue).
std::optional<Incoming> parse_b3_single(std::string_view v) {
  v = trim_ows(v);
  Incoming in;
  if (v.find('-') == std::string_view::npos) {
    in.decision = parse_b3_sampling_state(v);
    if (!in.decision) return std::nullopt;
    return in;
  }

  std::string_view fields[4];
  size_t n = 0;
  while (true) {
    if (n == 4) return std::nullopt;  // a fifth field
    size_t dash = v.find('-');
    fields[n++] = v.substr(0, dash);
    if (dash == std::string_view::npos) break;
    v.remove_prefix(dash + 1);
  }
  // n >= 2 here: a '-' was seen.
  if (!parse_b3_trace_id(fields[0], in.trace_id, in.b3_128) ||
      !parse_span_id(fields[1], true, in.span_id)) {
    return std::nullopt;
  }
  if (n >= 3) {
    in.decision = parse_b3_sampling_state(fields[2]);
    if (!in.decision) return std::nullopt;
  }
  if (n == 4) {
    // The caller's parent is not used (this hop's parent is the caller's span), but a
    // malformed one makes the header malformed.
    uint64_t parent = 0;
    if (!parse_span_id(fields[3], true, parent)) return std::nullopt;
  }
  in.format = TraceFormat::kB3Single;
  return in;
}

// The B3 multi headers seen (first of each).
struct B3MultiHeaders {
  std::optional<std::string_view> trace_id;
  std::optional<std::string_view> span_id;
  std::optional<std::string_view> sampled;
  std::optional<std::string_view> flags;
};

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char c = a[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != b[i]) return false;
  }
  return true;
}

// X-B3-*: ids when both trace and span id are well-formed (format kB3Multi); a decision from
// X-B3-Flags: 1 (debug) or X-B3-Sampled, with or without ids. X-B3-ParentSpanId is not read:
// this hop's parent is the caller's span.
std::optional<Incoming> parse_b3_multi(const B3MultiHeaders& h) {
  Incoming in;
  if (h.trace_id && h.span_id && parse_b3_trace_id(trim_ows(*h.trace_id), in.trace_id, in.b3_128) &&
      parse_span_id(trim_ows(*h.span_id), true, in.span_id)) {
    in.format = TraceFormat::kB3Multi;
  } else {
    in = Incoming{};  // drop any half-parsed id
  }
  if (h.flags && trim_ows(*h.flags) == "1") {
    in.decision = Decision{.sampled = true, .debug = true};
  } else if (h.sampled) {
    std::string_view s = trim_ows(*h.sampled);
    if (s == "1" || iequals(s, "true")) {
      in.decision = Decision{.sampled = true, .debug = false};
    } else if (s == "0" || iequals(s, "false")) {
      in.decision = Decision{.sampled = false, .debug = false};
    }
  }
  if (in.format == TraceFormat::kNone && !in.decision) return std::nullopt;
  return in;
}

// Draws from |next_id| (random_id when empty) until non-zero.
uint64_t draw_nonzero(const std::function<uint64_t()>& next_id) {
  if (next_id) {
    for (int i = 0; i < kMaxZeroDraws; ++i) {
      if (uint64_t v = next_id(); v != 0) return v;
    }
  }
  return random_id();
}

uint64_t draw(const std::function<uint64_t()>& next_id) {
  return next_id ? next_id() : random_id();
}

// True with probability |rate|: the top 53 bits of a draw as a double in [0, 1). Rate 0 (or NaN)
// is never, rate 1 always.
bool sample_coin(double rate, const std::function<uint64_t()>& next_id) {
  double u = static_cast<double>(draw(next_id) >> 11) * 0x1.0p-53;
  return u < rate;
}

// A random (version 4, variant 10xx) UUID, lower-case 8-4-4-4-12.
TraceString make_uuid_v4(const std::function<uint64_t()>& next_id) {
  uint64_t hi = draw(next_id);
  uint64_t lo = draw(next_id);
  hi = (hi & ~uint64_t{0xf000}) | uint64_t{0x4000};            // version 4
  lo = (lo & ~(uint64_t{0x3} << 62)) | (uint64_t{0x2} << 62);  // variant 10xx
  char digits[32];
  write_hex16(write_hex16(digits, hi), lo);
  // 8-4-4-4-12 of the 32 digits.
  TraceString out(36, '-');
  std::memcpy(&out[0], digits, 8);
  std::memcpy(&out[9], digits + 8, 4);
  std::memcpy(&out[14], digits + 12, 4);
  std::memcpy(&out[19], digits + 16, 4);
  std::memcpy(&out[24], digits + 20, 12);
  return out;
}

std::string b3_trace_id_hex(const TraceContext& ctx) {
  if (ctx.b3_128) return ctx.trace_id.hex();
  std::string out;
  out.reserve(16);
  append_hex(out, ctx.trace_id.low, 16);
  return out;
}

}  // namespace

std::string TraceId::hex() const {
  std::string out;
  out.reserve(32);
  append_hex(out, high, 16);
  append_hex(out, low, 16);
  return out;
}

std::string TraceContext::span_id_hex() const {
  std::string out;
  out.reserve(16);
  append_hex(out, span_id, 16);
  return out;
}

std::string TraceContext::parent_span_id_hex() const {
  if (parent_span_id == 0) return {};
  std::string out;
  out.reserve(16);
  append_hex(out, parent_span_id, 16);
  return out;
}

namespace {

// xoshiro256** (Blackman and Vigna): ids need to be unpredictable enough to not collide, not
// secret, and every traced call draws about five. Constant-initialised per thread (a plain TLS
// access, no guard) and seeded from std::random_device on the thread's first draw.
struct IdGenerator {
  uint64_t s[4];
  bool seeded;

  uint64_t next() {
    if (!seeded) seed();
    const uint64_t result = std::rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = std::rotl(s[3], 45);
    return result;
  }

  void seed() {
    std::random_device rd;
    // splitmix64 spreads the device's words over the state (which must not be all zero).
    uint64_t x = (uint64_t{rd()} << 32) ^ rd();
    for (uint64_t& word : s) word = base::splitmix64_next(x) ^ ((uint64_t{rd()} << 32) ^ rd());
    if ((s[0] | s[1] | s[2] | s[3]) == 0) s[0] = 1;
    seeded = true;
  }
};

thread_local IdGenerator tls_ids{};

}  // namespace

uint64_t random_id() {
  uint64_t v = 0;
  while (v == 0) v = tls_ids.next();
  return v;
}

TraceContext continue_or_start(const std::vector<HeaderRef>& headers, double sample_rate,
                               const std::function<uint64_t()>& next_id) {
  // One pass to find the headers; parsing happens only for the formats that are needed.
  std::optional<std::string_view> traceparent;
  size_t traceparent_count = 0;
  bool has_tracestate = false;
  std::optional<std::string_view> b3;
  B3MultiHeaders b3_multi;
  std::string_view request_id;
  for (const HeaderRef& h : headers) {
    if (h.name == "traceparent") {
      if (traceparent_count++ == 0) traceparent = h.value;
    } else if (h.name == "tracestate") {
      has_tracestate = true;
    } else if (h.name == "b3") {
      if (!b3) b3 = h.value;
    } else if (h.name == "x-b3-traceid") {
      if (!b3_multi.trace_id) b3_multi.trace_id = h.value;
    } else if (h.name == "x-b3-spanid") {
      if (!b3_multi.span_id) b3_multi.span_id = h.value;
    } else if (h.name == "x-b3-sampled") {
      if (!b3_multi.sampled) b3_multi.sampled = h.value;
    } else if (h.name == "x-b3-flags") {
      if (!b3_multi.flags) b3_multi.flags = h.value;
    } else if (h.name == "x-request-id") {
      if (request_id.empty()) request_id = h.value;
    }
  }

  // Precedence: W3C, then b3, then X-B3-*. Two traceparent headers are ambiguous, so neither
  // is used (as the W3C test suite expects).
  std::optional<Incoming> in;
  if (traceparent_count == 1) in = parse_traceparent(*traceparent);
  // A B3 decision without ids is kept in case no format carries ids.
  std::optional<Incoming> decision_only;
  if (!in && b3) {
    if (auto single = parse_b3_single(*b3)) {
      if (single->format != TraceFormat::kNone) {
        in = single;
      } else {
        single->format = TraceFormat::kB3Single;
        decision_only = single;
      }
    }
  }
  if (!in) {
    if (auto multi = parse_b3_multi(b3_multi)) {
      if (multi->format != TraceFormat::kNone) {
        in = multi;
      } else if (!decision_only) {
        multi->format = TraceFormat::kB3Multi;
        decision_only = multi;
      }
    }
  }

  TraceContext ctx;
  std::optional<Decision> decision;
  if (in) {
    // Continue the caller's trace: its span is this hop's parent.
    ctx.format = in->format;
    ctx.trace_id = in->trace_id;
    ctx.parent_span_id = in->span_id;
    ctx.b3_128 = in->b3_128;
    decision = in->decision;
    ctx.span_id = draw_nonzero(next_id);
  } else {
    // Start a trace; a B3 decision without ids keeps its format so B3 systems downstream see it.
    if (decision_only) {
      ctx.format = decision_only->format;
      decision = decision_only->decision;
    }
    ctx.trace_id.high = draw_nonzero(next_id);
    ctx.trace_id.low = draw_nonzero(next_id);
    ctx.span_id = draw_nonzero(next_id);
  }
  if (decision) {
    ctx.sampled = decision->sampled;
    ctx.debug = decision->debug;
  } else {
    ctx.sampled = sample_coin(sample_rate, next_id);
  }

  if (ctx.format == TraceFormat::kW3C && has_tracestate) {
    // Several tracestate headers are one list (RFC 9110 field combination); empty ones add
    // nothing. Each value is otherwise passed on unchanged.
    for (const HeaderRef& h : headers) {
      if (h.name != "tracestate") continue;
      std::string_view v = trim_ows(h.value);
      if (v.empty()) continue;
      if (!ctx.tracestate.empty()) ctx.tracestate.push_back(',');
      ctx.tracestate.append(v);
    }
  }

  if (!request_id.empty() && request_id.size() <= kMaxRequestIdLength) {
    ctx.request_id.assign(request_id);
  } else {
    ctx.request_id = make_uuid_v4(next_id);
  }
  return ctx;
}

bool is_trace_header(std::string_view lower_case_name) {
  // Asked twice for every header of every traced call: one switch on the length first, so most
  // names cost no compare at all.
  const std::string_view n = lower_case_name;
  switch (n.size()) {
    case 2:
      return n == "b3";
    case 10:
      return n == "tracestate" || n == "x-b3-flags";
    case 11:
      return n == "traceparent" || n == "x-b3-spanid";
    case 12:
      return n == "x-b3-traceid" || n == "x-b3-sampled" || n == "x-request-id";
    case 17:
      return n == "x-b3-parentspanid";
    default:
      return false;
  }
}

OutgoingHeaders outgoing_headers(const TraceContext& ctx) {
  OutgoingHeaders out;
  out.reserve(5);
  auto text = [](std::string_view v) { return TraceString(v); };
  switch (ctx.format) {
    case TraceFormat::kNone:
    case TraceFormat::kW3C: {
      // Always version 00: a later version's extra fields are not understood, so not forwarded.
      TraceString v(kTraceparentLength, '-');
      char* p = v.data();
      p[0] = p[1] = '0';
      p = write_hex16(p + 3, ctx.trace_id.high);
      p = write_hex16(p, ctx.trace_id.low);
      p = write_hex16(p + 1, ctx.span_id);
      p[1] = '0';
      p[2] = ctx.sampled ? '1' : '0';
      out.push_back({"traceparent", std::move(v)});
      if (!ctx.tracestate.empty()) out.push_back({"tracestate", text(ctx.tracestate)});
      break;
    }
    case TraceFormat::kB3Single: {
      TraceString v = text(b3_trace_id_hex(ctx));
      v.reserve(v.size() + 36);
      v.push_back('-');
      append_hex(v, ctx.span_id, 16);
      v.append(ctx.debug ? "-d" : ctx.sampled ? "-1" : "-0");
      if (ctx.parent_span_id != 0) {
        v.push_back('-');
        append_hex(v, ctx.parent_span_id, 16);
      }
      out.push_back({"b3", std::move(v)});
      break;
    }
    case TraceFormat::kB3Multi:
      out.push_back({"x-b3-traceid", text(b3_trace_id_hex(ctx))});
      out.push_back({"x-b3-spanid", text(ctx.span_id_hex())});
      if (ctx.parent_span_id != 0) {
        out.push_back({"x-b3-parentspanid", text(ctx.parent_span_id_hex())});
      }
      // Debug implies sampled, and B3 says not to send both.
      if (ctx.debug) {
        out.push_back({"x-b3-flags", text("1")});
      } else {
        out.push_back({"x-b3-sampled", text(ctx.sampled ? "1" : "0")});
      }
      break;
  }
  // continue_or_start always sets a request id; a hand-built context without one sends none
  // rather than an empty header.
  if (!ctx.request_id.empty()) out.push_back({"x-request-id", text(ctx.request_id)});
  return out;
}

}  // namespace skiff::telemetry
