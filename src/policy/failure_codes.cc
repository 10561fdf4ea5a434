// FailureCodes: parsing and printing config names.
#include "policy/failure_codes.h"

#include <cctype>

namespace skiff::policy {
namespace {

// Case-insensitive compare where '-' and '_' are the same character.
bool same_name(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    auto norm = [](char c) {
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      return c == '-' ? '_' : c;
    };
    if (norm(a[i]) != norm(b[i])) return false;
  }
  return true;
}

}  // namespace

bool FailureCodes::add_name(std::string_view name) {
  if (!name.empty() && name.size() <= 2 && std::isdigit(static_cast<unsigned char>(name[0])) &&
      (name.size() == 1 || std::isdigit(static_cast<unsigned char>(name[1])))) {
    unsigned code = 0;
    for (char c : name) code = code * 10 + static_cast<unsigned>(c - '0');
    if (code > kMaxCode) return false;
    *this = add(static_cast<uint8_t>(code));
    return true;
  }
  for (uint8_t code = 0; code <= kMaxCode; ++code) {
    if (same_name(name, code_name(code))) {
      *this = add(code);
      return true;
    }
  }
  for (uint8_t f = 0; f < kProxyFailureCount; ++f) {
    auto failure = static_cast<ProxyFailure>(f);
    if (same_name(name, policy::to_string(failure))) {
      *this = add(failure);
      return true;
    }
  }
  return false;
}

base::Result<FailureCodes> FailureCodes::parse(std::span<const std::string> names) {
  FailureCodes out;
  for (size_t i = 0; i < names.size(); ++i) {
    if (!out.add_name(names[i])) {
      return base::fail("[" + std::to_string(i) + "]: unknown status code or failure '" + names[i] +
                        "'; expected a gRPC code name (e.g. unavailable) or number 0..16, or "
                        "connect-failure, reset, per-try-timeout, refused-stream");
    }
  }
  return out;
}

std::string FailureCodes::to_string() const {
  std::string out;
  auto append = [&out](std::string_view s) {
    if (!out.empty()) out += ',';
    out += s;
  };
  for (uint8_t code = 0; code <= kMaxCode; ++code) {
    if (contains(code)) append(code_name(code));
  }
  for (uint8_t f = 0; f < kProxyFailureCount; ++f) {
    if (contains(static_cast<ProxyFailure>(f)))
      append(policy::to_string(static_cast<ProxyFailure>(f)));
  }
  return out;
}

}  // namespace skiff::policy
