// Authz: allow-list matching against the peer's SPIFFE identity.
#include "policy/authz.h"

#include "base/spiffe.h"

namespace skiff::policy {

std::string_view to_string(AuthzDecision decision) {
  switch (decision) {
    case AuthzDecision::kAllowed:
      return "allowed";
    case AuthzDecision::kNoIdentity:
      return "no verified peer identity";
    case AuthzDecision::kNotAllowed:
      return "identity not allowed";
  }
  return "?";
}

AuthzDecision authorize(std::span<const std::string> allow, std::string_view identity) {
  if (allow.empty()) return AuthzDecision::kAllowed;
  if (identity.empty()) return AuthzDecision::kNoIdentity;
  for (const std::string& pattern : allow) {
    if (base::identity_matches(pattern, identity)) return AuthzDecision::kAllowed;
  }
  return AuthzDecision::kNotAllowed;
}

base::Result<void> validate_allow_list(std::span<const std::string> allow) {
  if (allow.empty()) return base::fail("an allow list needs at least one identity pattern");
  for (size_t i = 0; i < allow.size(); ++i) {
    if (auto checked = base::check_identity_pattern(allow[i]); !checked) {
      return base::fail("[" + std::to_string(i) + "]: " + checked.error().message);
    }
  }
  return {};
}

}  // namespace skiff::policy
