// BlockCache: intrusive free lists per size class in a trivially destructible thread_local, so
// the fast path is a TLS access, a pop or push, and a count; a reaper object flushes the lists
// when the thread exits.
#include "base/block_cache.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "base/check.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SKIFF_BLOCK_CACHE_OFF 1
#endif

namespace skiff::base {
namespace {

// Classes: 32-byte steps up to 1 KiB (32 classes), then 2, 4, 8 and 16 KiB. Larger blocks go
// straight to malloc.
constexpr size_t kStep = 32;
constexpr size_t kSmallMax = 1024;
constexpr size_t kSmallClasses = kSmallMax / kStep;
constexpr size_t kClasses = kSmallClasses + 4;
constexpr size_t kLargeMax = 16 * 1024;
constexpr uint32_t kUncached = 0xffffffff;
// At most this many bytes of free blocks kept per class and thread.
constexpr size_t kMaxBytesPerClass = 256 * 1024;
// The unsized interface's header: keeps the payload 16-byte aligned.
constexpr size_t kHeader = 16;

constexpr size_t class_size(size_t c) {
  return c < kSmallClasses ? (c + 1) * kStep : kSmallMax << (c - kSmallClasses + 1);
}

constexpr size_t class_cap(size_t c) {
  return kMaxBytesPerClass / class_size(c) < 16 ? 16 : kMaxBytesPerClass / class_size(c);
}

// kUncached for sizes above kLargeMax.
inline uint32_t class_of(size_t size) {
  if (size <= kSmallMax) return size == 0 ? 0 : static_cast<uint32_t>((size - 1) / kStep);
  if (size > kLargeMax) return kUncached;
  // 1025..2048 -> kSmallClasses, ..4096 -> +1, ..8192 -> +2, ..16384 -> +3.
  uint32_t c = static_cast<uint32_t>(kSmallClasses);
  for (size_t s = 2 * kSmallMax; s < size; s <<= 1) ++c;
  return c;
}

void* checked_malloc(size_t size) {
  void* p = std::malloc(size);
  SKIFF_CHECK(p != nullptr);  // out of memory: operator new would not return either
  return p;
}

#ifndef SKIFF_BLOCK_CACHE_OFF

struct FreeBlock {
  FreeBlock* next;
};

struct FreeList {
  FreeBlock* head;
  uint32_t count;
};

// Trivially destructible and zero-initialised: no TLS guard on the fast path.
struct Lists {
  FreeList lists[kClasses];
  bool reaper_armed;
  bool dead;  // the thread is exiting: blocks freed from here on go straight to free()
};
thread_local Lists tls_lists;

struct Reaper {
  ~Reaper() {
    Lists& l = tls_lists;
    l.dead = true;
    for (FreeList& list : l.lists) {
      while (list.head != nullptr) {
        FreeBlock* b = list.head;
        list.head = b->next;
        std::free(b);
      }
      list.count = 0;
    }
  }
};

void arm_reaper(Lists& l) {
  thread_local Reaper reaper;
  (void)reaper;
  l.reaper_armed = true;
}

inline void* alloc_class(uint32_t c) {
  Lists& l = tls_lists;
  FreeList& list = l.lists[c];
  if (FreeBlock* b = list.head; b != nullptr) {
    list.head = b->next;
    --list.count;
    return b;
  }
  if (!l.reaper_armed && !l.dead) arm_reaper(l);
  return checked_malloc(class_size(c));
}

inline void free_class(void* p, uint32_t c) noexcept {
  Lists& l = tls_lists;
  FreeList& list = l.lists[c];
  if (l.dead || !l.reaper_armed || list.count >= class_cap(c)) {
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

void* cache_alloc(size_t size) {
  uint32_t c = class_of(size);
  return c == kUncached ? checked_malloc(size) : alloc_class(c);
}

void cache_free(void* p, size_t size) noexcept {
  if (p == nullptr) return;
  uint32_t c = class_of(size);
  if (c == kUncached) {
    std::free(p);
  } else {
    free_class(p, c);
  }
}

void* cache_malloc(size_t size) {
  uint32_t c = class_of(size + kHeader);
  char* block =
      static_cast<char*>(c == kUncached ? checked_malloc(size + kHeader) : alloc_class(c));
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
    free_class(block, c);
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
  free_class(block, c);
  return moved;
}

#else  // sanitizer builds: plain malloc, so ASan sees every block's life

void* cache_alloc(size_t size) { return checked_malloc(size == 0 ? 1 : size); }
void cache_free(void* p, size_t) noexcept { std::free(p); }
void* cache_malloc(size_t size) { return checked_malloc(size == 0 ? 1 : size); }
void cache_free_unsized(void* p) noexcept { std::free(p); }
void* cache_realloc(void* p, size_t size) {
  void* q = std::realloc(p, size == 0 ? 1 : size);
  SKIFF_CHECK(q != nullptr);
  return q;
}

#endif

}  // namespace skiff::base
