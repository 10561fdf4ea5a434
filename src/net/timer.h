// Timer: a one-shot/repeating uv timer that its owner may destroy at any time (the handle is
// freed by its close callback, C6).
#pragma once

#include <uv.h>

#include <chrono>
#include <functional>
#include <vector>

namespace skiff::net {

class TimerPool;

class Timer {
 public:
  Timer(uv_loop_t* loop, std::function<void()> on_fire);
  // A timer whose handle comes from (and returns to) |pool|: for the short-lived timers of the
  // request path (a call's deadline), it saves an allocation, uv_timer_init and uv_close each.
  Timer(TimerPool& pool, std::function<void()> on_fire);
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  void start(std::chrono::milliseconds timeout);
  void stop();
  bool active() const;

  struct Box;  // opaque: the handle and the callback, freed (or pooled) after close

 private:
  Box* box_;
};

// Stopped timer handles of one loop, kept for reuse. close() (before the loop ends) closes them;
// handles released after that are closed instead of kept.
class TimerPool {
 public:
  explicit TimerPool(uv_loop_t* loop) : loop_(loop) {}
  ~TimerPool();
  TimerPool(const TimerPool&) = delete;
  TimerPool& operator=(const TimerPool&) = delete;

  void close();

 private:
  friend class Timer;
  Timer::Box* acquire();
  void release(Timer::Box* box);

  // Enough for a busy worker's calls; more are closed, so an idle worker gives memory back.
  static constexpr size_t kMaxPooled = 1024;
  uv_loop_t* loop_;
  std::vector<Timer::Box*> free_;
  bool closed_ = false;
};

}  // namespace skiff::net
