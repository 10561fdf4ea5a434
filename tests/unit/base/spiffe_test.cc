// Tests for base/spiffe.h: the SPIFFE ID grammar, identity pattern syntax and matching.
#include "base/spiffe.h"

#include <gtest/gtest.h>

#include <string>

namespace skiff::base {
namespace {

std::string error_of(const Result<void>& r) { return r ? "ok" : r.error().message; }

TEST(SpiffeId, AcceptsWorkloadIds) {
  for (const char* id :
       {"spiffe://mesh.local/ns/default/sa/frontend", "spiffe://a/b",
        "spiffe://example.org/Path_With-Mixed.Case/9", "spiffe://td-1_x.y/a/b/c/d/e"}) {
    EXPECT_EQ(error_of(check_spiffe_id(id)), "ok") << id;
  }
}

TEST(SpiffeId, RejectsWithReason) {
  EXPECT_EQ(error_of(check_spiffe_id("https://mesh.local/x")),
            "'https://mesh.local/x' is not a SPIFFE ID (expected spiffe://trust-domain/path)");
  EXPECT_EQ(error_of(check_spiffe_id("SPIFFE://mesh.local/x")),
            "'SPIFFE://mesh.local/x' is not a SPIFFE ID (expected spiffe://trust-domain/path)");
  EXPECT_EQ(error_of(check_spiffe_id("spiffe:///x")), "'spiffe:///x': empty trust domain");
  EXPECT_EQ(error_of(check_spiffe_id("spiffe://mesh.local")),
            "'spiffe://mesh.local': a workload identity needs a path (spiffe://mesh.local/...)");
  EXPECT_EQ(error_of(check_spiffe_id("spiffe://Mesh.local/x")),
            "'spiffe://Mesh.local/x': the trust domain may contain only a-z 0-9 . - _ (found 'M')");
  EXPECT_EQ(error_of(check_spiffe_id("spiffe://mesh.local:8080/x")),
            "'spiffe://mesh.local:8080/x': the trust domain may contain only a-z 0-9 . - _ (found "
            "':')");
  EXPECT_EQ(error_of(check_spiffe_id("spiffe://mesh.local/")),
            "'spiffe://mesh.local/': empty path segment");
  EXPECT_EQ(error_of(check_spiffe_id("spiffe://mesh.local/a//b")),
            "'spiffe://mesh.local/a//b': empty path segment");
  EXPECT_EQ(error_of(check_spiffe_id("spiffe://mesh.local/a/../b")),
            "'spiffe://mesh.local/a/../b': path segments '.' and '..' are not allowed");
  EXPECT_EQ(error_of(check_spiffe_id("spiffe://mesh.local/a?b")),
            "'spiffe://mesh.local/a?b': the path may contain only a-z A-Z 0-9 . - _ and '/' (found "
            "'?')");
  EXPECT_NE(error_of(check_spiffe_id("spiffe://mesh.local/a#b")).find("found '#'"),
            std::string::npos);
  // Long IDs are shortened to 80 characters in messages.
  EXPECT_EQ(error_of(check_spiffe_id("spiffe://" + std::string(256, 'a') + "/x")),
            "'spiffe://" + std::string(68, 'a') + "...': trust domain too long");
  EXPECT_EQ(error_of(check_spiffe_id("spiffe://td/" + std::string(2040, 'a'))),
            "SPIFFE ID longer than 2048 bytes");
  EXPECT_FALSE(check_spiffe_id(""));
}

TEST(IdentityPattern, Syntax) {
  for (const char* p : {"*", "spiffe://mesh.local/*", "spiffe://mesh.local/ns/default/*",
                        "spiffe://mesh.local/ns/default/sa/frontend"}) {
    EXPECT_EQ(error_of(check_identity_pattern(p)), "ok") << p;
  }
  EXPECT_EQ(error_of(check_identity_pattern("spiffe://mesh.local/ns/*/sa/x")),
            "'spiffe://mesh.local/ns/*/sa/x': '*' is allowed only as the whole last path segment");
  EXPECT_EQ(error_of(check_identity_pattern("spiffe://mesh.local/ns/def*")),
            "'spiffe://mesh.local/ns/def*': '*' is allowed only as the whole last path segment");
  EXPECT_EQ(error_of(check_identity_pattern("spiffe://*/x/*")),
            "'spiffe://*/x/*': '*' is allowed only as the whole last path segment");
  EXPECT_EQ(error_of(check_identity_pattern("spiffe://mesh.local")),
            "'spiffe://mesh.local': a workload identity needs a path (spiffe://mesh.local/...)");
  EXPECT_EQ(error_of(check_identity_pattern("**")),
            "'**': '*' is allowed only as the whole last path segment");
  EXPECT_EQ(error_of(check_identity_pattern("frontend")),
            "'frontend' is not a SPIFFE ID (expected spiffe://trust-domain/path)");
  EXPECT_FALSE(check_identity_pattern("spiffe:///*"));
  EXPECT_FALSE(check_identity_pattern("spiffe://mesh.local//*"));
}

TEST(IdentityPattern, Matching) {
  const std::string frontend = "spiffe://mesh.local/ns/default/sa/frontend";
  EXPECT_TRUE(identity_matches(frontend, frontend));
  EXPECT_FALSE(identity_matches(frontend, frontend + "2"));
  EXPECT_FALSE(identity_matches(frontend, "spiffe://mesh.local/ns/default/sa/front"));
  EXPECT_TRUE(identity_matches("spiffe://mesh.local/*", frontend));
  EXPECT_TRUE(identity_matches("spiffe://mesh.local/ns/default/*", frontend));
  EXPECT_TRUE(
      identity_matches("spiffe://mesh.local/ns/default/*", "spiffe://mesh.local/ns/default/x"));
  // Segment boundaries: /ns/default/* does not reach /ns/default2/..., nor the prefix itself.
  EXPECT_FALSE(
      identity_matches("spiffe://mesh.local/ns/default/*", "spiffe://mesh.local/ns/default2/x"));
  EXPECT_FALSE(
      identity_matches("spiffe://mesh.local/ns/default/*", "spiffe://mesh.local/ns/default"));
  EXPECT_FALSE(identity_matches("spiffe://mesh.local/*", "spiffe://mesh.local.evil/x"));
  EXPECT_FALSE(identity_matches("spiffe://mesh.local/*", "spiffe://other/ns/default/sa/frontend"));
  EXPECT_TRUE(identity_matches("*", frontend));
  // No identity matches nothing, not even "*".
  EXPECT_FALSE(identity_matches("*", ""));
  EXPECT_FALSE(identity_matches("spiffe://mesh.local/*", ""));
}

TEST(SpiffeId, TrustDomain) {
  EXPECT_EQ(spiffe_trust_domain("spiffe://mesh.local/ns/x"), "mesh.local");
  EXPECT_EQ(spiffe_trust_domain("spiffe://mesh.local"), "mesh.local");
  EXPECT_EQ(spiffe_trust_domain("https://mesh.local/x"), "");
}

}  // namespace
}  // namespace skiff::base
