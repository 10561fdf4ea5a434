// Tests for base/block_cache.h: blocks are reused per size class, sized and unsized interfaces
// keep their contents and alignment, and other threads may free a thread's blocks.
#include "base/block_cache.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

namespace skiff::base {
namespace {

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

TEST(BlockCache, SizedBlocksAreUsableAndAligned) {
  for (size_t size : {0, 1, 31, 32, 33, 1000, 1024, 1025, 4096, 16384, 16385, 100000}) {
    void* p = cache_alloc(size);
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(aligned16(p)) << size;
    std::memset(p, 0xab, size);
    cache_free(p, size);
  }
}

#ifdef SKIFF_BLOCK_CACHE_OFF
// Sanitizer builds compile the cache out, so ASan sees every free: nothing is kept to trim.
TEST(BlockCache, OffUnderSanitizersKeepsNoBlocks) {
  void* p = cache_alloc(200);
  cache_free(p, 200);
  EXPECT_EQ(cache_trim(), 0u);
}
#else
TEST(BlockCache, FreedBlockIsReusedForTheSameClass) {
  void* p = cache_alloc(100);
  cache_free(p, 100);
  void* q = cache_alloc(120);  // same 32-byte class (97..128)
  EXPECT_EQ(p, q);
  cache_free(q, 120);
}
#endif

TEST(BlockCache, UnsizedKeepsContentsAcrossRealloc) {
  auto* p = static_cast<unsigned char*>(cache_malloc(10));
  ASSERT_TRUE(aligned16(p));
  for (int i = 0; i < 10; ++i) p[i] = static_cast<unsigned char>(i);
  // Grows within its class, then out of it, then into the uncached range.
  for (size_t size : {20, 200, 3000, 40000}) {
    p = static_cast<unsigned char*>(cache_realloc(p, size));
    ASSERT_TRUE(aligned16(p)) << size;
    for (int i = 0; i < 10; ++i) ASSERT_EQ(p[i], i) << size;
  }
  cache_free_unsized(p);
  cache_free_unsized(nullptr);
  p = static_cast<unsigned char*>(cache_realloc(nullptr, 5));
  ASSERT_NE(p, nullptr);
  cache_free_unsized(p);
}

#ifndef SKIFF_BLOCK_CACHE_OFF
// Empties every list: whatever earlier tests left is gone after three trims (the first may only
// finish a pass that a budget-limited trim left half done).
void empty_every_list() {
  for (int i = 0; i < 3; ++i) cache_trim();
}

// Allocates |n| blocks of |size| and frees them: they are then on the class's list.
std::vector<void*> fill_list(size_t size, size_t n) {
  std::vector<void*> blocks;
  for (size_t i = 0; i < n; ++i) blocks.push_back(cache_alloc(size));
  for (void* p : blocks) cache_free(p, size);
  return blocks;
}

TEST(BlockCache, TrimFreesClassesUnusedSinceTheLastTrim) {
  void* p = cache_alloc(200);
  cache_free(p, 200);
  p = cache_alloc(200);  // a pop: the list was down to 0 blocks
  cache_free(p, 200);
  cache_trim();                   // every block was needed since the last trim: kept
  EXPECT_GE(cache_trim(), 224u);  // unused since: freed (at least the one 224-byte block)
  EXPECT_EQ(cache_trim(), 0u);
  void* q = cache_alloc(200);  // still works after a trim
  cache_free(q, 200);
}

// A list in use keeps what its load cycles through and frees the rest: after a burst of 40
// blocks, a steady load that never holds more than 4 at once leaves 4 cached.
TEST(BlockCache, TrimTakesAListInUseDownToWhatItCyclesThrough) {
  constexpr size_t kSize = 600;  // a class no other test here uses
  constexpr size_t kClassBytes = 608;
  empty_every_list();
  const std::vector<void*> burst = fill_list(kSize, 40);
  cache_trim();  // the burst's blocks were all in use since the last trim: kept
  for (int round = 0; round < 3; ++round) {
    void* steady[4];
    for (void*& p : steady) p = cache_alloc(kSize);
    for (void* p : steady) cache_free(p, kSize);
  }
  // The list never went below 36 blocks: those are freed, the 4 it cycled stay.
  EXPECT_EQ(cache_trim(), 36 * kClassBytes);
  // The 4 it kept are blocks of the burst and serve the next allocation.
  void* again = cache_alloc(kSize);
  EXPECT_NE(std::find(burst.begin(), burst.end(), again), burst.end());
  cache_free(again, kSize);
  EXPECT_EQ(cache_trim(), 3 * kClassBytes);  // it needed 1 of its 4 since
  EXPECT_EQ(cache_trim(), kClassBytes);      // and then none
}

// A trim frees at most its budget of blocks and says when unneeded ones remain, so the caller
// can spread a burst's worth over several slices.
TEST(BlockCache, TrimFreesAtMostItsBudgetAndSaysWhenMoreRemain) {
  constexpr size_t kSize = 700;  // a class no other test here uses
  constexpr size_t kClassBytes = 704;
  empty_every_list();
  fill_list(kSize, 10);
  bool more = true;
  EXPECT_EQ(cache_trim(4, &more), 0u);  // just freed into the list: not yet known unneeded
  EXPECT_FALSE(more);
  EXPECT_EQ(cache_trim(4, &more), 4 * kClassBytes);
  EXPECT_TRUE(more);
  EXPECT_EQ(cache_trim(4, &more), 4 * kClassBytes);
  EXPECT_TRUE(more);
  EXPECT_EQ(cache_trim(4, &more), 2 * kClassBytes);
  EXPECT_FALSE(more);
  EXPECT_EQ(cache_trim(4, &more), 0u);
}

// A trim that ran out of budget resumes where it stopped: the next slice must not go back to a
// list the first one found in use and judge it on the millisecond since (it would free blocks
// the list cycles through, and the next burst would take them from malloc again).
TEST(BlockCache, NextSliceResumesWhereTheBudgetRanOut) {
  constexpr size_t kHotSize = 800;  // classes no other test here uses, the hot one first
  constexpr size_t kColdSize = 900;
  constexpr size_t kHotClassBytes = 800;
  constexpr size_t kColdClassBytes = 928;
  empty_every_list();
  fill_list(kHotSize, 4);
  fill_list(kColdSize, 10);
  cache_trim();            // both lists were just filled: nothing is known unneeded yet
  fill_list(kHotSize, 4);  // the hot list cycles all of its blocks; the cold one is not used
  bool more = false;
  EXPECT_EQ(cache_trim(4, &more), 4 * kColdClassBytes);  // hot: all needed; cold: 4 of 10
  EXPECT_TRUE(more);
  EXPECT_EQ(cache_trim(4, &more), 4 * kColdClassBytes);  // not the hot list's 4 blocks
  EXPECT_TRUE(more);
  EXPECT_EQ(cache_trim(4, &more), 2 * kColdClassBytes);
  EXPECT_FALSE(more);
  // The next pass judges the hot list on the whole period since its trim: unused, so freed.
  EXPECT_EQ(cache_trim(), 4 * kHotClassBytes);
}

// Bulk transfers cycle 16 KiB Body chunks through the largest class: it keeps up to
// kMaxBytesPerClass of them too, and hands them all back once unused.
TEST(BlockCache, LargestClassKeepsABulkTransfersChunks) {
  constexpr size_t kBlocks = block_cache::kMaxBytesPerClass / block_cache::kLargeMax;
  const std::vector<void*> blocks = fill_list(block_cache::kLargeMax, kBlocks);
  // Every one is reused: the same blocks come back (in reverse order of freeing).
  for (size_t i = 0; i < kBlocks; ++i) {
    EXPECT_EQ(cache_alloc(block_cache::kLargeMax), blocks[kBlocks - 1 - i]) << i;
  }
  for (void* p : blocks) cache_free(p, block_cache::kLargeMax);
  cache_trim();  // all needed since the last trim: kept
  EXPECT_GE(cache_trim(), block_cache::kMaxBytesPerClass);
}
#endif

struct Pooled : CacheAllocated {
  char bytes[200];
};

TEST(BlockCache, ClassesDerivingCacheAllocatedUseIt) {
  auto a = std::make_unique<Pooled>();
  std::memset(a->bytes, 1, sizeof a->bytes);
  a.reset();
  auto b = std::make_unique<Pooled>();
  EXPECT_TRUE(aligned16(b.get()));
}

TEST(BlockCache, BlocksMayBeFreedOnAnotherThread) {
  std::vector<void*> blocks;
  std::thread producer([&] {
    for (int i = 0; i < 1000; ++i) blocks.push_back(cache_malloc(static_cast<size_t>(i % 300)));
  });
  producer.join();  // its cache was flushed at exit; the blocks stay valid
  for (void* p : blocks) cache_free_unsized(p);
  std::thread consumer([&] {
    for (int i = 0; i < 1000; ++i) blocks[i] = cache_malloc(64);
    for (void* p : blocks) cache_free_unsized(p);
  });
  consumer.join();
}

}  // namespace
}  // namespace skiff::base
