// SPIFFE IDs and identity patterns: the grammar shared by config validation (config/), peer
// certificate checks (tls/) and authorization (policy/). Pure string functions, std only.
//
// A SPIFFE ID is "spiffe://<trust-domain>/<path>" (github.com/spiffe/spiffe,
// standards/SPIFFE-ID.md): the trust domain is 1..255 of [a-z0-9.-_]; the path is one or more
// "/segment", each segment 1+ of [a-zA-Z0-9.-_] and not "." or ".."; no query, fragment, port or
// user info; at most 2048 bytes. A workload identity (what an X509-SVID carries) always has a path.
//
// An identity pattern is one of:
//   spiffe://td/path/to/workload   exactly this identity (byte-for-byte)
//   spiffe://td/*                  any identity in trust domain "td"
//   spiffe://td/ns/default/*       any identity whose path starts with "/ns/default/" (and has
//                                  at least one more segment)
//   *                              any verified identity
// '*' is allowed only as the whole last segment (or as the whole pattern).
#pragma once

#include <string_view>

#include "base/error.h"

namespace skiff::base {

inline constexpr std::string_view kSpiffeScheme = "spiffe://";

// OK if |id| is a workload SPIFFE ID (with a path); otherwise why not.
Result<void> check_spiffe_id(std::string_view id);

// OK if |pattern| follows the identity pattern syntax above; otherwise why not.
Result<void> check_identity_pattern(std::string_view pattern);

// Whether |identity| (a checked SPIFFE ID, or empty for "none") matches |pattern| (a checked
// pattern). An empty identity matches nothing. Never allocates.
bool identity_matches(std::string_view pattern, std::string_view identity);

// "td" for "spiffe://td/...", empty if |id| has no spiffe scheme.
std::string_view spiffe_trust_domain(std::string_view id);

}  // namespace skiff::base
