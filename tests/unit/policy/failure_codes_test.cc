// Tests for policy::FailureCodes: the default set, set operations, config-name parsing.
#include "policy/failure_codes.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace skiff::policy {
namespace {

TEST(FailureCodes, DefaultsAreTheIssueSet) {
  constexpr FailureCodes d = FailureCodes::defaults();
  for (uint8_t code = 0; code <= kMaxCode; ++code) {
    const bool want = code == kCodeUnknown || code == kCodeDeadlineExceeded ||
                      code == kCodeInternal || code == kCodeUnavailable || code == kCodeDataLoss;
    EXPECT_EQ(d.contains(code), want) << code_name(code);
  }
  EXPECT_TRUE(d.contains(ProxyFailure::kConnectFailure));
  EXPECT_TRUE(d.contains(ProxyFailure::kReset));
  EXPECT_TRUE(d.contains(ProxyFailure::kPerTryTimeout));
  EXPECT_FALSE(d.contains(ProxyFailure::kRefusedStream));
}

TEST(FailureCodes, ClassifiesOutcomes) {
  constexpr FailureCodes d = FailureCodes::defaults();
  EXPECT_FALSE(d.contains(Outcome::ok()));
  EXPECT_TRUE(d.contains(Outcome::status(kCodeUnavailable)));
  EXPECT_FALSE(d.contains(Outcome::status(kCodeInvalidArgument)));
  EXPECT_FALSE(d.contains(Outcome::status(kCodeResourceExhausted)));
  EXPECT_TRUE(d.contains(Outcome::failure(ProxyFailure::kReset)));
  EXPECT_FALSE(d.contains(Outcome::failure(ProxyFailure::kRefusedStream)));
  // A ProxyFailure is looked up in the proxy bits, not as a gRPC code of the same number.
  constexpr FailureCodes cancelled_only = FailureCodes().add(kCodeCancelled);
  EXPECT_FALSE(cancelled_only.contains(Outcome::failure(ProxyFailure::kReset)));
}

TEST(FailureCodes, AddRemoveAndEquality) {
  FailureCodes s;
  EXPECT_TRUE(s.empty());
  s = s.add(kCodeAborted).add(ProxyFailure::kRefusedStream);
  EXPECT_FALSE(s.empty());
  EXPECT_TRUE(s.contains(kCodeAborted));
  EXPECT_TRUE(s.contains(ProxyFailure::kRefusedStream));
  s = s.remove(kCodeAborted).remove(ProxyFailure::kRefusedStream);
  EXPECT_TRUE(s.empty());
  EXPECT_EQ(s, FailureCodes());
  EXPECT_FALSE(FailureCodes().add(40).contains(40));  // out of range is ignored
}

TEST(FailureCodes, ParsesNamesNumbersAndProxyFailures) {
  std::vector<std::string> names = {
      "unavailable",     "DEADLINE_EXCEEDED", "resource-exhausted", "Data_Loss", "13",
      "connect-failure", "refused_stream",    "per-try-timeout",    "reset"};
  auto parsed = FailureCodes::parse(names);
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  FailureCodes want = FailureCodes()
                          .add(kCodeUnavailable)
                          .add(kCodeDeadlineExceeded)
                          .add(kCodeResourceExhausted)
                          .add(kCodeDataLoss)
                          .add(kCodeInternal)
                          .add(ProxyFailure::kConnectFailure)
                          .add(ProxyFailure::kRefusedStream)
                          .add(ProxyFailure::kPerTryTimeout)
                          .add(ProxyFailure::kReset);
  EXPECT_EQ(*parsed, want);
}

TEST(FailureCodes, ParseNamesTheBadEntry) {
  std::vector<std::string> names = {"unavailable", "unavailible"};
  auto parsed = FailureCodes::parse(names);
  ASSERT_FALSE(parsed.has_value());
  EXPECT_NE(parsed.error().message.find("[1]"), std::string::npos);
  EXPECT_NE(parsed.error().message.find("unavailible"), std::string::npos);
  for (std::string bad : {"17", "-1", "", "999", "1a", "connect failure"}) {
    FailureCodes s;
    EXPECT_FALSE(s.add_name(bad)) << bad;
  }
}

TEST(FailureCodes, ToStringListsMembersInOrder) {
  EXPECT_EQ(FailureCodes::defaults().to_string(),
            "UNKNOWN,DEADLINE_EXCEEDED,INTERNAL,UNAVAILABLE,DATA_LOSS,connect-failure,reset,"
            "per-try-timeout");
  EXPECT_EQ(FailureCodes().to_string(), "");
}

}  // namespace
}  // namespace skiff::policy

namespace skiff::policy {
namespace {

TEST(FailureCodesMerge, HasEveryCodeAndFailureOfBoth) {
  FailureCodes a = FailureCodes().add(kCodeUnavailable).add(ProxyFailure::kReset);
  FailureCodes b = FailureCodes().add(kCodeInternal).add(ProxyFailure::kConnectFailure);
  FailureCodes both = a.merge(b);
  EXPECT_TRUE(both.contains(kCodeUnavailable));
  EXPECT_TRUE(both.contains(kCodeInternal));
  EXPECT_TRUE(both.contains(ProxyFailure::kReset));
  EXPECT_TRUE(both.contains(ProxyFailure::kConnectFailure));
  EXPECT_FALSE(both.contains(kCodeDataLoss));
  EXPECT_FALSE(both.contains(ProxyFailure::kPerTryTimeout));
  EXPECT_TRUE(a.merge(FailureCodes()) == a);
}

}  // namespace
}  // namespace skiff::policy
