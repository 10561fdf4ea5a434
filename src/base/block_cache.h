// BlockCache: per-thread free lists of small heap blocks by size class, in front of malloc, for
// the objects every call creates and destroys (streams, calls, nghttp2's frames and buffers).
// glibc's own per-thread cache holds 7 blocks per size: a worker with a few hundred calls in
// flight frees and allocates far more than that per loop turn and falls through to the arena
// (locks, bin searches, consolidation). Here a freed block is pushed on its class's list and the
// next allocation of that class pops it: a few instructions each way.
//
// Blocks are plain malloc blocks, so any thread may free any block (it joins the freeing
// thread's lists). Each list keeps at most about kMaxBytesPerClass, so an idle worker holds
// little. Sanitizer builds skip the cache (it would hide use-after-free from ASan).
#pragma once

#include <cstddef>

namespace skiff::base {

// Sized: the caller passes the same |size| to free as to allocate (class-specific
// operator new/delete, allocators). Never returns null (aborts like operator new on exhaustion).
void* cache_alloc(size_t size);
void cache_free(void* p, size_t size) noexcept;

// Unsized (C interfaces such as nghttp2_mem): a 16-byte header remembers the class. Blocks are
// 16-byte aligned. cache_realloc keeps the block when the new size fits its class.
void* cache_malloc(size_t size);
void cache_free_unsized(void* p) noexcept;
void* cache_realloc(void* p, size_t size);

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
