// SPIFFE ID grammar and identity pattern matching.
#include "base/spiffe.h"

#include <string>

namespace skiff::base {
namespace {

constexpr size_t kMaxIdBytes = 2048;
constexpr size_t kMaxTrustDomainBytes = 255;

bool is_trust_domain_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

bool is_path_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

std::string quoted(std::string_view s) {
  constexpr size_t kMaxShown = 80;
  if (s.size() > kMaxShown) return "'" + std::string(s.substr(0, kMaxShown - 3)) + "...'";
  return "'" + std::string(s) + "'";
}

// Checks "spiffe://td" + |path|; |path| may be empty only if |allow_empty_path|.
Result<void> check_id(std::string_view id, bool allow_empty_path) {
  if (id.size() > kMaxIdBytes) return fail("SPIFFE ID longer than 2048 bytes");
  if (!id.starts_with(kSpiffeScheme)) {
    return fail(quoted(id) + " is not a SPIFFE ID (expected spiffe://trust-domain/path)");
  }
  std::string_view rest = id.substr(kSpiffeScheme.size());
  size_t slash = rest.find('/');
  std::string_view td = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  if (td.empty()) return fail(quoted(id) + ": empty trust domain");
  if (td.size() > kMaxTrustDomainBytes) return fail(quoted(id) + ": trust domain too long");
  for (char c : td) {
    if (!is_trust_domain_char(c)) {
      return fail(quoted(id) + ": the trust domain may contain only a-z 0-9 . - _ (found '" +
                  std::string(1, c) + "')");
    }
  }
  if (path.empty()) {
    if (allow_empty_path) return {};
    return fail(quoted(id) + ": a workload identity needs a path (spiffe://" + std::string(td) +
                "/...)");
  }
  // path = 1*("/" segment)
  size_t i = 0;
  while (i < path.size()) {
    // path[i] == '/'
    size_t end = path.find('/', i + 1);
    if (end == std::string_view::npos) end = path.size();
    std::string_view segment = path.substr(i + 1, end - i - 1);
    if (segment.empty()) return fail(quoted(id) + ": empty path segment");
    if (segment == "." || segment == "..") {
      return fail(quoted(id) + ": path segments '.' and '..' are not allowed");
    }
    for (char c : segment) {
      if (!is_path_char(c)) {
        return fail(quoted(id) + ": the path may contain only a-z A-Z 0-9 . - _ and '/' (found '" +
                    std::string(1, c) + "')");
      }
    }
    i = end;
  }
  return {};
}

}  // namespace

Result<void> check_spiffe_id(std::string_view id) { return check_id(id, false); }

Result<void> check_identity_pattern(std::string_view pattern) {
  if (pattern == "*") return {};
  if (pattern.ends_with("/*")) {
    std::string_view prefix = pattern.substr(0, pattern.size() - 2);
    if (prefix.find('*') != std::string_view::npos) {
      return fail(quoted(pattern) + ": '*' is allowed only as the whole last path segment");
    }
    return check_id(prefix, /*allow_empty_path=*/true);
  }
  if (pattern.find('*') != std::string_view::npos) {
    return fail(quoted(pattern) + ": '*' is allowed only as the whole last path segment");
  }
  return check_id(pattern, /*allow_empty_path=*/false);
}

bool identity_matches(std::string_view pattern, std::string_view identity) {
  if (identity.empty()) return false;
  if (pattern == "*") return true;
  if (pattern.ends_with("/*")) {
    // "spiffe://td/ns/*" matches "spiffe://td/ns/x...": the prefix keeps its trailing '/', so
    // "spiffe://td/ns2/x" does not match.
    std::string_view prefix = pattern.substr(0, pattern.size() - 1);
    return identity.size() > prefix.size() && identity.starts_with(prefix);
  }
  return pattern == identity;
}

std::string_view spiffe_trust_domain(std::string_view id) {
  if (!id.starts_with(kSpiffeScheme)) return {};
  std::string_view rest = id.substr(kSpiffeScheme.size());
  return rest.substr(0, rest.find('/'));
}

}  // namespace skiff::base
