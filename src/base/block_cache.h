// BlockCache: per-thread free lists of small heap blocks by size class, in front of malloc, for
// the objects every call creates and destroys (streams, calls, nghttp2's frames and buffers).
// glibc's own per-thread cache holds 7 blocks per size: a worker with a few hundred calls in
// flight frees and allocates far more than that per loop turn and falls through to the arena
// (locks, bin searches, consolidation). Here a freed block is pushed on its class's list and the
// next allocation of that class pops it: a few inline instructions each way.
//
// Blocks are plain malloc blocks, so any thread may free any block (it joins the freeing
// thread's lists). Each list keeps at most about kMaxBytesPerClass, and cache_trim() frees the
// blocks a list did not need since the last trim, so a list holds about what its load cycles
// through and an idle worker holds little.
// Sanitizer builds skip the cache (it would hide use-after-free from ASan).
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SKIFF_BLOCK_CACHE_OFF 1
#endif

namespace skiff::base {

namespace block_cache {

// Classes: 32-byte steps up to 1 KiB, 128-byte steps up to 4 KiB (a 1 KiB message plus a
// header must not take a 2 KiB block: 10,000 held streams would pay 10 MB for it), then 8 and
// 16 KiB. Larger blocks go straight to malloc.
constexpr size_t kStep = 32;
constexpr size_t kSmallMax = 1024;
constexpr size_t kSmallClasses = kSmallMax / kStep;
constexpr size_t kMidStep = 128;
constexpr size_t kMidMax = 4096;
constexpr size_t kMidClasses = (kMidMax - kSmallMax) / kMidStep;
constexpr size_t kClasses = kSmallClasses + kMidClasses + 2;
constexpr size_t kLargeMax = 16 * 1024;
// At most this many bytes of free blocks kept per class and thread. It bounds a burst, not the
// steady state (cache_trim() takes a list down to what it cycles through). Calls finish and
// start in bursts: 10,000 held streams return thousands of Calls, Bodies and nghttp2 streams in
// one loop turn and make as many a turn later, and at 128 KiB a class overflowed into glibc for
// 9 mallocs per call (15% of the worker; 4 MiB: -12% CPU per call, +2% peak RSS). Bulk
// transfers cycle 16 KiB Body chunks the same way (16 streams moving 1 MiB messages hold up to
// 8 MiB); past the cache, glibc handed the arena's top back after each burst and the next
// chunk page-faulted it in again.
constexpr size_t kMaxBytesPerClass = 4 * 1024 * 1024;
// The unsized interface's header: keeps the payload 16-byte aligned.
constexpr size_t kHeader = 16;

struct FreeBlock {
  FreeBlock* next;
};

struct FreeList {
  FreeBlock* head;
  uint32_t count;
  // 0 until the thread's reaper is armed (its first cache miss) and again once the thread is
  // exiting: then frees go straight to free().
  uint32_t limit;
  // The fewest blocks the list held since the last cache_trim(): that many were not needed.
  uint32_t low;
};

// Pops |list|'s head block (null when the list is empty), keeping its low point.
inline FreeBlock* take_head(FreeList& list) {
  FreeBlock* b = list.head;
  if (b == nullptr) return nullptr;
  list.head = b->next;
  // The next pop reads that block's link: start fetching it now (a free list's blocks are
  // scattered; the pop's dependent load was its whole cost in a perf profile).
  __builtin_prefetch(list.head);
  if (--list.count < list.low) list.low = list.count;
  return b;
}

// Trivially destructible and constant-initialised: every access is a plain TLS load, with no
// guard or wrapper call.
struct Lists {
  FreeList lists[kClasses];
  bool reaper_armed;
  // The class a cache_trim() that ran out of budget stopped at: the next call resumes there, so
  // the lists it already trimmed keep their new low point until the next full pass.
  uint32_t trim_from;
};

#ifndef SKIFF_BLOCK_CACHE_OFF
inline thread_local Lists tls_lists{};
#endif

constexpr uint32_t small_class(size_t size) {
  return size == 0 ? 0 : static_cast<uint32_t>((size - 1) / kStep);
}

// Out of line: the list is empty (malloc a block), full (free it), or the size is not small.
void* alloc_miss(uint32_t c);
void* alloc_other(size_t size);
void free_other(void* p, size_t size) noexcept;

}  // namespace block_cache

// Sized: the caller passes the same |size| to free as to allocate (class-specific
// operator new/delete, allocators). Never returns null (aborts like operator new on exhaustion).
inline void* cache_alloc(size_t size) {
#ifndef SKIFF_BLOCK_CACHE_OFF
  using namespace block_cache;
  if (size <= kSmallMax) {
    const uint32_t c = small_class(size);
    if (FreeBlock* b = take_head(tls_lists.lists[c])) return b;
    return alloc_miss(c);
  }
#endif
  return block_cache::alloc_other(size);
}

inline void cache_free(void* p, size_t size) noexcept {
#ifndef SKIFF_BLOCK_CACHE_OFF
  using namespace block_cache;
  if (size <= kSmallMax && p != nullptr) {
    FreeList& list = tls_lists.lists[small_class(size)];
    if (list.count < list.limit) {
      auto* b = static_cast<FreeBlock*>(p);
      b->next = list.head;
      list.head = b;
      ++list.count;
      return;
    }
  }
#endif
  block_cache::free_other(p, size);
}

// Unsized (C interfaces such as nghttp2_mem): a 16-byte header remembers the class. Blocks are
// 16-byte aligned. cache_realloc keeps the block when the new size fits its class.
void* cache_malloc(size_t size);
void cache_free_unsized(void* p) noexcept;
void* cache_realloc(void* p, size_t size);

// Frees, in every class, the cached blocks that were not needed since the last call (as many as
// the list's low point: it never dipped into them), so memory goes back after a burst of load;
// returns the bytes freed. The owner of a thread's loop calls it periodically (net::Worker:
// twice a second). At most |max_blocks| are freed per call (each is a free() call: a burst can
// leave tens of thousands); |*more|, when given, says whether unneeded blocks remain for the
// next call, which then resumes at the class this one stopped at (the lists before it were
// trimmed in this pass and wait for the next one).
size_t cache_trim(size_t max_blocks = SIZE_MAX, bool* more = nullptr) noexcept;

// Derive from this to allocate a class (and every class derived from it) through the cache.
struct CacheAllocated {
  static void* operator new(size_t size) { return cache_alloc(size); }
  static void operator delete(void* p, size_t size) noexcept { cache_free(p, size); }
};

// A std allocator over the cache, for node-based containers (a map's nodes).
template <typename T>
struct CacheAllocator {
  using value_type = T;
  CacheAllocator() = default;
  template <typename U>
  CacheAllocator(const CacheAllocator<U>&) {}  // NOLINT: implicit, as allocators must be
  T* allocate(size_t n) { return static_cast<T*>(cache_alloc(n * sizeof(T))); }
  void deallocate(T* p, size_t n) noexcept { cache_free(p, n * sizeof(T)); }
  template <typename U>
  bool operator==(const CacheAllocator<U>&) const {
    return true;
  }
};

}  // namespace skiff::base
