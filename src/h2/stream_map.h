// StreamMap: a session's live streams by id — open addressing over a power-of-two table with
// Fibonacci hashing and linear probing (backward-shift deletion, no tombstones). nghttp2 calls
// back several times per frame, so every header field, DATA chunk and send looks a stream up:
// here that is a multiply, a shift and a compare or two, where std::unordered_map paid a
// modulo by a prime and a node chase. Values are non-owning pointers (stable while they move
// between slots); the session owns the objects.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace skiff::h2 {

template <typename T>
class StreamMap {
 public:
  // |id| > 0 (0 marks an empty slot; HTTP/2 never uses it for a stream).
  T* find(int32_t id) const {
    if (size_ == 0) return nullptr;
    for (size_t i = slot_of(id);; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.id == id) return s.value;
      if (s.id == 0) return nullptr;
    }
  }

  // |id| is not in the map yet.
  void insert(int32_t id, T* value) {
    // At most half full: probes stay short.
    if ((size_ + 1) * 2 > slots_.size()) grow();
    size_t i = slot_of(id);
    while (slots_[i].id != 0) i = (i + 1) & mask_;
    slots_[i] = Slot{id, value};
    ++size_;
  }

  // Removes |id|; returns its value, or null if it was not there.
  T* erase(int32_t id) {
    if (size_ == 0) return nullptr;
    size_t i = slot_of(id);
    while (slots_[i].id != id) {
      if (slots_[i].id == 0) return nullptr;
      i = (i + 1) & mask_;
    }
    T* value = slots_[i].value;
    // Backward shift: pull later entries of the probe run into the hole when their home slot
    // is at or before it (cyclically), so lookups never need tombstones.
    size_t hole = i;
    for (size_t j = (i + 1) & mask_; slots_[j].id != 0; j = (j + 1) & mask_) {
      size_t home = slot_of(slots_[j].id);
      if (((j - home) & mask_) >= ((j - hole) & mask_)) {
        slots_[hole] = slots_[j];
        hole = j;
      }
    }
    slots_[hole] = Slot{};
    --size_;
    return value;
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // Calls |fn(id, value)| for every entry; |fn| must not change the map.
  template <typename Fn>
  void for_each(Fn&& fn) const {
    for (const Slot& s : slots_) {
      if (s.id != 0) fn(s.id, s.value);
    }
  }

  // Empties the map and returns what it held (for closing a session).
  StreamMap take() { return std::exchange(*this, StreamMap()); }

 private:
  struct Slot {
    int32_t id = 0;
    T* value = nullptr;
  };

  size_t slot_of(int32_t id) const {
    // Fibonacci hashing: consecutive ids (1, 3, 5, ...) land far apart.
    return static_cast<size_t>((static_cast<uint32_t>(id) * 2654435769u) >> shift_);
  }

  void grow() {
    std::vector<Slot> old = std::move(slots_);
    const size_t capacity = old.empty() ? 16 : old.size() * 2;
    slots_.assign(capacity, Slot{});
    mask_ = capacity - 1;
    shift_ = 32;
    for (size_t c = capacity; c > 1; c >>= 1) --shift_;
    size_ = 0;
    for (const Slot& s : old) {
      if (s.id != 0) insert(s.id, s.value);
    }
  }

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  unsigned shift_ = 32;
  size_t size_ = 0;
};

}  // namespace skiff::h2
