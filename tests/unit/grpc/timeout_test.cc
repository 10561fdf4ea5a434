// Tests for grpc/timeout: every unit, every malformed shape, saturation, and format round-trips.
#include "grpc/timeout.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <random>
#include <string>

namespace skiff::grpc {
namespace {

using std::chrono::hours;
using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::nanoseconds;
using std::chrono::seconds;

nanoseconds parsed(std::string_view value) {
  auto result = parse_timeout(value);
  EXPECT_TRUE(result.has_value()) << value;
  return result.value_or(nanoseconds(-1));
}

TimeoutError error_of(std::string_view value) {
  auto result = parse_timeout(value);
  EXPECT_FALSE(result.has_value()) << value;
  return result.has_value() ? TimeoutError::kEmpty : result.error();
}

TEST(ParseTimeout, EveryUnit) {
  EXPECT_EQ(parsed("7H"), hours(7));
  EXPECT_EQ(parsed("7M"), minutes(7));
  EXPECT_EQ(parsed("7S"), seconds(7));
  EXPECT_EQ(parsed("7m"), milliseconds(7));
  EXPECT_EQ(parsed("7u"), microseconds(7));
  EXPECT_EQ(parsed("7n"), nanoseconds(7));
}

TEST(ParseTimeout, ZeroAndLeadingZeros) {
  EXPECT_EQ(parsed("0n"), nanoseconds(0));
  EXPECT_EQ(parsed("0H"), nanoseconds(0));
  EXPECT_EQ(parsed("0m"), nanoseconds(0));
  EXPECT_EQ(parsed("00000001S"), seconds(1));
  EXPECT_EQ(parsed("00000000m"), nanoseconds(0));
}

TEST(ParseTimeout, EightDigitsAcceptedNineRejected) {
  EXPECT_EQ(parsed("99999999n"), nanoseconds(99'999'999));
  EXPECT_EQ(parsed("99999999m"), milliseconds(99'999'999));
  EXPECT_EQ(parsed("12345678S"), seconds(12'345'678));
  EXPECT_EQ(error_of("100000000n"), TimeoutError::kTooManyDigits);
  EXPECT_EQ(error_of("999999999S"), TimeoutError::kTooManyDigits);
  EXPECT_EQ(error_of("000000001S"), TimeoutError::kTooManyDigits);  // leading zeros still count
}

TEST(ParseTimeout, Empty) {
  EXPECT_EQ(error_of(""), TimeoutError::kEmpty);
  EXPECT_EQ(error_of("S"), TimeoutError::kEmpty);
  EXPECT_EQ(error_of("m"), TimeoutError::kEmpty);
}

TEST(ParseTimeout, SignAndDecimalAndSpaces) {
  EXPECT_EQ(error_of("-1S"), TimeoutError::kBadDigit);
  EXPECT_EQ(error_of("+1S"), TimeoutError::kBadDigit);
  EXPECT_EQ(error_of("1.5S"), TimeoutError::kBadDigit);
  EXPECT_EQ(error_of(".5S"), TimeoutError::kBadDigit);
  EXPECT_EQ(error_of(" 1S"), TimeoutError::kBadDigit);
  EXPECT_EQ(error_of("1 S"), TimeoutError::kBadDigit);
  EXPECT_EQ(error_of("0x10S"), TimeoutError::kBadDigit);
  EXPECT_EQ(error_of("1e3m"), TimeoutError::kBadDigit);
}

TEST(ParseTimeout, BadUnit) {
  EXPECT_EQ(error_of("1"), TimeoutError::kBadUnit);  // no unit
  EXPECT_EQ(error_of("100"), TimeoutError::kBadUnit);
  EXPECT_EQ(error_of("1s"), TimeoutError::kBadUnit);  // units are case-sensitive
  EXPECT_EQ(error_of("1h"), TimeoutError::kBadUnit);
  EXPECT_EQ(error_of("1U"), TimeoutError::kBadUnit);
  EXPECT_EQ(error_of("1N"), TimeoutError::kBadUnit);
  EXPECT_EQ(error_of("1x"), TimeoutError::kBadUnit);
  EXPECT_EQ(error_of("1S "), TimeoutError::kBadUnit);
  EXPECT_EQ(error_of("1ms"), TimeoutError::kBadUnit);
  EXPECT_EQ(error_of("1.5"), TimeoutError::kBadUnit);
  EXPECT_EQ(error_of("-"), TimeoutError::kBadUnit);
}

TEST(ParseTimeout, SaturatesInsteadOfOverflowing) {
  // nanoseconds::max() is 9223372036854775807 ns, about 2562047.8 hours.
  EXPECT_EQ(parsed("99999999H"), nanoseconds::max());
  EXPECT_EQ(parsed("2562048H"), nanoseconds::max());
  EXPECT_EQ(parsed("2562047H"), hours(2'562'047));
  EXPECT_EQ(parsed("99999999M"), minutes(99'999'999));  // 6e18 ns: fits
  EXPECT_EQ(parsed("99999999S"), seconds(99'999'999));
}

TEST(TimeoutError, ToStringIsDistinct) {
  EXPECT_NE(to_string(TimeoutError::kEmpty), to_string(TimeoutError::kTooManyDigits));
  EXPECT_NE(to_string(TimeoutError::kBadDigit), to_string(TimeoutError::kBadUnit));
  EXPECT_FALSE(to_string(TimeoutError::kBadUnit).empty());
}

TEST(FormatTimeout, NonPositiveIsZero) {
  EXPECT_EQ(format_timeout(nanoseconds(0)), "0n");
  EXPECT_EQ(format_timeout(nanoseconds(-1)), "0n");
  EXPECT_EQ(format_timeout(nanoseconds::min()), "0n");
}

TEST(FormatTimeout, ThreeSignificantDigitsInTheLargestExactUnit) {
  EXPECT_EQ(format_timeout(nanoseconds(1)), "1n");
  EXPECT_EQ(format_timeout(nanoseconds(999)), "999n");
  EXPECT_EQ(format_timeout(nanoseconds(1'000)), "1u");
  EXPECT_EQ(format_timeout(nanoseconds(100'000'000)), "100m");
  EXPECT_EQ(format_timeout(milliseconds(250)), "250m");
  EXPECT_EQ(format_timeout(seconds(2)), "2S");
  EXPECT_EQ(format_timeout(seconds(100)), "100S");
  EXPECT_EQ(format_timeout(seconds(100'000)), "100000S");
  EXPECT_EQ(format_timeout(minutes(3)), "3M");
  EXPECT_EQ(format_timeout(hours(5)), "5H");
  // Neither minutes nor hours hold 10^17 ns exactly, and seconds need 9 digits: the finest
  // unit that fits, rounded up.
  EXPECT_EQ(format_timeout(seconds(100'000'000)), "1666667M");
  EXPECT_EQ(format_timeout(minutes(100'000'000)), "1666667H");
  EXPECT_EQ(format_timeout(nanoseconds::max()), "2562048H");
}

TEST(FormatTimeout, RoundsUpToThreeDigits) {
  EXPECT_EQ(format_timeout(nanoseconds(1'234)), "1240n");
  EXPECT_EQ(format_timeout(nanoseconds(99'999'999)), "100m");
  EXPECT_EQ(format_timeout(nanoseconds(100'000'001)), "101m");
  EXPECT_EQ(format_timeout(nanoseconds(100'999'999)), "101m");
  EXPECT_EQ(format_timeout(nanoseconds(99'999'999'001)), "100S");
  // A route timeout's time left a few microseconds into the call: one short value for every
  // call, which HPACK indexes once.
  EXPECT_EQ(format_timeout(seconds(30) - microseconds(7)), "30S");
  EXPECT_EQ(format_timeout(seconds(30) - microseconds(230)), "30S");
}

TEST(FormatTimeout, NeverZeroForPositive) {
  for (int64_t n : {int64_t{1}, int64_t{999}, int64_t{1'000'001}, int64_t{123'456'789'012}}) {
    const std::string wire = format_timeout(nanoseconds(n));
    EXPECT_NE(wire.front(), '0') << n;
    EXPECT_GT(parsed(wire), nanoseconds(0)) << n;
  }
}

// parse(format(d)) never gives the upstream less time than |d|, and overshoots by at most 1%
// (one unit of the third significant digit), plus under 10^-5 of d where minutes or hours must
// round once more.
void expect_round_trip(nanoseconds d) {
  const std::string wire = format_timeout(d);
  ASSERT_LE(wire.size(), 9u) << d.count();
  ASSERT_TRUE(parse_timeout(wire).has_value()) << wire;
  const nanoseconds back = *parse_timeout(wire);
  EXPECT_GE(back, d) << wire;
  const int64_t overshoot = back.count() - d.count();
  EXPECT_LE(static_cast<double>(overshoot), static_cast<double>(d.count()) * 1.001e-2 + 1) << wire;
}

TEST(FormatTimeout, RoundTrips) {
  for (int64_t n : {int64_t{1}, int64_t{42}, int64_t{99'999'999}, int64_t{100'000'000},
                    int64_t{1'000'000'007}, int64_t{99'999'999'001}, int64_t{3'600'000'000'000},
                    int64_t{5'999'999'999'999'999}, nanoseconds::max().count() - 1}) {
    expect_round_trip(nanoseconds(n));
  }
  // Every power of ten and its neighbours, across the whole range.
  int64_t p = 1;  // 10^0 .. 10^18; 10^19 would overflow int64
  for (int exponent = 0; exponent <= 18; ++exponent) {
    expect_round_trip(nanoseconds(p));
    expect_round_trip(nanoseconds(p + 1));
    if (p > 1) expect_round_trip(nanoseconds(p - 1));
    if (exponent < 18) p *= 10;
  }
  std::mt19937_64 rng(12345);
  for (int i = 0; i < 10'000; ++i) {
    const int shift = static_cast<int>(rng() % 63);
    expect_round_trip(nanoseconds(static_cast<int64_t>((rng() >> 1) >> shift) + 1));
  }
}

TEST(FormatTimeout, ParsedValuesWithThreeDigitsFormatExactly) {
  // A value that arrived on the wire and is forwarded unchanged formats to the same duration.
  for (std::string_view wire : {"1n", "500m", "2S", "30S", "5M", "1H", "999u", "125m"}) {
    const nanoseconds d = parsed(wire);
    EXPECT_EQ(parsed(format_timeout(d)), d) << wire;
  }
  // More digits are rounded up.
  EXPECT_EQ(format_timeout(parsed("99999999n")), "100m");
}

}  // namespace
}  // namespace skiff::grpc
