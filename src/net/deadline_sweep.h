// DeadlineSweep: deadlines far ahead cost no timer. A call's deadline (a route timeout, a
// client's grpc-timeout) is usually seconds away while the call ends in microseconds, so arming
// a uv timer for each (a heap insertion and removal, a pooled handle, a callback) was the
// deadline's whole cost: +0.3 us per call at saturation, more with 10,000 calls in flight (a
// deeper heap). Far deadlines go into the slots of a hashed timing wheel instead (intrusive
// lists: two pointer writes to add, two to remove); a coarse tick looks at its own slot only and
// hands the entries due there (within kNear of their time) to their owner, which arms a precise
// timer for the rest. A deadline never fires early, and a precise timer fires it on time. An
// entry further away than one turn of the wheel (kSlots ticks) is looked at once per turn.
#pragma once

#include <uv.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>

#include "base/clock.h"

namespace skiff::net {

class DeadlineSweep {
 public:
  // How often the list is walked, and how close a deadline must be to get a precise timer.
  static constexpr std::chrono::milliseconds kTick{50};
  static constexpr std::chrono::milliseconds kNear{2 * kTick};
  // Slots of the wheel: one turn is kSlots * kTick (12.8 s).
  static constexpr size_t kSlots = 256;

  // Embedded in its owner; unlinks itself when destroyed.
  class Entry {
   public:
    Entry() = default;
    virtual ~Entry();
    Entry(const Entry&) = delete;
    Entry& operator=(const Entry&) = delete;
    bool linked() const { return sweep_ != nullptr; }

   protected:
    // The deadline is within kNear (it may have passed): arm the precise timer now, and do
    // nothing else (the sweep is walking the list: no other entry may be added or removed
    // here). The entry is already off the list.
    virtual void on_near() = 0;

   private:
    friend class DeadlineSweep;
    DeadlineSweep* sweep_ = nullptr;
    Entry* prev_ = nullptr;
    Entry* next_ = nullptr;
    int64_t due_tick_ = 0;  // the tick that hands it back; its slot is due_tick_ % kSlots
  };

  explicit DeadlineSweep(uv_loop_t* loop);
  ~DeadlineSweep();
  DeadlineSweep(const DeadlineSweep&) = delete;
  DeadlineSweep& operator=(const DeadlineSweep&) = delete;

  // Puts |entry| on the wheel for |at| and returns true, or returns false when |at| is within
  // kNear of |now| (the caller arms its precise timer at once). |entry| must not be linked.
  bool add(Entry& entry, base::TimePoint at, base::TimePoint now);
  // Takes |entry| off the wheel (no-op when it is not on it).
  void remove(Entry& entry);
  size_t size() const { return size_; }

  // One tick at time |now|: hands back every entry due by then. The tick timer calls it;
  // public so tests can drive the wheel through time without waiting.
  void sweep(base::TimePoint now);

  // Closes the tick handle (the worker's own handles, before its loop ends). Entries still on
  // the wheel are dropped from it.
  void close();

 private:
  static void on_tick(uv_timer_t* handle);
  int64_t tick_of(base::TimePoint t) const;  // ticks since epoch_
  void unlink_all();

  uv_loop_t* loop_;
  uv_timer_t tick_{};
  bool tick_initialized_ = false;
  base::TimePoint epoch_{};  // tick 0 starts here (the first add)
  int64_t swept_ = 0;        // the last tick whose slot was looked at
  std::array<Entry*, kSlots> slots_{};
  size_t size_ = 0;
  bool closed_ = false;
};

}  // namespace skiff::net
