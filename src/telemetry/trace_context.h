// TraceContext: the W3C Trace Context and B3 propagation formats, parsed and formatted. Pure: no
// I/O, no clock; ids come from a per-thread random generator (or a caller-supplied one in tests).
//
// skiff is one hop of a trace: it continues the caller's trace (or starts one), makes a new span
// id for its own span, and sends the upstream the same trace id with its own span as the parent.
// The caller's sampling decision is honoured; without one, skiff decides (|sample_rate|).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/block_cache.h"

namespace skiff::telemetry {

// Which headers a context came in (and so goes out) as.
enum class TraceFormat : uint8_t {
  kNone,      // no incoming context: skiff started the trace (sent out as W3C)
  kW3C,       // traceparent (+ tracestate)
  kB3Multi,   // X-B3-TraceId / X-B3-SpanId / X-B3-ParentSpanId / X-B3-Sampled / X-B3-Flags
  kB3Single,  // b3: {TraceId}-{SpanId}-{SamplingState}-{ParentSpanId}
};

struct TraceId {
  uint64_t high = 0;  // zero for a 64-bit B3 trace id
  uint64_t low = 0;
  bool valid() const { return high != 0 || low != 0; }
  std::string hex() const;  // 32 lowercase hex digits (a 64-bit B3 id is left-padded with 0s)
  bool operator==(const TraceId&) const = default;
};

// One incoming request header (name lower-case, as HTTP/2 delivers it).
struct HeaderRef {
  std::string_view name;
  std::string_view value;
};

// Every traced call makes a request id and the outgoing headers' values, so these strings live in
// the worker's block cache rather than malloc's arena.
using TraceString = std::basic_string<char, std::char_traits<char>, base::CacheAllocator<char>>;

struct TraceContext {
  TraceFormat format = TraceFormat::kNone;
  TraceId trace_id;
  uint64_t parent_span_id = 0;  // the caller's span (0: this hop is the root)
  uint64_t span_id = 0;         // this hop's span: what the upstream sees as its parent
  bool sampled = false;
  bool debug = false;      // B3 "d" / X-B3-Flags: 1 (implies sampled)
  std::string tracestate;  // W3C tracestate, passed on unchanged
  TraceString request_id;  // x-request-id: the caller's, or generated (UUID v4)
  bool b3_128 = true;      // B3 trace id was 128-bit (echoed in the same width)

  std::string span_id_hex() const;         // 16 hex digits
  std::string parent_span_id_hex() const;  // 16 hex digits, or "" for a root span
};

// 64 random bits, never 0. Per-thread generator (seeded from std::random_device).
uint64_t random_id();

// Continues the trace in |headers| (W3C first, then B3 single, then B3 multi; a malformed header
// is ignored as if absent, per the W3C spec), or starts one. Always assigns a new span_id via
// |next_id| (random_id when empty). When no incoming decision exists, the call is sampled with
// probability |sample_rate| (0..1) using |next_id| as the coin. x-request-id is kept when
// present and non-empty, else generated as a UUID v4 from |next_id|.
TraceContext continue_or_start(const std::vector<HeaderRef>& headers, double sample_rate,
                               const std::function<uint64_t()>& next_id = {});

// True for the request headers continue_or_start reads and outgoing_headers rewrites (the
// proxy drops these from the forwarded request and appends outgoing_headers instead).
bool is_trace_header(std::string_view lower_case_name);

// The headers to send upstream for |ctx|: the same format as came in (kNone -> W3C), with
// |ctx.span_id| as the parent, plus x-request-id. Names are lower-case literals.
struct OutgoingHeader {
  std::string_view name;
  TraceString value;
};
using OutgoingHeaders = std::vector<OutgoingHeader, base::CacheAllocator<OutgoingHeader>>;
OutgoingHeaders outgoing_headers(const TraceContext& ctx);

}  // namespace skiff::telemetry
