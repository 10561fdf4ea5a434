// MethodBreakers: a claim-once open-addressed table of breakers.
#include "policy/method_breakers.h"

#include <thread>

namespace skiff::policy {
namespace {

constexpr uint8_t kEmpty = 0;
constexpr uint8_t kClaiming = 1;
constexpr uint8_t kReady = 2;

// FNV-1a: method names are short, and a collision costs one more probe.
uint64_t hash(std::string_view s) {
  uint64_t h = 1469598103934665603ULL;
  for (char c : s) {
    h ^= static_cast<uint8_t>(c);
    h *= 1099511628211ULL;
  }
  return h;
}

int rank(BreakerState s) {
  switch (s) {
    case BreakerState::kClosed:
      return 0;
    case BreakerState::kHalfOpen:
      return 1;
    case BreakerState::kOpen:
      return 2;
  }
  return 0;
}

}  // namespace

MethodBreakers::MethodBreakers(const CircuitBreakerParams& params, size_t max_methods)
    : slot_count_(max_methods < 1 ? 1 : max_methods),
      slots_(std::make_unique<Slot[]>(slot_count_)),
      overflow_(params) {
  for (size_t i = 0; i < slot_count_; ++i) {
    slots_[i].breaker = std::make_unique<CircuitBreaker>(params);
  }
  if (slot_count_ == 1) slots_[0].state.store(kReady, std::memory_order_relaxed);
}

CircuitBreaker& MethodBreakers::for_method(std::string_view method) {
  if (slot_count_ == 1) return *slots_[0].breaker;
  const size_t start = hash(method) % slot_count_;
  for (size_t i = 0; i < slot_count_; ++i) {
    Slot& slot = slots_[(start + i) % slot_count_];
    uint8_t state = slot.state.load(std::memory_order_acquire);
    if (state == kEmpty) {
      uint8_t expected = kEmpty;
      if (slot.state.compare_exchange_strong(expected, kClaiming, std::memory_order_acquire)) {
        slot.name.assign(method);
        slot.state.store(kReady, std::memory_order_release);
        return *slot.breaker;
      }
      state = expected;
    }
    // Another worker is writing this slot's name: it is a few instructions from done.
    while (state == kClaiming) {
      std::this_thread::yield();
      state = slot.state.load(std::memory_order_acquire);
    }
    if (slot.name == method) return *slot.breaker;
  }
  return overflow_;
}

void MethodBreakers::for_each(
    const std::function<void(std::string_view, const CircuitBreaker&)>& fn) const {
  size_t ready = 0;
  for (size_t i = 0; i < slot_count_; ++i) {
    const Slot& slot = slots_[i];
    if (slot.state.load(std::memory_order_acquire) != kReady) continue;
    ++ready;
    fn(slot.name, *slot.breaker);
  }
  // The overflow breaker is in use only once every slot is taken.
  if (slot_count_ > 1 && ready == slot_count_) fn(kOverflowName, overflow_);
}

BreakerState MethodBreakers::worst_state() const {
  BreakerState worst = BreakerState::kClosed;
  for_each([&worst](std::string_view, const CircuitBreaker& b) {
    if (rank(b.state()) > rank(worst)) worst = b.state();
  });
  return worst;
}

uint64_t MethodBreakers::times_opened() const {
  uint64_t n = 0;
  for_each([&n](std::string_view, const CircuitBreaker& b) { n += b.times_opened(); });
  return n;
}

}  // namespace skiff::policy
