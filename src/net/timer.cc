// Timer: the uv_timer_t lives in a heap box freed by uv_close's callback.
#include "net/timer.h"

#include "base/check.h"

namespace skiff::net {

struct Timer::Box {
  uv_timer_t handle{};
  std::function<void()> on_fire;
};

Timer::Timer(uv_loop_t* loop, std::function<void()> on_fire) : box_(new Box) {
  box_->on_fire = std::move(on_fire);
  SKIFF_CHECK(uv_timer_init(loop, &box_->handle) == 0);
  box_->handle.data = box_;
}

Timer::~Timer() {
  uv_close(reinterpret_cast<uv_handle_t*>(&box_->handle),
           [](uv_handle_t* h) { delete static_cast<Box*>(h->data); });
}

void Timer::start(std::chrono::milliseconds timeout) {
  uint64_t ms = timeout.count() < 0 ? 0 : static_cast<uint64_t>(timeout.count());
  uv_timer_start(
      &box_->handle,
      [](uv_timer_t* h) {
        // Copy first: the callback may destroy the Timer (and so schedule the box's close).
        auto fire = static_cast<Box*>(h->data)->on_fire;
        fire();
      },
      ms, 0);
}

void Timer::stop() { uv_timer_stop(&box_->handle); }

bool Timer::active() const {
  return uv_is_active(reinterpret_cast<const uv_handle_t*>(&box_->handle)) != 0;
}

}  // namespace skiff::net
