// Authz: may this caller use this route? A pure decision over the route's allow list and the
// connection's verified peer identity (the URI SAN of its client certificate, see base/spiffe.h
// for the pattern syntax). proxy::Call asks right after routing; no I/O, no logging.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "base/error.h"

namespace skiff::policy {

enum class AuthzDecision {
  kAllowed,     // no allow list on the route, or the identity matches one of its patterns
  kNoIdentity,  // the route has an allow list and the connection has no verified identity
  kNotAllowed,  // the identity matches none of the patterns
};

std::string_view to_string(AuthzDecision decision);

// |allow| are checked patterns (validate_allow_list); empty means "anyone, even without an
// identity". |identity| is the peer's verified SPIFFE ID, empty when there is none. Linear in
// the total pattern length; never allocates.
[[nodiscard]] AuthzDecision authorize(std::span<const std::string> allow,
                                      std::string_view identity);

// OK if every entry of |allow| is a valid identity pattern and the list is not empty;
// otherwise the first problem, prefixed with "[i]: ".
base::Result<void> validate_allow_list(std::span<const std::string> allow);

}  // namespace skiff::policy
