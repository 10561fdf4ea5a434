// KeyedTokenBuckets: one rate limit per key (caller identity, or a request header's value),
// shared by all workers, in a fixed-size table so hostile keys cannot grow memory. Each key gets
// its own GCRA bucket (TokenBucket's algorithm); a new key takes the slot of the most idle key
// in its set, and a key whose bucket is full loses nothing by being evicted.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string_view>

#include "base/clock.h"
#include "base/error.h"
#include "policy/token_bucket.h"

namespace skiff::policy {

struct KeyedTokenBucketsParams {
  double rate = 100.0;       // per key, tokens per second, 0.001..1e6
  uint32_t burst = 1;        // per key
  uint32_t max_keys = 4096;  // table size (rounded up to a power of two, at least 4)
  uint64_t hash_seed = 0;    // per-process random seed, so keys cannot be chosen to collide

  base::Result<void> validate() const;
};

// Layout: max_keys slots of one std::atomic<uint64_t> each (8 bytes per key, allocated once),
// grouped in sets of 4. A key hashes to one set; its slot holds a 16-bit tag from the same hash
// and the bucket's TAT in microseconds (48 bits: 8.9 years of steady-clock time). Lookup reads
// the 4 slots; a hit is a GCRA step committed by compare-exchange on that slot; a miss replaces
// the slot with the earliest TAT (the fullest bucket: an idle key, or the least-limited one),
// also by compare-exchange, and any race retries from the start. No lock; relaxed order, as
// each slot is self-contained.
//
// Trade-offs, all bounded: two keys with the same set and tag (about 1 in 2^16 × sets) share a
// bucket; two threads inserting the same new key at once may create it twice (one extra burst);
// a key evicted while its bucket was not full comes back full. Because eviction takes the
// fullest bucket, a flood of new keys evicts each other and idle keys before it evicts a key
// that is being limited, so flooding does not lift anyone's limit.
class KeyedTokenBuckets {
 public:
  explicit KeyedTokenBuckets(const KeyedTokenBucketsParams& params);
  KeyedTokenBuckets(const KeyedTokenBuckets&) = delete;
  KeyedTokenBuckets& operator=(const KeyedTokenBuckets&) = delete;

  Admission try_acquire(std::string_view key, base::TimePoint now);

  // Number of slots: the most keys tracked at once. Fixed at construction.
  size_t capacity() const { return slot_count_; }
  // Keys evicted while their bucket was not full (a sign of key flooding), for metrics.
  uint64_t evictions() const { return evictions_.load(std::memory_order_relaxed); }

 private:
  static constexpr size_t kWays = 4;

  uint64_t hash(std::string_view key) const;

  const int64_t interval_us_;
  const int64_t tolerance_us_;
  const uint64_t seed_;
  size_t slot_count_;
  size_t set_mask_;
  std::unique_ptr<std::atomic<uint64_t>[]> slots_;
  std::atomic<uint64_t> evictions_{0};
};

}  // namespace skiff::policy
