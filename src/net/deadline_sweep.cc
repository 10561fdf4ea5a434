// DeadlineSweep: one intrusive list of far deadlines and a coarse tick that hands near ones to
// their owners' precise timers.
#include "net/deadline_sweep.h"

#include "base/check.h"

namespace skiff::net {

DeadlineSweep::Entry::~Entry() {
  if (sweep_ != nullptr) sweep_->remove(*this);
}

DeadlineSweep::DeadlineSweep(uv_loop_t* loop) : loop_(loop) {}

DeadlineSweep::~DeadlineSweep() {
  // Unlink what is left so no entry points here any more.
  while (head_ != nullptr) remove(*head_);
}

bool DeadlineSweep::add(Entry& entry, base::TimePoint at, base::TimePoint now) {
  SKIFF_CHECK(entry.sweep_ == nullptr);
  if (closed_ || at - now <= kNear) return false;
  if (!tick_initialized_) {
    // Here rather than in the constructor: the worker's loop is initialised after its members.
    SKIFF_CHECK(uv_timer_init(loop_, &tick_) == 0);
    tick_.data = this;
    // Entries belong to calls, which keep the loop alive with their own handles.
    uv_unref(reinterpret_cast<uv_handle_t*>(&tick_));
    tick_initialized_ = true;
  }
  entry.sweep_ = this;
  entry.at_ = at;
  entry.prev_ = nullptr;
  entry.next_ = head_;
  if (head_ != nullptr) head_->prev_ = &entry;
  head_ = &entry;
  ++size_;
  // The tick stops itself once it finds the list empty, so a worker whose calls come and go
  // one at a time does not start and stop it for each.
  if (uv_is_active(reinterpret_cast<uv_handle_t*>(&tick_)) == 0) {
    SKIFF_CHECK(uv_timer_start(&tick_, &DeadlineSweep::on_tick, kTick.count(), kTick.count()) == 0);
  }
  return true;
}

void DeadlineSweep::remove(Entry& entry) {
  if (entry.sweep_ != this) return;
  if (entry.prev_ != nullptr) {
    entry.prev_->next_ = entry.next_;
  } else {
    head_ = entry.next_;
  }
  if (entry.next_ != nullptr) entry.next_->prev_ = entry.prev_;
  entry.sweep_ = nullptr;
  entry.prev_ = entry.next_ = nullptr;
  --size_;
}

void DeadlineSweep::on_tick(uv_timer_t* handle) {
  static_cast<DeadlineSweep*>(handle->data)->sweep(base::SteadyClock::now());
}

void DeadlineSweep::sweep(base::TimePoint now) {
  if (head_ == nullptr) {
    uv_timer_stop(&tick_);  // an idle worker does not tick
    return;
  }
  for (Entry* e = head_; e != nullptr;) {
    Entry* next = e->next_;
    if (e->at_ - now <= kNear) {
      remove(*e);
      e->on_near();  // arms the owner's timer only: no other entry comes or goes (see Entry)
    }
    e = next;
  }
}

void DeadlineSweep::close() {
  if (closed_) return;
  closed_ = true;
  while (head_ != nullptr) remove(*head_);
  if (tick_initialized_) uv_close(reinterpret_cast<uv_handle_t*>(&tick_), nullptr);
}

}  // namespace skiff::net
