// Counter: a statistic written by one thread (its worker) and read by others (a /metrics
// scrape). The writer does a relaxed load and store, not a locked read-modify-write, so
// counting costs an ordinary add; readers see a recent value, never a torn one.
#pragma once

#include <atomic>
#include <cstdint>

namespace skiff::base {

class Counter {
 public:
  // Owning thread only.
  void add(uint64_t n = 1) {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  // Any thread.
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A level (open connections, active requests) as two counters, so it too has one writer per
// worker: the level is the sum over workers of opened - closed.
struct UpDownCounter {
  Counter up;
  Counter down;
  void inc() { up.add(); }
  void dec() { down.add(); }
  int64_t value() const { return static_cast<int64_t>(up.value() - down.value()); }
};

}  // namespace skiff::base
