// DeadlineSweep: far deadlines in the slots of a hashed timing wheel; each tick looks at the
// slot of its own tick only and hands the entries due in it to their owners' precise timers.
#include "net/deadline_sweep.h"

#include "base/check.h"

namespace skiff::net {

DeadlineSweep::Entry::~Entry() {
  if (sweep_ != nullptr) sweep_->remove(*this);
}

DeadlineSweep::DeadlineSweep(uv_loop_t* loop) : loop_(loop) {}

DeadlineSweep::~DeadlineSweep() { unlink_all(); }

void DeadlineSweep::unlink_all() {
  // What is left is unlinked, so no entry points here any more.
  for (Entry*& head : slots_) {
    while (head != nullptr) remove(*head);
  }
}

int64_t DeadlineSweep::tick_of(base::TimePoint t) const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t - epoch_).count() / kTick.count();
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
    epoch_ = now;
  }
  if (uv_is_active(reinterpret_cast<uv_handle_t*>(&tick_)) == 0) {
    // (Re)starting after the wheel went idle: no slot before this tick holds anything.
    swept_ = tick_of(now);
    SKIFF_CHECK(uv_timer_start(&tick_, &DeadlineSweep::on_tick, kTick.count(), kTick.count()) == 0);
  }
  // The first tick at whose start the deadline is within kNear: handed back then, never before.
  const auto due = std::chrono::ceil<std::chrono::milliseconds>(at - kNear - epoch_).count();
  entry.due_tick_ = (due + kTick.count() - 1) / kTick.count();
  if (entry.due_tick_ <= swept_) entry.due_tick_ = swept_ + 1;
  Entry*& head = slots_[static_cast<size_t>(entry.due_tick_) % kSlots];
  entry.sweep_ = this;
  entry.prev_ = nullptr;
  entry.next_ = head;
  if (head != nullptr) head->prev_ = &entry;
  head = &entry;
  ++size_;
  return true;
}

void DeadlineSweep::remove(Entry& entry) {
  if (entry.sweep_ != this) return;
  if (entry.prev_ != nullptr) {
    entry.prev_->next_ = entry.next_;
  } else {
    slots_[static_cast<size_t>(entry.due_tick_) % kSlots] = entry.next_;
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
  if (size_ == 0) {
    uv_timer_stop(&tick_);  // an idle worker does not tick
    return;
  }
  const int64_t current = tick_of(now);
  // Every tick since the last sweep (a late timer skips none); a full turn covers all slots.
  const int64_t from = std::max(swept_ + 1, current - static_cast<int64_t>(kSlots) + 1);
  for (int64_t t = from; t <= current; ++t) {
    for (Entry* e = slots_[static_cast<size_t>(t) % kSlots]; e != nullptr;) {
      Entry* next = e->next_;
      // The slot also holds entries of later turns of the wheel: those stay.
      if (e->due_tick_ <= current) {
        remove(*e);
        e->on_near();  // arms the owner's timer only: no other entry comes or goes (see Entry)
      }
      e = next;
    }
  }
  swept_ = current;
}

void DeadlineSweep::close() {
  if (closed_) return;
  closed_ = true;
  unlink_all();
  if (tick_initialized_) uv_close(reinterpret_cast<uv_handle_t*>(&tick_), nullptr);
}

}  // namespace skiff::net
