// Tests for h2/stream_map.h: agrees with std::map under random inserts and erases (growth and
// backward-shift deletion included), and take() empties the map.
#include "h2/stream_map.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

namespace skiff::h2 {
namespace {

TEST(StreamMap, AgreesWithStdMap) {
  StreamMap<int> map;
  std::map<int32_t, int*> ref;
  std::vector<int> values(20000);
  std::mt19937 rng(7);
  int32_t next_id = 1;
  for (int step = 0; step < 200000; ++step) {
    const bool add = ref.size() < 50 || (ref.size() < 5000 && rng() % 2 == 0);
    if (add) {
      int* v = &values[static_cast<size_t>(next_id / 2) % values.size()];
      map.insert(next_id, v);
      ref[next_id] = v;
      next_id += 2;  // stream ids of one side: odd (or even), increasing
    } else {
      // Mostly the oldest streams end first, some long-lived ones stay.
      auto it = ref.begin();
      std::advance(it, static_cast<long>(rng() % std::min<size_t>(ref.size(), 8)));
      EXPECT_EQ(map.erase(it->first), it->second);
      ref.erase(it);
    }
    ASSERT_EQ(map.size(), ref.size());
    if (step % 997 == 0) {
      for (const auto& [id, v] : ref) ASSERT_EQ(map.find(id), v) << id;
      ASSERT_EQ(map.find(next_id), nullptr);
      size_t seen = 0;
      map.for_each([&](int32_t id, int* v) {
        ++seen;
        EXPECT_EQ(ref.at(id), v);
      });
      ASSERT_EQ(seen, ref.size());
    }
  }
  EXPECT_EQ(map.erase(next_id), nullptr);
}

TEST(StreamMap, TakeEmptiesTheMap) {
  StreamMap<int> map;
  int a = 1;
  int b = 2;
  EXPECT_EQ(map.find(1), nullptr);
  EXPECT_EQ(map.erase(1), nullptr);
  map.insert(1, &a);
  map.insert(3, &b);
  StreamMap<int> taken = map.take();
  EXPECT_TRUE(map.empty());
  EXPECT_EQ(map.find(1), nullptr);
  EXPECT_EQ(taken.size(), 2u);
  EXPECT_EQ(taken.find(3), &b);
  map.insert(5, &a);  // still usable
  EXPECT_EQ(map.find(5), &a);
}

}  // namespace
}  // namespace skiff::h2
