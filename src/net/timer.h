// Timer: a one-shot/repeating uv timer that its owner may destroy at any time (the handle is
// freed by its close callback, C6).
#pragma once

#include <uv.h>

#include <chrono>
#include <functional>

namespace skiff::net {

class Timer {
 public:
  Timer(uv_loop_t* loop, std::function<void()> on_fire);
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  void start(std::chrono::milliseconds timeout);
  void stop();
  bool active() const;

 private:
  struct Box;
  Box* box_;
};

}  // namespace skiff::net
