// Pushback: what an upstream's grpc-retry-pushback-ms says about retrying (gRPC A6 "Pushback"):
// nothing, "retry after this many ms", or "do not retry".
#pragma once

#include <cstdint>
#include <string_view>

#include "base/clock.h"

namespace skiff::policy {

struct Pushback {
  enum class Kind : uint8_t {
    kNone,        // no grpc-retry-pushback-ms on the response
    kRetryAfter,  // a non-negative value: the next attempt waits |delay| instead of backoff
    kStop,        // negative or unparseable: do not retry (or hedge) this call again
  };
  Kind kind = Kind::kNone;
  base::Duration delay{};  // kRetryAfter only

  static constexpr Pushback none() { return {}; }
  static constexpr Pushback stop() { return {Kind::kStop, {}}; }
  static constexpr Pushback retry_after(base::Duration d) { return {Kind::kRetryAfter, d}; }

  // Parses a header value that is present (pass nothing when the header is absent): an ASCII
  // signed 32-bit decimal integer. "250" is kRetryAfter(250ms); "-1", "", "1.5", " 5", "+5" and
  // values beyond int32 are kStop, as A6 says for negative or unparseable values. Leading zeros
  // ("007"), which A6 calls unnecessary, are accepted.
  static Pushback parse(std::string_view value);
};

}  // namespace skiff::policy
