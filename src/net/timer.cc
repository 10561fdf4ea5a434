// Timer: the uv_timer_t lives in a heap box freed by uv_close's callback.
#include "net/timer.h"

#include "base/check.h"

namespace skiff::net {

struct Timer::Box {
  uv_timer_t handle{};
  std::function<void()> on_fire;
  TimerPool* pool = nullptr;  // where the handle goes back to; null: closed with the Timer
};

namespace {

void close_box(uv_timer_t* handle) {
  uv_close(reinterpret_cast<uv_handle_t*>(handle),
           [](uv_handle_t* h) { delete static_cast<Timer::Box*>(h->data); });
}

}  // namespace

Timer::Timer(uv_loop_t* loop, std::function<void()> on_fire) : box_(new Box) {
  box_->on_fire = std::move(on_fire);
  SKIFF_CHECK(uv_timer_init(loop, &box_->handle) == 0);
  box_->handle.data = box_;
}

Timer::Timer(TimerPool& pool, std::function<void()> on_fire) : box_(pool.acquire()) {
  box_->on_fire = std::move(on_fire);
}

Timer::~Timer() {
  if (box_->pool != nullptr) {
    box_->pool->release(box_);
  } else {
    close_box(&box_->handle);
  }
}

Timer::Box* TimerPool::acquire() {
  if (!free_.empty()) {
    Timer::Box* box = free_.back();
    free_.pop_back();
    return box;
  }
  auto* box = new Timer::Box;
  SKIFF_CHECK(uv_timer_init(loop_, &box->handle) == 0);
  box->handle.data = box;
  box->pool = this;
  return box;
}

void TimerPool::release(Timer::Box* box) {
  uv_timer_stop(&box->handle);
  box->on_fire = nullptr;
  if (closed_ || free_.size() >= kMaxPooled) {
    close_box(&box->handle);
    return;
  }
  free_.push_back(box);
}

void TimerPool::close() {
  closed_ = true;
  for (Timer::Box* box : free_) close_box(&box->handle);
  free_.clear();
}

TimerPool::~TimerPool() {
  // The owner closed the pool while the loop still ran (C6); boxes still out are released into
  // a closed pool, which closes them.
  SKIFF_CHECK(free_.empty());
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
