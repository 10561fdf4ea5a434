// Time for policy code: a Clock interface so tests can use FakeClock instead of real time.
#pragma once

#include <chrono>

namespace skiff::base {

using SteadyClock = std::chrono::steady_clock;
using TimePoint = SteadyClock::time_point;
using Duration = SteadyClock::duration;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;
};

class RealClock final : public Clock {
 public:
  TimePoint now() const override { return SteadyClock::now(); }
};

// Test clock: time moves only when advance() is called.
class FakeClock final : public Clock {
 public:
  TimePoint now() const override { return now_; }
  void advance(Duration d) { now_ += d; }

 private:
  TimePoint now_{};
};

}  // namespace skiff::base
