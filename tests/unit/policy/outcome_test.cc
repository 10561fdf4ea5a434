// Tests for policy::Outcome: construction, classification, names.
#include "policy/outcome.h"

#include <gtest/gtest.h>

namespace skiff::policy {
namespace {

TEST(Outcome, OkIsOnlyStatusZero) {
  EXPECT_TRUE(Outcome::ok().is_ok());
  EXPECT_TRUE(Outcome::status(kCodeOk).is_ok());
  EXPECT_FALSE(Outcome::status(kCodeUnavailable).is_ok());
  EXPECT_FALSE(Outcome::failure(ProxyFailure::kReset).is_ok());
}

TEST(Outcome, StatusKeepsItsCode) {
  Outcome o = Outcome::status(kCodeDataLoss);
  EXPECT_TRUE(o.is_status());
  EXPECT_FALSE(o.is_proxy_failure());
  EXPECT_EQ(o.code(), kCodeDataLoss);
}

TEST(Outcome, CodesAboveSixteenReadAsUnknown) {
  EXPECT_EQ(Outcome::status(17).code(), kCodeUnknown);
  EXPECT_EQ(Outcome::status(255).code(), kCodeUnknown);
}

TEST(Outcome, ProxyFailuresAnswerUnavailable) {
  for (auto f : {ProxyFailure::kConnectFailure, ProxyFailure::kReset, ProxyFailure::kPerTryTimeout,
                 ProxyFailure::kRefusedStream}) {
    Outcome o = Outcome::failure(f);
    EXPECT_TRUE(o.is_proxy_failure());
    EXPECT_EQ(o.proxy_failure(), f);
    EXPECT_EQ(o.code(), kCodeUnavailable);
  }
}

TEST(Outcome, ProxyFailureDiffersFromSameNumberedStatus) {
  // ProxyFailure::kReset has the underlying value 1, like CANCELLED; they must not compare equal.
  EXPECT_NE(Outcome::failure(ProxyFailure::kReset), Outcome::status(kCodeCancelled));
  EXPECT_EQ(Outcome::status(kCodeInternal), Outcome::status(kCodeInternal));
}

TEST(Outcome, Names) {
  EXPECT_EQ(code_name(kCodeUnavailable), "UNAVAILABLE");
  EXPECT_EQ(code_name(kCodeUnauthenticated), "UNAUTHENTICATED");
  EXPECT_EQ(code_name(99), "UNKNOWN");
  EXPECT_EQ(to_string(ProxyFailure::kConnectFailure), "connect-failure");
  EXPECT_EQ(to_string(ProxyFailure::kRefusedStream), "refused-stream");
  EXPECT_EQ(to_string(Outcome::failure(ProxyFailure::kPerTryTimeout)), "per-try-timeout");
  EXPECT_EQ(to_string(Outcome::status(kCodeUnavailable)), "UNAVAILABLE");
  EXPECT_EQ(to_string(Outcome::ok()), "OK");
}

}  // namespace
}  // namespace skiff::policy
