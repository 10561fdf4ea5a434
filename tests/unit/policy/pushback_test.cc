// Tests for policy::Pushback::parse: grpc-retry-pushback-ms values (gRPC A6 "Pushback").
#include "policy/pushback.h"

#include <gtest/gtest.h>

namespace skiff::policy {
namespace {

using std::chrono::milliseconds;

TEST(Pushback, NonNegativeIntegerIsRetryAfter) {
  EXPECT_EQ(Pushback::parse("0").kind, Pushback::Kind::kRetryAfter);
  EXPECT_EQ(Pushback::parse("0").delay, milliseconds(0));
  EXPECT_EQ(Pushback::parse("250").delay, milliseconds(250));
  EXPECT_EQ(Pushback::parse("2147483647").delay, milliseconds(2147483647));
  EXPECT_EQ(Pushback::parse("007").delay, milliseconds(7));  // lenient on leading zeros
}

TEST(Pushback, NegativeOrUnparseableIsStop) {
  for (std::string_view v : {"-1", "-0", "-2147483648", "", "-", "1.5", " 5", "5 ", "+5", "abc",
                             "2147483648", "99999999999999999999", "0x10"}) {
    EXPECT_EQ(Pushback::parse(v).kind, Pushback::Kind::kStop) << "'" << v << "'";
  }
}

TEST(Pushback, DefaultIsNone) {
  EXPECT_EQ(Pushback{}.kind, Pushback::Kind::kNone);
  EXPECT_EQ(Pushback::none().kind, Pushback::Kind::kNone);
}

}  // namespace
}  // namespace skiff::policy
