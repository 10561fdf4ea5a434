// Outcome: names for codes and proxy failures.
#include "policy/outcome.h"

#include <array>

#include "base/status_code_names.h"

namespace skiff::policy {

std::string_view to_string(ProxyFailure failure) {
  switch (failure) {
    case ProxyFailure::kConnectFailure:
      return "connect-failure";
    case ProxyFailure::kReset:
      return "reset";
    case ProxyFailure::kPerTryTimeout:
      return "per-try-timeout";
    case ProxyFailure::kRefusedStream:
      return "refused-stream";
  }
  return "?";
}

std::string_view code_name(uint8_t code) { return base::status_code_name(code); }

std::string_view to_string(Outcome outcome) {
  return outcome.is_proxy_failure() ? to_string(outcome.proxy_failure())
                                    : code_name(outcome.code());
}

}  // namespace skiff::policy
