// KeyedTokenBuckets: a 4-way set-associative table of packed (tag, TAT) words.
#include "policy/keyed_token_buckets.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstring>

#include "base/splitmix.h"

namespace skiff::policy {
namespace {

constexpr int kTatBits = 48;
constexpr uint64_t kTatMask = (uint64_t{1} << kTatBits) - 1;

constexpr uint64_t pack(uint16_t tag, int64_t tat_us) {
  return uint64_t{tag} << kTatBits | (static_cast<uint64_t>(tat_us) & kTatMask);
}
constexpr uint16_t tag_of(uint64_t word) { return static_cast<uint16_t>(word >> kTatBits); }
constexpr int64_t tat_of(uint64_t word) { return static_cast<int64_t>(word & kTatMask); }

int64_t to_us(base::TimePoint t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

}  // namespace

base::Result<void> KeyedTokenBucketsParams::validate() const {
  if (!(rate >= 0.001) || !(rate <= 1e6)) {
    return base::fail("rate_limit.rps must be 0.001..1000000 for a keyed limit");
  }
  if (burst < 1) return base::fail("rate_limit.burst must be >= 1");
  if (static_cast<double>(burst) * 1e6 / rate > 1e13) {  // keep TATs far inside 48 bits
    return base::fail("rate_limit.burst / rate_limit.rps is too large for a keyed limit");
  }
  if (max_keys < 1 || max_keys > (1u << 24))
    return base::fail("rate_limit.max_keys must be 1..16777216");
  return {};
}

KeyedTokenBuckets::KeyedTokenBuckets(const KeyedTokenBucketsParams& params)
    : interval_us_(std::max<int64_t>(1, std::llround(1e6 / params.rate))),
      tolerance_us_(interval_us_ * static_cast<int64_t>(std::max<uint32_t>(params.burst, 1))),
      seed_(base::splitmix64_mix(params.hash_seed ^ 0x9e3779b97f4a7c15ULL)) {
  slot_count_ = std::bit_ceil(std::max<size_t>(params.max_keys, kWays));
  set_mask_ = slot_count_ / kWays - 1;
  slots_ = std::make_unique<std::atomic<uint64_t>[]>(slot_count_);  // value-initialised: 0
}

uint64_t KeyedTokenBuckets::hash(std::string_view key) const {
  // Seeded 8-bytes-at-a-time multiply-mix; not cryptographic, but the seed keeps a client
  // from aiming many keys at one set without knowing it.
  uint64_t h = seed_ ^ (key.size() * 0xff51afd7ed558ccdULL);
  size_t i = 0;
  for (; i + 8 <= key.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, key.data() + i, 8);
    h = base::splitmix64_mix(h ^ w);
  }
  uint64_t tail = 0;
  if (i < key.size()) std::memcpy(&tail, key.data() + i, key.size() - i);  // data() may be null
  return base::splitmix64_mix(h ^ tail ^ 0x2545f4914f6cdd1dULL);
}

Admission KeyedTokenBuckets::try_acquire(std::string_view key, base::TimePoint now) {
  const uint64_t h = hash(key);
  const uint16_t tag = static_cast<uint16_t>(h) | 1;  // never 0: a zero word is an empty slot
  std::atomic<uint64_t>* set = &slots_[((h >> 16) & set_mask_) * kWays];
  const int64_t t = to_us(now);

  for (;;) {
    uint64_t words[kWays];
    size_t hit = kWays;
    size_t victim = 0;
    for (size_t w = 0; w < kWays; ++w) {
      words[w] = set[w].load(std::memory_order_relaxed);
      if (hit == kWays && tag_of(words[w]) == tag) hit = w;
      if (tat_of(words[w]) < tat_of(words[victim])) victim = w;
    }
    if (hit != kWays) {
      const GcraStep step = gcra_step(tat_of(words[hit]), t, interval_us_, tolerance_us_);
      if (!step.allowed) return {false, std::chrono::microseconds(step.wait)};
      if (set[hit].compare_exchange_weak(words[hit], pack(tag, step.tat),
                                         std::memory_order_relaxed)) {
        return {true, {}};
      }
      continue;
    }
    // A new key starts with a full bucket, so its first request is always allowed (burst >= 1).
    const GcraStep step = gcra_step(0, t, interval_us_, tolerance_us_);
    if (set[victim].compare_exchange_weak(words[victim], pack(tag, step.tat),
                                          std::memory_order_relaxed)) {
      if (words[victim] != 0 && tat_of(words[victim]) > t) {
        evictions_.fetch_add(1, std::memory_order_relaxed);
      }
      return {true, {}};
    }
  }
}

}  // namespace skiff::policy
