// BlockCache: the misses (malloc or free a block), the larger classes, the unsized interface,
// and the reaper that empties a thread's lists when it exits.
#include "base/block_cache.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "base/check.h"

namespace skiff::base {
namespace block_cache {
namespace {

constexpr uint32_t kUncached = 0xffffffff;

constexpr size_t class_size(size_t c) {
  if (c < kSmallClasses) return (c + 1) * kStep;
  if (c < kSmallClasses + kMidClasses) return kSmallMax + (c - kSmallClasses + 1) * kMidStep;
  return kMidMax << (c - kSmallClasses - kMidClasses + 1);
}

static_assert(class_size(kClasses - 1) == kLargeMax);

constexpr uint32_t class_cap(size_t c) {
  return static_cast<uint32_t>(kMaxBytesPerClass / class_size(c));
}

// kUncached for sizes above kLargeMax.
[[maybe_unused]] uint32_t class_of(size_t size) {
  if (size <= kSmallMax) return small_class(size);
  if (size <= kMidMax) {
    return static_cast<uint32_t>(kSmallClasses + (size - kSmallMax - 1) / kMidStep);
  }
  if (size > kLargeMax) return kUncached;
  return static_cast<uint32_t>(kSmallClasses + kMidClasses + (size <= 2 * kMidMax ? 0 : 1));
}

void* checked_malloc(size_t size) {
  void* p = std::malloc(size == 0 ? 1 : size);
  SKIFF_CHECK(p != nullptr);  // out of memory: operator new would not return either
  return p;
}

#ifndef SKIFF_BLOCK_CACHE_OFF

struct Reaper {
  ~Reaper() {
    for (FreeList& list : tls_lists.lists) {
      list.limit = 0;  // from here on, frees on this thread go straight to free()
      while (list.head != nullptr) {
        FreeBlock* b = list.head;
        list.head = b->next;
        std::free(b);
      }
      list.count = list.low = 0;
    }
  }
};

void arm_reaper() {
  thread_local Reaper reaper;
  (void)reaper;
  Lists& l = tls_lists;
  l.reaper_armed = true;
  for (size_t c = 0; c < kClasses; ++c) l.lists[c].limit = class_cap(c);
}

void* pop(uint32_t c) {
  if (FreeBlock* b = take_head(tls_lists.lists[c])) return b;
  return alloc_miss(c);
}

void push(void* p, uint32_t c) noexcept {
  FreeList& list = tls_lists.lists[c];
  if (list.count >= list.limit) {
    std::free(p);
    return;
  }
  auto* b = static_cast<FreeBlock*>(p);
  b->next = list.head;
  list.head = b;
  ++list.count;
}

#endif

}  // namespace

#ifndef SKIFF_BLOCK_CACHE_OFF

void* alloc_miss(uint32_t c) {
  // A thread's first miss arms its reaper (a thread_local with a destructor, so only here,
  // off the fast path). An exiting thread (reaper ran) keeps limit 0: nothing is cached.
  if (!tls_lists.reaper_armed) arm_reaper();
  return checked_malloc(class_size(c));
}

void* alloc_other(size_t size) {
  uint32_t c = class_of(size);
  return c == kUncached ? checked_malloc(size) : pop(c);
}

void free_other(void* p, size_t size) noexcept {
  if (p == nullptr) return;
  uint32_t c = class_of(size);
  if (c == kUncached) {
    std::free(p);
  } else {
    push(p, c);
  }
}

#else  // sanitizer builds: plain malloc, so ASan sees every block's life

void* alloc_miss(uint32_t c) { return checked_malloc(class_size(c)); }
void* alloc_other(size_t size) { return checked_malloc(size); }
void free_other(void* p, size_t) noexcept { std::free(p); }

#endif

}  // namespace block_cache

using namespace block_cache;

#ifndef SKIFF_BLOCK_CACHE_OFF

void* cache_malloc(size_t size) {
  uint32_t c = class_of(size + kHeader);
  char* block = static_cast<char*>(c == kUncached ? checked_malloc(size + kHeader) : pop(c));
  std::memcpy(block, &c, sizeof c);
  return block + kHeader;
}

void cache_free_unsized(void* p) noexcept {
  if (p == nullptr) return;
  char* block = static_cast<char*>(p) - kHeader;
  uint32_t c;
  std::memcpy(&c, block, sizeof c);
  if (c == kUncached) {
    std::free(block);
  } else {
    push(block, c);
  }
}

void* cache_realloc(void* p, size_t size) {
  if (p == nullptr) return cache_malloc(size);
  char* block = static_cast<char*>(p) - kHeader;
  uint32_t c;
  std::memcpy(&c, block, sizeof c);
  if (c == kUncached) {
    // Stays an uncached block whatever its new size.
    char* grown = static_cast<char*>(std::realloc(block, size + kHeader));
    SKIFF_CHECK(grown != nullptr);
    return grown + kHeader;
  }
  if (size + kHeader <= class_size(c)) return p;
  void* moved = cache_malloc(size);
  std::memcpy(moved, p, class_size(c) - kHeader);  // all the old block held (size is larger)
  push(block, c);
  return moved;
}

size_t cache_trim(size_t max_blocks, bool* more) noexcept {
  size_t freed = 0;
  if (more != nullptr) *more = false;
  Lists& lists = tls_lists;
  for (uint32_t c = lists.trim_from; c < kClasses; ++c) {
    FreeList& list = lists.lists[c];
    // The list never went below |low| blocks since the last trim: that many were not needed.
    // Which ones go does not matter; the head is where they can be taken without a walk.
    const uint32_t n = static_cast<uint32_t>(std::min<size_t>(list.low, max_blocks));
    for (uint32_t i = 0; i < n; ++i) {
      FreeBlock* b = list.head;
      list.head = b->next;
      std::free(b);
    }
    list.count -= n;
    list.low -= n;
    max_blocks -= n;
    freed += n * class_size(c);
    if (list.low > 0) {
      // Out of budget: the rest of this list and the lists after it wait for the next call.
      lists.trim_from = c;
      if (more != nullptr) *more = true;
      return freed;
    }
    list.low = list.count;
  }
  lists.trim_from = 0;
  return freed;
}

#else

size_t cache_trim(size_t, bool* more) noexcept {
  if (more != nullptr) *more = false;
  return 0;
}
void* cache_malloc(size_t size) { return checked_malloc(size); }
void cache_free_unsized(void* p) noexcept { std::free(p); }
void* cache_realloc(void* p, size_t size) {
  void* q = std::realloc(p, size == 0 ? 1 : size);
  SKIFF_CHECK(q != nullptr);
  return q;
}

#endif

}  // namespace skiff::base
