// Tests for telemetry/trace_context: W3C and B3 parsing, precedence, sampling, request ids and
// the outgoing headers, with a deterministic id sequence in place of the random generator.
#include "telemetry/trace_context.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace skiff::telemetry {
namespace {

constexpr std::string_view kTrace = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr uint64_t kTraceHigh = 0x4bf92f3577b34da6;
constexpr uint64_t kTraceLow = 0xa3ce929d0e0e4736;
constexpr std::string_view kSpan = "00f067aa0ba902b7";
constexpr uint64_t kSpanValue = 0x00f067aa0ba902b7;
constexpr std::string_view kParent = "1234567890abcdef";

// Ids from the sequence start here, so each draw is recognisable.
constexpr uint64_t kFirstId = 0x1000;

// Returns |values| in order, then kFirstId, kFirstId + 1, ... Counts draws in |*draws|.
std::function<uint64_t()> sequence(std::vector<uint64_t> values = {}, int* draws = nullptr) {
  size_t i = 0;
  uint64_t next = kFirstId;
  return [values = std::move(values), i, next, draws]() mutable -> uint64_t {
    if (draws != nullptr) ++*draws;
    if (i < values.size()) return values[i++];
    return next++;
  };
}

std::string str(std::string_view s) { return std::string(s); }

std::string traceparent(std::string_view flags = "01") {
  return "00-" + str(kTrace) + "-" + str(kSpan) + "-" + str(flags);
}

// The value of |name| in |headers|, or nullopt; fails the test if it appears twice.
std::optional<std::string> find(const OutgoingHeaders& headers, std::string_view name) {
  std::optional<std::string> found;
  for (const OutgoingHeader& h : headers) {
    if (h.name != name) continue;
    EXPECT_FALSE(found.has_value()) << "duplicate " << name;
    found = std::string(h.value);
  }
  return found;
}

// The outgoing headers as incoming ones (the next hop's view); they point into |out|.
std::vector<HeaderRef> as_incoming(const OutgoingHeaders& out) {
  std::vector<HeaderRef> in;
  for (const OutgoingHeader& h : out) in.push_back({h.name, h.value});
  return in;
}

bool is_lower_hex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool is_uuid_v4(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash != (s[i] == '-')) return false;
    if (!dash && !is_lower_hex(s.substr(i, 1))) return false;
  }
  return s[14] == '4' && (s[19] == '8' || s[19] == '9' || s[19] == 'a' || s[19] == 'b');
}

// --- TraceId / TraceContext formatting -------------------------------------------------------

TEST(TraceId, HexIs32LowerCaseDigitsLeftPadded) {
  EXPECT_EQ((TraceId{kTraceHigh, kTraceLow}.hex()), kTrace);
  EXPECT_EQ((TraceId{0, 0xab}.hex()), "000000000000000000000000000000ab");
  EXPECT_FALSE(TraceId{}.valid());
  EXPECT_TRUE((TraceId{0, 1}.valid()));
  EXPECT_TRUE((TraceId{1, 0}.valid()));
}

TEST(TraceContext, SpanIdHex) {
  TraceContext ctx;
  ctx.span_id = 0xab;
  EXPECT_EQ(ctx.span_id_hex(), "00000000000000ab");
  EXPECT_EQ(ctx.parent_span_id_hex(), "");
  ctx.parent_span_id = 0xFEDCBA9876543210;
  EXPECT_EQ(ctx.parent_span_id_hex(), "fedcba9876543210");
}

// --- W3C traceparent -------------------------------------------------------------------------

TEST(TraceW3C, ValidTraceparentIsContinued) {
  std::string tp = traceparent("01");
  TraceContext ctx = continue_or_start({{"traceparent", tp}}, 0.0, sequence());
  EXPECT_EQ(ctx.format, TraceFormat::kW3C);
  EXPECT_EQ(ctx.trace_id, (TraceId{kTraceHigh, kTraceLow}));
  EXPECT_EQ(ctx.parent_span_id, kSpanValue);
  EXPECT_EQ(ctx.span_id, kFirstId);
  EXPECT_TRUE(ctx.sampled);  // the caller's decision, though the rate is 0
  EXPECT_FALSE(ctx.debug);
  EXPECT_TRUE(ctx.tracestate.empty());
}

TEST(TraceW3C, FlagsBitZeroIsSampledOtherBitsIgnored) {
  std::string not_sampled = traceparent("00");
  EXPECT_FALSE(continue_or_start({{"traceparent", not_sampled}}, 1.0, sequence()).sampled);
  std::string sampled_random = traceparent("03");
  TraceContext ctx = continue_or_start({{"traceparent", sampled_random}}, 0.0, sequence());
  EXPECT_EQ(ctx.format, TraceFormat::kW3C);
  EXPECT_TRUE(ctx.sampled);
  std::string other_bit = traceparent("fe");
  ctx = continue_or_start({{"traceparent", other_bit}}, 1.0, sequence());
  EXPECT_EQ(ctx.format, TraceFormat::kW3C);
  EXPECT_FALSE(ctx.sampled);
}

TEST(TraceW3C, OptionalWhitespaceAroundValueIsAccepted) {
  for (std::string v : {" " + traceparent(), "\t" + traceparent(), traceparent() + " \t",
                        "\t " + traceparent() + " "}) {
    TraceContext ctx = continue_or_start({{"traceparent", v}}, 0.0, sequence());
    EXPECT_EQ(ctx.format, TraceFormat::kW3C) << "'" << v << "'";
    EXPECT_EQ(ctx.trace_id.hex(), kTrace);
  }
}

class InvalidTraceparent : public testing::TestWithParam<std::string> {};

TEST_P(InvalidTraceparent, IsIgnoredWithItsTracestate) {
  std::string tp = GetParam();
  TraceContext ctx =
      continue_or_start({{"traceparent", tp}, {"tracestate", "foo=1"}}, 1.0, sequence({7, 8, 9}));
  EXPECT_EQ(ctx.format, TraceFormat::kNone) << tp;
  EXPECT_EQ(ctx.trace_id, (TraceId{7, 8})) << tp;  // a new trace
  EXPECT_EQ(ctx.parent_span_id, 0u);
  EXPECT_EQ(ctx.span_id, 9u);
  EXPECT_TRUE(ctx.tracestate.empty());
}

INSTANTIATE_TEST_SUITE_P(
    TraceW3C, InvalidTraceparent,
    testing::Values(
        // Lengths.
        "", "00", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-001",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  // version 00: exactly 55
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",         // trace id too short
        "00-4bf92f3577b34da6a3ce929d0e0e47361-00f067aa0ba902b7-01",       // trace id too long
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",         // parent id too short
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b77-01",       // parent id too long
        "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",         // version too short
        "000-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",       // version too long
        // Upper-case hex is not allowed anywhere.
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
        "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        // Version ff is forbidden.
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        // All-zero ids.
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        // Illegal characters and separators.
        ".0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-.bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473.-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-.0f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-.1",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
        "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\x01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0\xb1",  // a byte above 0x7f
        "00-4bf92f3577b34da6a3ce929d0e0e4736-\3010f067aa0ba902b7-01",  // octal 301
        // Future version: anything after the flags must start with '-'.
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.what-the-future-will-be-like",
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0"));

TEST(TraceW3C, FutureVersionIsContinuedAndSentAsVersion00) {
  for (std::string_view tp :
       {"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-will-be-like",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-"}) {
    TraceContext ctx = continue_or_start({{"traceparent", tp}}, 0.0, sequence());
    ASSERT_EQ(ctx.format, TraceFormat::kW3C) << tp;
    EXPECT_EQ(ctx.trace_id.hex(), kTrace);
    EXPECT_EQ(ctx.parent_span_id, kSpanValue);
    EXPECT_TRUE(ctx.sampled);
    EXPECT_EQ(find(outgoing_headers(ctx), "traceparent"),
              "00-" + str(kTrace) + "-" + ctx.span_id_hex() + "-01");
  }
}

TEST(TraceW3C, TwoTraceparentHeadersAreIgnored) {
  std::string a = traceparent("01");
  std::string b = "00-12345678901234567890123456789012-1234567890123456-01";
  TraceContext ctx = continue_or_start(
      {{"traceparent", a}, {"traceparent", b}, {"tracestate", "foo=1"}}, 0.0, sequence({7, 8}));
  EXPECT_EQ(ctx.format, TraceFormat::kNone);
  EXPECT_EQ(ctx.trace_id, (TraceId{7, 8}));
  EXPECT_TRUE(ctx.tracestate.empty());
}

// --- W3C tracestate --------------------------------------------------------------------------

TEST(TraceW3C, TracestateIsPassedThroughUnchanged) {
  std::string tp = traceparent();
  std::string_view ts = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7, x=y ";
  TraceContext ctx = continue_or_start({{"tracestate", ts}, {"traceparent", tp}}, 0.0, sequence());
  EXPECT_EQ(ctx.tracestate, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7, x=y");
  auto out = outgoing_headers(ctx);
  EXPECT_EQ(find(out, "tracestate"), ctx.tracestate);
}

TEST(TraceW3C, SeveralTracestateHeadersAreJoinedWithCommas) {
  std::string tp = traceparent();
  TraceContext ctx = continue_or_start({{"tracestate", "a=1,b=2"},
                                        {"traceparent", tp},
                                        {"tracestate", ""},
                                        {"tracestate", "c=3"},
                                        {"tracestate", "d=4"}},
                                       0.0, sequence());
  EXPECT_EQ(ctx.tracestate, "a=1,b=2,c=3,d=4");
}

TEST(TraceW3C, EmptyTracestateIsNotSent) {
  std::string tp = traceparent();
  TraceContext ctx = continue_or_start({{"traceparent", tp}, {"tracestate", ""}}, 0.0, sequence());
  EXPECT_EQ(ctx.tracestate, "");
  EXPECT_EQ(find(outgoing_headers(ctx), "tracestate"), std::nullopt);
}

TEST(TraceW3C, TracestateWithoutTraceparentIsIgnored) {
  TraceContext ctx = continue_or_start({{"tracestate", "foo=1"}}, 0.0, sequence());
  EXPECT_EQ(ctx.format, TraceFormat::kNone);
  EXPECT_TRUE(ctx.tracestate.empty());
}

TEST(TraceW3C, TracestateIsNotTakenIntoB3) {
  std::string b3 = str(kTrace) + "-" + str(kSpan) + "-1";
  TraceContext ctx = continue_or_start({{"b3", b3}, {"tracestate", "foo=1"}}, 0.0, sequence());
  EXPECT_EQ(ctx.format, TraceFormat::kB3Single);
  EXPECT_TRUE(ctx.tracestate.empty());
}

// --- B3 single -------------------------------------------------------------------------------

TEST(TraceB3Single, TraceIdAndSpanIdWithoutDecisionUsesTheRate) {
  std::string b3 = str(kTrace) + "-" + str(kSpan);
  TraceContext ctx = continue_or_start({{"b3", b3}}, 1.0, sequence());
  EXPECT_EQ(ctx.format, TraceFormat::kB3Single);
  EXPECT_EQ(ctx.trace_id, (TraceId{kTraceHigh, kTraceLow}));
  EXPECT_TRUE(ctx.b3_128);
  EXPECT_EQ(ctx.parent_span_id, kSpanValue);
  EXPECT_EQ(ctx.span_id, kFirstId);
  EXPECT_TRUE(ctx.sampled);
  EXPECT_FALSE(ctx.debug);
  EXPECT_FALSE(continue_or_start({{"b3", b3}}, 0.0, sequence()).sampled);
}

TEST(TraceB3Single, SamplingStateIsHonoured) {
  std::string base = str(kTrace) + "-" + str(kSpan);
  std::string sampled = base + "-1";
  std::string unsampled = base + "-0";
  std::string debug = base + "-d";

  TraceContext ctx = continue_or_start({{"b3", sampled}}, 0.0, sequence());
  EXPECT_EQ(ctx.format, TraceFormat::kB3Single);
  EXPECT_TRUE(ctx.sampled);
  EXPECT_FALSE(ctx.debug);

  ctx = continue_or_start({{"b3", unsampled}}, 1.0, sequence());
  EXPECT_EQ(ctx.format, TraceFormat::kB3Single);
  EXPECT_FALSE(ctx.sampled);

  ctx = continue_or_start({{"b3", debug}}, 0.0, sequence());
  EXPECT_EQ(ctx.format, TraceFormat::kB3Single);
  EXPECT_TRUE(ctx.sampled);
  EXPECT_TRUE(ctx.debug);
}

TEST(TraceB3Single, FourFieldsContinueFromTheCallersSpan) {
  std::string b3 = str(kTrace) + "-" + str(kSpan) + "-1-" + str(kParent);
  TraceContext ctx = continue_or_start({{"b3", b3}}, 0.0, sequence());
  EXPECT_EQ(ctx.format, TraceFormat::kB3Single);
  EXPECT_EQ(ctx.parent_span_id, kSpanValue);  // the caller's span, not the caller's parent
  EXPECT_EQ(ctx.span_id, kFirstId);
  EXPECT_TRUE(ctx.sampled);
}

TEST(TraceB3Single, SixtyFourBitTraceIdKeepsItsWidth) {
  std::string b3 = "a3ce929d0e0e4736-" + str(kSpan) + "-1";
  TraceContext ctx = continue_or_start({{"b3", b3}}, 0.0, sequence());
  EXPECT_EQ(ctx.format, TraceFormat::kB3Single);
  EXPECT_FALSE(ctx.b3_128);
  EXPECT_EQ(ctx.trace_id, (TraceId{0, kTraceLow}));
  EXPECT_EQ(find(outgoing_headers(ctx), "b3"),
            "a3ce929d0e0e4736-" + ctx.span_id_hex() + "-1-" + str(kSpan));
}

TEST(TraceB3Single, UpperCaseHexIsAcceptedAndSentLowerCase) {
  std::string b3 = "4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-1";
  TraceContext ctx = continue_or_start({{"b3", b3}}, 0.0, sequence());
  EXPECT_EQ(ctx.format, TraceFormat::kB3Single);
  EXPECT_EQ(ctx.trace_id.hex(), kTrace);
  EXPECT_EQ(ctx.parent_span_id, kSpanValue);
  EXPECT_EQ(find(outgoing_headers(ctx), "b3"),
            str(kTrace) + "-" + ctx.span_id_hex() + "-1-" + str(kSpan));
}

TEST(TraceB3Single, SamplingStateAloneStartsATraceWithThatDecision) {
  struct Case {
    std::string_view value;
    bool sampled;
    bool debug;
  };
  for (Case c : {Case{"0", false, false}, Case{"1", true, false}, Case{"d", true, true}}) {
    TraceContext ctx =
        continue_or_start({{"b3", c.value}}, c.sampled ? 0.0 : 1.0, sequence({7, 8, 9}));
    EXPECT_EQ(ctx.format, TraceFormat::kB3Single) << c.value;
    EXPECT_EQ(ctx.trace_id, (TraceId{7, 8}));
    EXPECT_TRUE(ctx.b3_128);
    EXPECT_EQ(ctx.parent_span_id, 0u);
    EXPECT_EQ(ctx.span_id, 9u);
    EXPECT_EQ(ctx.sampled, c.sampled) << c.value;
    EXPECT_EQ(ctx.debug, c.debug) << c.value;
    // Sent on as B3 so B3 systems upstream keep the decision; no parent for a root span.
    auto out = outgoing_headers(ctx);
    EXPECT_EQ(find(out, "b3"),
              "00000000000000070000000000000008-0000000000000009-" + str(c.value == "d" ? "d"
                                                                         : c.sampled    ? "1"
                                                                                        : "0"));
    EXPECT_EQ(find(out, "traceparent"), std::nullopt);
  }
}

class InvalidB3Single : public testing::TestWithParam<std::string> {};

TEST_P(InvalidB3Single, IsIgnored) {
  std::string b3 = GetParam();
  TraceContext ctx = continue_or_start({{"b3", b3}}, 1.0, sequence({7, 8, 9}));
  EXPECT_EQ(ctx.format, TraceFormat::kNone) << b3;
  EXPECT_EQ(ctx.trace_id, (TraceId{7, 8})) << b3;
  EXPECT_EQ(ctx.parent_span_id, 0u);
  EXPECT_TRUE(ctx.sampled);  // the coin at rate 1, no decision taken from the header
}

INSTANTIATE_TEST_SUITE_P(
    TraceB3Single, InvalidB3Single,
    testing::Values("", "-", "x", "true", "2", "D", "01",
                    "4bf92f3577b34da6a3ce929d0e0e4736",                         // no span
                    "4bf92f3577b34da6a3ce929d0e0e4736-",                        // empty span
                    "4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7",         // 31 hex
                    "4bf92f3577b34da6a3ce929d0e0e47361-00f067aa0ba902b7",       // 33 hex
                    "4bf92f3577b34da-00f067aa0ba902b7",                         // 15 hex
                    "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b",         // span 15
                    "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b77",       // span 17
                    "00000000000000000000000000000000-00f067aa0ba902b7-1",      // zero trace
                    "0000000000000000-00f067aa0ba902b7-1",                      // zero trace
                    "4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-1",      // zero span
                    "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-",       // empty state
                    "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-x",      // bad state
                    "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-true",   // bad state
                    "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1-",     // empty parent
                    "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1-123",  // short parent
                    "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1-zzzzzzzzzzzzzzzz",
                    "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1-1234567890abcdef-x",
                    "4bf92f3577b34da6a3ce929d0e0e4736-0x0067aa0ba902b7-1",
                    "4bf92f3577b34da6+3ce929d0e0e4736-00f067aa0ba902b7-1",
                    "4bf92f3577b34da6\3013ce929d0e0e4736-00f067aa0ba902b7-1"));

// --- B3 multi --------------------------------------------------------------------------------

TEST(TraceB3Multi, AllHeadersAreContinued) {
  TraceContext ctx = continue_or_start({{"x-b3-traceid", kTrace},
                                        {"x-b3-spanid", kSpan},
                                        {"x-b3-parentspanid", kParent},
                                        {"x-b3-sampled", "1"}},
                                       0.0, sequence());
  EXPECT_EQ(ctx.format, TraceFormat::kB3Multi);
  EXPECT_EQ(ctx.trace_id, (TraceId{kTraceHigh, kTraceLow}));
  EXPECT_TRUE(ctx.b3_128);
  EXPECT_EQ(ctx.parent_span_id, kSpanValue);
  EXPECT_EQ(ctx.span_id, kFirstId);
  EXPECT_TRUE(ctx.sampled);
  EXPECT_FALSE(ctx.debug);
}

TEST(TraceB3Multi, SampledAcceptsDigitsAndBooleans) {
  struct Case {
    std::string_view value;
    double rate;
    bool sampled;
  };
  for (Case c : {Case{"1", 0.0, true}, Case{"true", 0.0, true}, Case{"True", 0.0, true},
                 Case{"0", 1.0, false}, Case{"false", 1.0, false}, Case{"FALSE", 1.0, false}}) {
    TraceContext ctx = continue_or_start(
        {{"x-b3-traceid", kTrace}, {"x-b3-spanid", kSpan}, {"x-b3-sampled", c.value}}, c.rate,
        sequence());
    EXPECT_EQ(ctx.format, TraceFormat::kB3Multi) << c.value;
    EXPECT_EQ(ctx.sampled, c.sampled) << c.value;
  }
}

TEST(TraceB3Multi, UnknownSampledValueLeavesTheDecisionToTheRate) {
  for (std::string_view v : {"yes", "", "2", "d"}) {
    TraceContext ctx = continue_or_start(
        {{"x-b3-traceid", kTrace}, {"x-b3-spanid", kSpan}, {"x-b3-sampled", v}}, 1.0, sequence());
    EXPECT_EQ(ctx.format, TraceFormat::kB3Multi) << v;
    EXPECT_TRUE(ctx.sampled) << v;
    ctx = continue_or_start({{"x-b3-traceid", kTrace}, {"x-b3-spanid", kSpan}, {"x-b3-sampled", v}},
                            0.0, sequence());
    EXPECT_FALSE(ctx.sampled) << v;
  }
}

TEST(TraceB3Multi, FlagsOneIsDebugAndSampled) {
  TraceContext ctx = continue_or_start({{"x-b3-traceid", kTrace},
                                        {"x-b3-spanid", kSpan},
                                        {"x-b3-sampled", "0"},
                                        {"x-b3-flags", "1"}},
                                       0.0, sequence());
  EXPECT_EQ(ctx.format, TraceFormat::kB3Multi);
  EXPECT_TRUE(ctx.sampled);
  EXPECT_TRUE(ctx.debug);

  ctx = continue_or_start({{"x-b3-traceid", kTrace}, {"x-b3-spanid", kSpan}, {"x-b3-flags", "0"}},
                          0.0, sequence());
  EXPECT_FALSE(ctx.debug);
  EXPECT_FALSE(ctx.sampled);
}

TEST(TraceB3Multi, SixtyFourBitTraceIdRoundTrips) {
  TraceContext ctx = continue_or_start(
      {{"x-b3-traceid", "A3CE929D0E0E4736"}, {"x-b3-spanid", kSpan}, {"x-b3-sampled", "1"}}, 0.0,
      sequence());
  EXPECT_EQ(ctx.format, TraceFormat::kB3Multi);
  EXPECT_FALSE(ctx.b3_128);
  EXPECT_EQ(ctx.trace_id, (TraceId{0, kTraceLow}));
  auto out = outgoing_headers(ctx);
  EXPECT_EQ(find(out, "x-b3-traceid"), "a3ce929d0e0e4736");

  TraceContext next = continue_or_start(as_incoming(out), 0.0, sequence({42}));
  EXPECT_EQ(next.format, TraceFormat::kB3Multi);
  EXPECT_FALSE(next.b3_128);
  EXPECT_EQ(next.trace_id, ctx.trace_id);
  EXPECT_EQ(next.parent_span_id, ctx.span_id);
  EXPECT_EQ(find(outgoing_headers(next), "x-b3-traceid"), "a3ce929d0e0e4736");
}

TEST(TraceB3Multi, OneHundredTwentyEightBitIdWithZeroHighHalfKeepsItsWidth) {
  TraceContext ctx = continue_or_start(
      {{"x-b3-traceid", "0000000000000000a3ce929d0e0e4736"}, {"x-b3-spanid", kSpan}}, 0.0,
      sequence());
  EXPECT_EQ(ctx.format, TraceFormat::kB3Multi);
  EXPECT_TRUE(ctx.b3_128);
  EXPECT_EQ(find(outgoing_headers(ctx), "x-b3-traceid"), "0000000000000000a3ce929d0e0e4736");
}

TEST(TraceB3Multi, SampledAloneStartsATraceWithThatDecision) {
  TraceContext ctx = continue_or_start({{"x-b3-sampled", "0"}}, 1.0, sequence({7, 8, 9}));
  EXPECT_EQ(ctx.format, TraceFormat::kB3Multi);
  EXPECT_EQ(ctx.trace_id, (TraceId{7, 8}));
  EXPECT_EQ(ctx.parent_span_id, 0u);
  EXPECT_EQ(ctx.span_id, 9u);
  EXPECT_FALSE(ctx.sampled);

  ctx = continue_or_start({{"x-b3-flags", "1"}}, 0.0, sequence({7, 8, 9}));
  EXPECT_EQ(ctx.format, TraceFormat::kB3Multi);
  EXPECT_TRUE(ctx.sampled);
  EXPECT_TRUE(ctx.debug);
}

TEST(TraceB3Multi, MalformedIdsAreIgnoredButTheDecisionIsKept) {
  // Trace id without span id, a bad span id, and a zero trace id.
  for (std::vector<HeaderRef> headers :
       {std::vector<HeaderRef>{{"x-b3-traceid", kTrace}, {"x-b3-sampled", "0"}},
        std::vector<HeaderRef>{
            {"x-b3-traceid", kTrace}, {"x-b3-spanid", "xyz"}, {"x-b3-sampled", "0"}},
        std::vector<HeaderRef>{
            {"x-b3-traceid", "0000000000000000"}, {"x-b3-spanid", kSpan}, {"x-b3-sampled", "0"}}}) {
    TraceContext ctx = continue_or_start(headers, 1.0, sequence({7, 8, 9}));
    EXPECT_EQ(ctx.format, TraceFormat::kB3Multi);
    EXPECT_EQ(ctx.trace_id, (TraceId{7, 8}));
    EXPECT_EQ(ctx.parent_span_id, 0u);
    EXPECT_FALSE(ctx.sampled);
  }
}

TEST(TraceB3Multi, MalformedIdsWithoutDecisionStartAW3CTrace) {
  TraceContext ctx = continue_or_start({{"x-b3-traceid", kTrace}, {"x-b3-spanid", "123"}}, 1.0,
                                       sequence({7, 8, 9}));
  EXPECT_EQ(ctx.format, TraceFormat::kNone);
  EXPECT_EQ(ctx.trace_id, (TraceId{7, 8}));
  EXPECT_TRUE(find(outgoing_headers(ctx), "traceparent").has_value());
}

TEST(TraceB3Multi, ParentSpanIdAloneIsNotAContext) {
  TraceContext ctx = continue_or_start({{"x-b3-parentspanid", kParent}}, 0.0, sequence({7, 8}));
  EXPECT_EQ(ctx.format, TraceFormat::kNone);
  EXPECT_EQ(ctx.trace_id, (TraceId{7, 8}));
}

// --- Precedence ------------------------------------------------------------------------------

TEST(TracePrecedence, W3CBeforeB3SingleBeforeB3Multi) {
  std::string tp = traceparent("00");
  std::string b3 = "11111111111111111111111111111111-2222222222222222-1";
  std::vector<HeaderRef> all = {{"x-b3-traceid", "33333333333333333333333333333333"},
                                {"x-b3-spanid", "4444444444444444"},
                                {"x-b3-sampled", "1"},
                                {"b3", b3},
                                {"traceparent", tp}};
  TraceContext ctx = continue_or_start(all, 0.0, sequence());
  EXPECT_EQ(ctx.format, TraceFormat::kW3C);
  EXPECT_EQ(ctx.trace_id.hex(), kTrace);
  EXPECT_FALSE(ctx.sampled);  // W3C's decision, not B3's

  all.pop_back();  // no traceparent
  ctx = continue_or_start(all, 0.0, sequence());
  EXPECT_EQ(ctx.format, TraceFormat::kB3Single);
  EXPECT_EQ(ctx.trace_id.hex(), "11111111111111111111111111111111");
  EXPECT_EQ(ctx.parent_span_id, 0x2222222222222222u);

  all.pop_back();  // no b3
  ctx = continue_or_start(all, 0.0, sequence());
  EXPECT_EQ(ctx.format, TraceFormat::kB3Multi);
  EXPECT_EQ(ctx.trace_id.hex(), "33333333333333333333333333333333");
  EXPECT_EQ(ctx.parent_span_id, 0x4444444444444444u);
}

TEST(TracePrecedence, InvalidTraceparentFallsBackToB3) {
  std::string tp = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
  std::string b3 = str(kTrace) + "-" + str(kSpan) + "-0";
  TraceContext ctx =
      continue_or_start({{"traceparent", tp}, {"b3", b3}, {"tracestate", "a=1"}}, 1.0, sequence());
  EXPECT_EQ(ctx.format, TraceFormat::kB3Single);
  EXPECT_EQ(ctx.trace_id.hex(), kTrace);
  EXPECT_FALSE(ctx.sampled);
  EXPECT_TRUE(ctx.tracestate.empty());
}

TEST(TracePrecedence, InvalidB3SingleFallsBackToB3Multi) {
  TraceContext ctx = continue_or_start(
      {{"b3", "garbage-value"}, {"x-b3-traceid", kTrace}, {"x-b3-spanid", kSpan}}, 0.0, sequence());
  EXPECT_EQ(ctx.format, TraceFormat::kB3Multi);
  EXPECT_EQ(ctx.trace_id.hex(), kTrace);
}

TEST(TracePrecedence, IdsWinOverADecisionWithoutIds) {
  TraceContext ctx = continue_or_start(
      {{"b3", "1"}, {"x-b3-traceid", kTrace}, {"x-b3-spanid", kSpan}, {"x-b3-sampled", "0"}}, 1.0,
      sequence());
  EXPECT_EQ(ctx.format, TraceFormat::kB3Multi);
  EXPECT_EQ(ctx.trace_id.hex(), kTrace);
  EXPECT_FALSE(ctx.sampled);
}

TEST(TracePrecedence, B3SingleDecisionBeforeB3MultiDecision) {
  TraceContext ctx =
      continue_or_start({{"x-b3-sampled", "1"}, {"b3", "0"}}, 1.0, sequence({7, 8, 9}));
  EXPECT_EQ(ctx.format, TraceFormat::kB3Single);
  EXPECT_FALSE(ctx.sampled);
}

TEST(TracePrecedence, FirstOfRepeatedB3HeadersIsUsed) {
  std::string first = str(kTrace) + "-" + str(kSpan) + "-1";
  std::string second = "11111111111111111111111111111111-2222222222222222-0";
  TraceContext ctx = continue_or_start({{"b3", first}, {"b3", second}}, 0.0, sequence());
  EXPECT_EQ(ctx.trace_id.hex(), kTrace);
  EXPECT_TRUE(ctx.sampled);
}

// --- Sampling --------------------------------------------------------------------------------

TEST(TraceSampling, IncomingDecisionBeatsTheRate) {
  std::string unsampled = traceparent("00");
  std::string sampled = traceparent("01");
  for (int i = 0; i < 50; ++i) {
    EXPECT_FALSE(continue_or_start({{"traceparent", unsampled}}, 1.0).sampled);
    EXPECT_TRUE(continue_or_start({{"traceparent", sampled}}, 0.0).sampled);
    EXPECT_FALSE(continue_or_start({{"b3", "0"}}, 1.0).sampled);
    EXPECT_TRUE(continue_or_start({{"b3", "1"}}, 0.0).sampled);
    EXPECT_FALSE(continue_or_start({{"x-b3-sampled", "0"}}, 1.0).sampled);
    EXPECT_TRUE(continue_or_start({{"x-b3-sampled", "1"}}, 0.0).sampled);
  }
}

TEST(TraceSampling, NoCoinIsDrawnWhenTheCallerDecided) {
  std::string tp = traceparent("01");
  int draws = 0;
  TraceContext ctx =
      continue_or_start({{"traceparent", tp}, {"x-request-id", "r"}}, 0.5, sequence({}, &draws));
  EXPECT_EQ(draws, 1);  // the span id only
  EXPECT_EQ(ctx.span_id, kFirstId);
}

TEST(TraceSampling, CoinIsTheTop53BitsOfTheDrawAfterTheIds) {
  const std::vector<HeaderRef> no_context = {{"x-request-id", "r"}};
  // A started trace draws trace high, trace low, span id, then the coin.
  auto coin = [&](uint64_t value, double rate) {
    int draws = 0;
    bool sampled = continue_or_start(no_context, rate, sequence({7, 8, 9, value}, &draws)).sampled;
    EXPECT_EQ(draws, 4);
    return sampled;
  };
  EXPECT_TRUE(coin(0x7fffffffffffffff, 0.5));   // just under one half
  EXPECT_FALSE(coin(0x8000000000000000, 0.5));  // exactly one half: not below the rate
  EXPECT_TRUE(coin(0x3fffffffffffffff, 0.25));
  EXPECT_FALSE(coin(0x4000000000000000, 0.25));
  EXPECT_TRUE(coin(0x00000000000007ff, 1e-300));  // the low 11 bits are discarded: u == 0
  EXPECT_FALSE(coin(0, 0.0));                     // rate 0 never samples
  EXPECT_FALSE(coin(0x00000000000007ff, 0.0));
  EXPECT_TRUE(coin(0xffffffffffffffff, 1.0));  // rate 1 always samples
  EXPECT_TRUE(coin(0xffffffffffffffff, 2.0));
  EXPECT_FALSE(coin(0, -1.0));
}

TEST(TraceSampling, ContinuedTraceDrawsTheCoinAfterTheSpanId) {
  std::string b3 = str(kTrace) + "-" + str(kSpan);
  std::vector<HeaderRef> headers = {{"b3", b3}, {"x-request-id", "r"}};
  EXPECT_TRUE(continue_or_start(headers, 0.5, sequence({5, 0x7fffffffffffffff})).sampled);
  EXPECT_FALSE(continue_or_start(headers, 0.5, sequence({5, 0x8000000000000000})).sampled);
}

TEST(TraceSampling, RateIsRoughlyHonouredWithTheRealGenerator) {
  int sampled = 0;
  constexpr int kCalls = 20000;
  for (int i = 0; i < kCalls; ++i) sampled += continue_or_start({}, 0.25).sampled ? 1 : 0;
  // Binomial(20000, 0.25): sd ~61; 10 sd either side.
  EXPECT_GT(sampled, 4390);
  EXPECT_LT(sampled, 5610);
}

// --- Span ids --------------------------------------------------------------------------------

TEST(TraceSpanId, AlwaysNewAndNotTheParent) {
  std::string tp = traceparent();
  for (int i = 0; i < 100; ++i) {
    TraceContext ctx = continue_or_start({{"traceparent", tp}}, 0.5);
    EXPECT_NE(ctx.span_id, 0u);
    EXPECT_NE(ctx.span_id, ctx.parent_span_id);
    EXPECT_EQ(ctx.parent_span_id, kSpanValue);
  }
}

TEST(TraceSpanId, ZeroDrawsAreRedrawn) {
  std::string tp = traceparent();
  TraceContext ctx = continue_or_start({{"traceparent", tp}}, 0.0, sequence({0, 0, 5}));
  EXPECT_EQ(ctx.span_id, 5u);

  ctx = continue_or_start({}, 0.0, sequence({0, 7, 0, 8, 0, 0, 9}));
  EXPECT_EQ(ctx.trace_id, (TraceId{7, 8}));
  EXPECT_EQ(ctx.span_id, 9u);
}

TEST(TraceSpanId, AGeneratorStuckAtZeroDoesNotHang) {
  TraceContext ctx = continue_or_start({}, 0.0, [] { return uint64_t{0}; });
  EXPECT_NE(ctx.trace_id.high, 0u);
  EXPECT_NE(ctx.trace_id.low, 0u);
  EXPECT_NE(ctx.span_id, 0u);
  EXPECT_TRUE(is_uuid_v4(ctx.request_id)) << ctx.request_id;
}

TEST(TraceSpanId, StartedTraceUsesTwoDrawsForTheTraceId) {
  TraceContext ctx = continue_or_start({}, 0.0, sequence({0xaaaa, 0xbbbb, 0xcccc}));
  EXPECT_EQ(ctx.format, TraceFormat::kNone);
  EXPECT_EQ(ctx.trace_id, (TraceId{0xaaaa, 0xbbbb}));
  EXPECT_EQ(ctx.parent_span_id, 0u);
  EXPECT_EQ(ctx.span_id, 0xccccu);
  EXPECT_FALSE(ctx.debug);
}

TEST(TraceRandomId, NeverZeroAndVaries) {
  uint64_t first = random_id();
  bool varied = false;
  for (int i = 0; i < 1000; ++i) {
    uint64_t v = random_id();
    EXPECT_NE(v, 0u);
    varied = varied || v != first;
  }
  EXPECT_TRUE(varied);
}

TEST(TraceRandomId, NoRepeatsBalancedBitsAndOwnSeedPerThread) {
  constexpr int kDraws = 10'000;
  std::set<uint64_t> seen;
  std::array<int, 64> ones{};
  for (int i = 0; i < kDraws; ++i) {
    uint64_t v = random_id();
    EXPECT_TRUE(seen.insert(v).second) << "repeated id after " << i << " draws";
    for (int b = 0; b < 64; ++b) ones[b] += static_cast<int>((v >> b) & 1);
  }
  for (int b = 0; b < 64; ++b) {
    // Binomial(10000, 0.5): 4,500..5,500 is more than 10 standard deviations wide.
    EXPECT_GT(ones[b], 4'500) << "bit " << b;
    EXPECT_LT(ones[b], 5'500) << "bit " << b;
  }
  // Another thread's generator is seeded on its own: its ids are not this thread's sequence.
  uint64_t other = 0;
  std::thread([&] { other = random_id(); }).join();
  EXPECT_FALSE(seen.contains(other));
}

// --- x-request-id ----------------------------------------------------------------------------

TEST(TraceRequestId, IncomingValueIsKept) {
  TraceContext ctx = continue_or_start({{"x-request-id", "abc-123"}}, 0.0, sequence());
  EXPECT_EQ(ctx.request_id, "abc-123");
  EXPECT_EQ(find(outgoing_headers(ctx), "x-request-id"), "abc-123");
}

TEST(TraceRequestId, FirstNonEmptyValueIsKept) {
  TraceContext ctx = continue_or_start(
      {{"x-request-id", ""}, {"x-request-id", "second"}, {"x-request-id", "third"}}, 0.0,
      sequence());
  EXPECT_EQ(ctx.request_id, "second");
}

TEST(TraceRequestId, LengthIsCappedAt256Bytes) {
  std::string max(256, 'r');
  EXPECT_EQ(
      std::string_view(continue_or_start({{"x-request-id", max}}, 0.0, sequence()).request_id),
      max);
  std::string too_long(257, 'r');
  std::string id(continue_or_start({{"x-request-id", too_long}}, 0.0, sequence()).request_id);
  EXPECT_TRUE(is_uuid_v4(id)) << id;
}

TEST(TraceRequestId, MissingOrEmptyIsAUuidV4FromTwoDraws) {
  // Started trace: trace high, trace low, span id, coin, then the two UUID halves.
  TraceContext ctx = continue_or_start(
      {{"x-request-id", ""}}, 0.0, sequence({7, 8, 9, 10, 0x0123456789abcdef, 0xfedcba9876543210}));
  // Version nibble forced to 4, variant bits forced to 10.
  EXPECT_EQ(ctx.request_id, "01234567-89ab-4def-bedc-ba9876543210");

  ctx = continue_or_start({}, 0.0, sequence({7, 8, 9, 10, 0, 0}));
  EXPECT_EQ(ctx.request_id, "00000000-0000-4000-8000-000000000000");

  ctx = continue_or_start({}, 0.0, sequence({7, 8, 9, 10, ~uint64_t{0}, ~uint64_t{0}}));
  EXPECT_EQ(ctx.request_id, "ffffffff-ffff-4fff-bfff-ffffffffffff");
}

TEST(TraceRequestId, GeneratedIdsAreWellFormedAndDistinct) {
  std::string previous;
  for (int i = 0; i < 200; ++i) {
    std::string id(continue_or_start({}, 0.5).request_id);
    EXPECT_TRUE(is_uuid_v4(id)) << id;
    EXPECT_NE(id, previous);
    previous = id;
  }
}

// --- is_trace_header -------------------------------------------------------------------------

TEST(IsTraceHeader, KnowsEveryHeaderItReadsOrWrites) {
  for (std::string_view name :
       {"traceparent", "tracestate", "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid",
        "x-b3-sampled", "x-b3-flags", "x-request-id"}) {
    EXPECT_TRUE(is_trace_header(name)) << name;
  }
  for (std::string_view name : {"", "content-type", "te", ":path", "traceparen", "traceparent2",
                                "b", "b3x", "x-b3", "x-b3-", "x-request", "grpc-trace-bin"}) {
    EXPECT_FALSE(is_trace_header(name)) << name;
  }
}

TEST(IsTraceHeader, CoversEveryOutgoingHeader) {
  TraceContext ctx;
  ctx.trace_id = {1, 2};
  ctx.span_id = 3;
  ctx.parent_span_id = 4;
  ctx.tracestate = "a=1";
  ctx.request_id = "r";
  for (TraceFormat f :
       {TraceFormat::kNone, TraceFormat::kW3C, TraceFormat::kB3Single, TraceFormat::kB3Multi}) {
    for (bool debug : {false, true}) {
      ctx.format = f;
      ctx.debug = debug;
      ctx.sampled = debug;
      for (const OutgoingHeader& h : outgoing_headers(ctx)) {
        EXPECT_TRUE(is_trace_header(h.name)) << h.name;
      }
    }
  }
}

// --- outgoing_headers ------------------------------------------------------------------------

TraceContext sample_context(TraceFormat format) {
  TraceContext ctx;
  ctx.format = format;
  ctx.trace_id = {kTraceHigh, kTraceLow};
  ctx.parent_span_id = kSpanValue;
  ctx.span_id = 0xb7ad6b7169203331;
  ctx.sampled = true;
  ctx.request_id = "req-1";
  return ctx;
}

TEST(TraceOutgoingHeaders, NoneIsSentAsW3C) {
  TraceContext ctx = sample_context(TraceFormat::kNone);
  ctx.parent_span_id = 0;
  ctx.sampled = false;
  auto out = outgoing_headers(ctx);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].name, "traceparent");
  EXPECT_EQ(out[0].value, "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-00");
  EXPECT_EQ(out[1].name, "x-request-id");
  EXPECT_EQ(out[1].value, "req-1");
}

TEST(TraceOutgoingHeaders, EveryHexDigitInEveryPlace) {
  // The ids are formatted eight digits at a time: each digit value, leading zeros and the
  // halves' order show up here.
  TraceContext ctx = sample_context(TraceFormat::kW3C);
  ctx.trace_id = {.high = 0x0123456789abcdef, .low = 0xfedcba9876543210};
  ctx.span_id = 0x1;
  EXPECT_EQ(find(outgoing_headers(ctx), "traceparent"),
            "00-0123456789abcdeffedcba9876543210-0000000000000001-01");
  ctx.trace_id = {.high = 0x00000000ffffffff, .low = 0xa0000000000000b0};
  ctx.span_id = 0xf0e1d2c3b4a59687;
  EXPECT_EQ(find(outgoing_headers(ctx), "traceparent"),
            "00-00000000ffffffffa0000000000000b0-f0e1d2c3b4a59687-01");
  EXPECT_EQ(ctx.trace_id.hex(), "00000000ffffffffa0000000000000b0");
  EXPECT_EQ(ctx.span_id_hex(), "f0e1d2c3b4a59687");
}

TEST(TraceOutgoingHeaders, W3CWithThisHopAsParentAndTracestate) {
  TraceContext ctx = sample_context(TraceFormat::kW3C);
  ctx.tracestate = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";
  auto out = outgoing_headers(ctx);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(find(out, "traceparent"), "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01");
  EXPECT_EQ(find(out, "tracestate"), "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
  EXPECT_EQ(find(out, "x-request-id"), "req-1");
}

TEST(TraceOutgoingHeaders, B3Single) {
  TraceContext ctx = sample_context(TraceFormat::kB3Single);
  auto out = outgoing_headers(ctx);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(find(out, "b3"),
            "4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-1-00f067aa0ba902b7");
  EXPECT_EQ(find(out, "x-request-id"), "req-1");

  ctx.sampled = false;
  ctx.parent_span_id = 0;  // root: no parent field
  EXPECT_EQ(find(outgoing_headers(ctx), "b3"),
            "4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-0");

  ctx.sampled = true;
  ctx.debug = true;
  ctx.b3_128 = false;
  EXPECT_EQ(find(outgoing_headers(ctx), "b3"), "a3ce929d0e0e4736-b7ad6b7169203331-d");
}

TEST(TraceOutgoingHeaders, B3Multi) {
  TraceContext ctx = sample_context(TraceFormat::kB3Multi);
  auto out = outgoing_headers(ctx);
  ASSERT_EQ(out.size(), 5u);
  EXPECT_EQ(find(out, "x-b3-traceid"), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(find(out, "x-b3-spanid"), "b7ad6b7169203331");
  EXPECT_EQ(find(out, "x-b3-parentspanid"), "00f067aa0ba902b7");
  EXPECT_EQ(find(out, "x-b3-sampled"), "1");
  EXPECT_EQ(find(out, "x-b3-flags"), std::nullopt);
  EXPECT_EQ(find(out, "x-request-id"), "req-1");

  ctx.sampled = false;
  ctx.parent_span_id = 0;
  ctx.b3_128 = false;
  out = outgoing_headers(ctx);
  EXPECT_EQ(find(out, "x-b3-traceid"), "a3ce929d0e0e4736");
  EXPECT_EQ(find(out, "x-b3-parentspanid"), std::nullopt);
  EXPECT_EQ(find(out, "x-b3-sampled"), "0");

  // Debug implies sampled; B3 says not to send both.
  ctx.sampled = true;
  ctx.debug = true;
  out = outgoing_headers(ctx);
  EXPECT_EQ(find(out, "x-b3-flags"), "1");
  EXPECT_EQ(find(out, "x-b3-sampled"), std::nullopt);
}

TEST(TraceOutgoingHeaders, NoB3OrW3CHeadersOfTheOtherFormat) {
  auto w3c = outgoing_headers(sample_context(TraceFormat::kW3C));
  EXPECT_EQ(find(w3c, "b3"), std::nullopt);
  EXPECT_EQ(find(w3c, "x-b3-traceid"), std::nullopt);
  auto single = outgoing_headers(sample_context(TraceFormat::kB3Single));
  EXPECT_EQ(find(single, "traceparent"), std::nullopt);
  EXPECT_EQ(find(single, "x-b3-traceid"), std::nullopt);
  auto multi = outgoing_headers(sample_context(TraceFormat::kB3Multi));
  EXPECT_EQ(find(multi, "traceparent"), std::nullopt);
  EXPECT_EQ(find(multi, "b3"), std::nullopt);
}

// Each format survives a hop: the next hop sees the same trace, this hop's span as its parent,
// the same decision, the same request id and the same format.
TEST(TraceOutgoingHeaders, RoundTripThroughTheNextHop) {
  std::string tp = traceparent("01");
  std::string b3 = str(kTrace) + "-" + str(kSpan) + "-d";
  std::vector<std::vector<HeaderRef>> incoming = {
      {{"traceparent", tp}, {"tracestate", "a=1"}, {"x-request-id", "rid"}},
      {{"b3", b3}, {"x-request-id", "rid"}},
      {{"x-b3-traceid", kTrace},
       {"x-b3-spanid", kSpan},
       {"x-b3-sampled", "0"},
       {"x-request-id", "rid"}},
      {{"x-request-id", "rid"}},
  };
  for (const auto& headers : incoming) {
    TraceContext hop1 = continue_or_start(headers, 0.0, sequence({100, 101, 102}));
    TraceContext hop2 =
        continue_or_start(as_incoming(outgoing_headers(hop1)), 1.0, sequence({200}));
    EXPECT_EQ(hop2.format, hop1.format == TraceFormat::kNone ? TraceFormat::kW3C : hop1.format);
    EXPECT_EQ(hop2.trace_id, hop1.trace_id);
    EXPECT_EQ(hop2.parent_span_id, hop1.span_id);
    EXPECT_EQ(hop2.span_id, 200u);
    EXPECT_EQ(hop2.sampled, hop1.sampled);
    EXPECT_EQ(hop2.debug, hop1.debug);
    EXPECT_EQ(hop2.tracestate, hop1.tracestate);
    EXPECT_EQ(hop2.request_id, "rid");
  }
}

TEST(TraceOutgoingHeaders, HandBuiltContextWithoutRequestIdSendsNone) {
  TraceContext ctx = sample_context(TraceFormat::kW3C);
  ctx.request_id.clear();
  EXPECT_EQ(find(outgoing_headers(ctx), "x-request-id"), std::nullopt);
}

// --- Robustness ------------------------------------------------------------------------------

// Every prefix of valid headers, and random bytes, must parse to some context without crashing;
// a context is always usable (ids set, request id set).
TEST(TraceRobustness, TruncatedAndRandomValuesNeverCrash) {
  const std::string valid[] = {traceparent(),
                               "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
                               str(kTrace) + "-" + str(kSpan) + "-1-" + str(kParent), str(kTrace)};
  const std::string_view names[] = {"traceparent",  "tracestate",   "b3",
                                    "x-b3-traceid", "x-b3-spanid",  "x-b3-sampled",
                                    "x-b3-flags",   "x-request-id", "x-b3-parentspanid"};
  auto check = [](const std::vector<HeaderRef>& headers) {
    TraceContext ctx = continue_or_start(headers, 0.5, sequence());
    EXPECT_TRUE(ctx.trace_id.valid());
    EXPECT_NE(ctx.span_id, 0u);
    EXPECT_FALSE(ctx.request_id.empty());
    auto out = outgoing_headers(ctx);
    EXPECT_FALSE(out.empty());
  };
  for (const std::string& v : valid) {
    for (size_t n = 0; n <= v.size(); ++n) {
      for (std::string_view name : names) check({{name, std::string_view(v).substr(0, n)}});
    }
  }
  std::mt19937_64 gen(12345);
  const std::string_view alphabet = "0123456789abcdefABCDEF-dx \t";  // plus any byte, below
  for (int i = 0; i < 5000; ++i) {
    std::string v(gen() % 80, '\0');
    for (char& c : v) {
      c = (gen() % 4 == 0) ? static_cast<char>(gen()) : alphabet[gen() % alphabet.size()];
    }
    for (std::string_view name : names) check({{name, v}});
  }
}

}  // namespace
}  // namespace skiff::telemetry
