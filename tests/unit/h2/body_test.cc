// Tests for h2/body.h: bytes come out in order across chunk boundaries, window credit is
// reported once per byte, and a retained body replays from its first byte.
#include "h2/body.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace skiff::h2 {
namespace {

std::string pattern(size_t n, size_t seed = 0) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + seed) % 26);
  return s;
}

void append(Body& b, const std::string& s) {
  b.append(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

// Takes everything in pieces of |step| bytes.
std::string drain(Body& b, size_t step) {
  std::string out;
  while (b.size() > 0) b.take(step, out);
  return out;
}

TEST(Body, SmallAndLargeBodiesComeOutInOrder) {
  for (size_t n : {0, 1, 69, 1029, 16 * 1024, 64 * 1024 + 5, 1 << 20}) {
    Body b;
    size_t drained = 0;
    b.set_on_drained([&](size_t k) { drained += k; });
    const std::string in = pattern(n);
    // Arrives in uneven pieces, as DATA chunks do.
    for (size_t off = 0; off < n;) {
      size_t k = std::min<size_t>(n - off, 1 + (off * 13) % 20000);
      b.append(reinterpret_cast<const uint8_t*>(in.data() + off), k);
      off += k;
    }
    EXPECT_EQ(b.size(), n);
    EXPECT_EQ(drain(b, 16384), in) << n;
    EXPECT_EQ(drained, n);
    EXPECT_EQ(b.undrained(), 0u);
  }
}

TEST(Body, InterleavedAppendAndTake) {
  Body b;
  std::string in;
  std::string out;
  for (int i = 0; i < 200; ++i) {
    std::string piece = pattern(static_cast<size_t>(100 + i * 37), static_cast<size_t>(i));
    in += piece;
    append(b, piece);
    b.take(static_cast<size_t>(50 + i * 29), out);
  }
  out += drain(b, 1000);
  EXPECT_EQ(out, in);
}

TEST(Body, RetainedBodyReplaysFromTheFirstByte) {
  Body b;
  size_t drained = 0;
  b.set_on_drained([&](size_t k) { drained += k; });
  b.retain(100 * 1024);
  const std::string in = pattern(40 * 1024 + 3);
  append(b, in.substr(0, 20000));
  std::string first;
  b.take(30000, first);  // only 20000 there
  append(b, in.substr(20000));
  first += drain(b, 7000);
  EXPECT_EQ(first, in);
  EXPECT_EQ(drained, in.size());

  b.rewind();
  EXPECT_EQ(b.size(), in.size());
  EXPECT_EQ(drain(b, 5000), in);
  EXPECT_EQ(drained, in.size());  // replayed bytes were credited already

  b.release();
  EXPECT_EQ(b.size(), 0u);
  EXPECT_EQ(b.undrained(), 0u);
}

TEST(Body, OverflowStopsRetainingAndKeepsUnsentBytes) {
  Body b;
  b.retain(1000);
  const std::string in = pattern(5000);
  append(b, in.substr(0, 800));
  std::string out;
  b.take(500, out);
  EXPECT_TRUE(b.retaining());
  append(b, in.substr(800));
  EXPECT_FALSE(b.retaining());
  EXPECT_TRUE(b.overflowed());
  out += drain(b, 3000);
  EXPECT_EQ(out, in);
}

TEST(Body, CreditReceivedThenClear) {
  Body b;
  size_t drained = 0;
  b.set_on_drained([&](size_t k) { drained += k; });
  append(b, pattern(3000));
  b.credit_received();
  EXPECT_EQ(drained, 3000u);
  EXPECT_EQ(b.undrained(), 0u);
  std::string out;
  b.take(1000, out);
  EXPECT_EQ(drained, 3000u);  // not reported twice
  b.clear();
  EXPECT_EQ(b.size(), 0u);
  EXPECT_FALSE(b.finished());
  append(b, "xyz");
  EXPECT_EQ(drain(b, 10), "xyz");
}

TEST(Body, SlicesOutliveTheBytesTheBodyDrops) {
  const std::string in = pattern(50 * 1000 + 17);
  std::vector<Body::Slice> slices;
  size_t drained = 0;
  {
    Body b;
    b.set_on_drained([&](size_t k) { drained += k; });
    append(b, in.substr(0, 30000));
    b.take_slices(20000, [&](const Body::Slice& s) { slices.push_back(s); });
    append(b, in.substr(30000));
    std::string copied;
    b.take(7, copied);  // copying and slicing mix
    EXPECT_EQ(copied, in.substr(20000, 7));
    b.take_slices(b.size(), [&](const Body::Slice& s) { slices.push_back(s); });
    EXPECT_EQ(b.size(), 0u);
    EXPECT_EQ(drained, in.size());
  }  // the Body (and its list's references) are gone; the slices keep their chunks
  std::string out;
  for (Body::Slice& s : slices) {
    out.append(s.data(), s.size());
    s.release();
  }
  EXPECT_EQ(out, in.substr(0, 20000) + in.substr(20007));
}

}  // namespace
}  // namespace skiff::h2
