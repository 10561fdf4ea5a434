// Tests for policy::authorize and validate_allow_list: pure decisions, no sockets.
#include "policy/authz.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace skiff::policy {
namespace {

const std::string kFrontend = "spiffe://mesh.local/ns/default/sa/frontend";
const std::string kOrders = "spiffe://mesh.local/ns/shop/sa/orders";

TEST(Authz, NoAllowListAllowsEveryone) {
  EXPECT_EQ(authorize({}, kFrontend), AuthzDecision::kAllowed);
  EXPECT_EQ(authorize({}, ""), AuthzDecision::kAllowed);
}

TEST(Authz, ExactIdentity) {
  std::vector<std::string> allow = {kFrontend};
  EXPECT_EQ(authorize(allow, kFrontend), AuthzDecision::kAllowed);
  EXPECT_EQ(authorize(allow, kOrders), AuthzDecision::kNotAllowed);
  EXPECT_EQ(authorize(allow, kFrontend + "-admin"), AuthzDecision::kNotAllowed);
}

TEST(Authz, MissingIdentityIsItsOwnDecision) {
  std::vector<std::string> allow = {"*"};
  EXPECT_EQ(authorize(allow, ""), AuthzDecision::kNoIdentity);
  EXPECT_EQ(authorize(allow, kOrders), AuthzDecision::kAllowed);
}

TEST(Authz, TrustDomainAndNamespacePatterns) {
  std::vector<std::string> allow = {"spiffe://mesh.local/ns/default/*", kOrders};
  EXPECT_EQ(authorize(allow, kFrontend), AuthzDecision::kAllowed);
  EXPECT_EQ(authorize(allow, kOrders), AuthzDecision::kAllowed);
  EXPECT_EQ(authorize(allow, "spiffe://mesh.local/ns/shop/sa/payments"),
            AuthzDecision::kNotAllowed);
  EXPECT_EQ(authorize(allow, "spiffe://other.mesh/ns/default/sa/frontend"),
            AuthzDecision::kNotAllowed);

  std::vector<std::string> domain = {"spiffe://mesh.local/*"};
  EXPECT_EQ(authorize(domain, kOrders), AuthzDecision::kAllowed);
  EXPECT_EQ(authorize(domain, "spiffe://mesh.localhost/ns/x"), AuthzDecision::kNotAllowed);
}

TEST(Authz, DecisionNames) {
  EXPECT_EQ(to_string(AuthzDecision::kAllowed), "allowed");
  EXPECT_EQ(to_string(AuthzDecision::kNoIdentity), "no verified peer identity");
  EXPECT_EQ(to_string(AuthzDecision::kNotAllowed), "identity not allowed");
}

TEST(Authz, ValidateAllowList) {
  EXPECT_TRUE(validate_allow_list(std::vector<std::string>{kFrontend, "spiffe://mesh.local/*"}));
  auto empty = validate_allow_list({});
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().message, "an allow list needs at least one identity pattern");
  auto bad = validate_allow_list(std::vector<std::string>{kFrontend, "spiffe://mesh.local/a*"});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message,
            "[1]: 'spiffe://mesh.local/a*': '*' is allowed only as the whole last path segment");
}

}  // namespace
}  // namespace skiff::policy
