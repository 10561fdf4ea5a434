// MessageRateLimiter: a per-stream limit on gRPC messages per second for long-lived streams
// (features.md §4.9). Owned by one Call on one worker, so it is a plain GCRA bucket with no
// atomics; the framer asks once per complete message.
#pragma once

#include <cstdint>

#include "base/clock.h"
#include "policy/token_bucket.h"

namespace skiff::policy {

class MessageRateLimiter {
 public:
  // |params.rate| messages per second, |params.burst| messages at once; starts full.
  explicit MessageRateLimiter(const TokenBucketParams& params);

  // One message at |now|. When rejected, |retry_after| says when the next one would be
  // allowed: the proxy either ends the stream with RESOURCE_EXHAUSTED or stops reading (holds
  // the flow-control window) until then.
  Admission try_acquire(base::TimePoint now);

  uint64_t admitted() const { return admitted_; }
  uint64_t rejected() const { return rejected_; }

 private:
  int64_t interval_ns_;
  int64_t tolerance_ns_;
  int64_t tat_ns_;
  uint64_t admitted_ = 0;
  uint64_t rejected_ = 0;
};

}  // namespace skiff::policy
