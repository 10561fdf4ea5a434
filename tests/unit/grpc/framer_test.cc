// Tests for grpc/framer: message boundaries across arbitrary chunking, limits and sticky errors.
#include "grpc/framer.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace skiff::grpc {
namespace {

using Bytes = std::vector<uint8_t>;

// Appends one length-prefixed message with |body_len| bytes of body.
void append_message(Bytes& out, uint32_t body_len, uint8_t flag = 0) {
  out.push_back(flag);
  out.push_back(static_cast<uint8_t>(body_len >> 24));
  out.push_back(static_cast<uint8_t>(body_len >> 16));
  out.push_back(static_cast<uint8_t>(body_len >> 8));
  out.push_back(static_cast<uint8_t>(body_len));
  for (uint32_t i = 0; i < body_len; ++i) out.push_back(static_cast<uint8_t>(0xa0 + i % 7));
}

Bytes message(uint32_t body_len, uint8_t flag = 0) {
  Bytes out;
  append_message(out, body_len, flag);
  return out;
}

uint32_t feed_ok(MessageFramer& framer, const Bytes& bytes, size_t from, size_t to) {
  auto result = framer.feed(bytes.data() + from, to - from);
  EXPECT_TRUE(result.has_value()) << "bytes [" << from << ", " << to << ")";
  return result.value_or(0);
}

TEST(MessageFramer, StartsAtBoundary) {
  MessageFramer framer;
  EXPECT_TRUE(framer.at_boundary());
  EXPECT_EQ(framer.messages(), 0u);
  EXPECT_EQ(framer.bytes(), 0u);
  EXPECT_EQ(framer.pending_message_bytes(), 0u);
  EXPECT_FALSE(framer.error().has_value());
}

TEST(MessageFramer, EmptyFeedIsANoop) {
  MessageFramer framer;
  auto result = framer.feed(nullptr, 0);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(*result, 0u);
  EXPECT_TRUE(framer.at_boundary());
}

TEST(MessageFramer, OneMessageInOneChunk) {
  MessageFramer framer;
  const Bytes bytes = message(10);
  EXPECT_EQ(feed_ok(framer, bytes, 0, bytes.size()), 1u);
  EXPECT_TRUE(framer.at_boundary());
  EXPECT_EQ(framer.messages(), 1u);
  EXPECT_EQ(framer.bytes(), 15u);
  EXPECT_EQ(framer.pending_message_bytes(), 0u);
}

TEST(MessageFramer, CompressedFlagAccepted) {
  MessageFramer framer;
  const Bytes bytes = message(3, /*flag=*/1);
  EXPECT_EQ(feed_ok(framer, bytes, 0, bytes.size()), 1u);
  EXPECT_TRUE(framer.at_boundary());
}

TEST(MessageFramer, MultipleMessagesInOneChunk) {
  Bytes bytes;
  append_message(bytes, 3);
  append_message(bytes, 0);
  append_message(bytes, 100);
  append_message(bytes, 1, /*flag=*/1);
  append_message(bytes, 0);
  MessageFramer framer;
  EXPECT_EQ(feed_ok(framer, bytes, 0, bytes.size()), 5u);
  EXPECT_TRUE(framer.at_boundary());
  EXPECT_EQ(framer.messages(), 5u);
  EXPECT_EQ(framer.bytes(), bytes.size());
}

TEST(MessageFramer, ZeroLengthMessagesCompleteWithTheirPrefix) {
  Bytes bytes;
  for (int i = 0; i < 1000; ++i) append_message(bytes, 0);
  MessageFramer framer;
  EXPECT_EQ(feed_ok(framer, bytes, 0, bytes.size()), 1000u);
  EXPECT_TRUE(framer.at_boundary());

  MessageFramer split;
  EXPECT_EQ(feed_ok(split, bytes, 0, 4), 0u);
  EXPECT_FALSE(split.at_boundary());
  EXPECT_EQ(feed_ok(split, bytes, 4, 5), 1u);
  EXPECT_TRUE(split.at_boundary());
}

TEST(MessageFramer, PendingMessageBytesWhileBodyArrives) {
  MessageFramer framer;
  const Bytes bytes = message(300);
  EXPECT_EQ(feed_ok(framer, bytes, 0, 3), 0u);
  EXPECT_EQ(framer.pending_message_bytes(), 0u);  // length not known yet
  EXPECT_FALSE(framer.at_boundary());
  EXPECT_EQ(feed_ok(framer, bytes, 3, 5), 0u);
  EXPECT_EQ(framer.pending_message_bytes(), 300u);
  EXPECT_FALSE(framer.at_boundary());
  EXPECT_EQ(feed_ok(framer, bytes, 5, 200), 0u);
  EXPECT_EQ(framer.pending_message_bytes(), 300u);
  EXPECT_EQ(feed_ok(framer, bytes, 200, bytes.size()), 1u);
  EXPECT_EQ(framer.pending_message_bytes(), 0u);
  EXPECT_TRUE(framer.at_boundary());
}

// A stream of mixed messages cut into two chunks at every possible offset.
TEST(MessageFramer, SplitAtEveryOffset) {
  Bytes bytes;
  append_message(bytes, 7);
  append_message(bytes, 0);
  append_message(bytes, 1);
  append_message(bytes, 0);
  append_message(bytes, 300);
  append_message(bytes, 2, /*flag=*/1);
  const uint64_t total = 6;
  for (size_t cut = 0; cut <= bytes.size(); ++cut) {
    MessageFramer framer(300);
    const uint32_t first = feed_ok(framer, bytes, 0, cut);
    const uint32_t second = feed_ok(framer, bytes, cut, bytes.size());
    EXPECT_EQ(first + second, total) << "cut at " << cut;
    EXPECT_EQ(framer.messages(), total) << "cut at " << cut;
    EXPECT_EQ(framer.bytes(), bytes.size());
    EXPECT_TRUE(framer.at_boundary()) << "cut at " << cut;
  }
}

// Every pair of cut points (three chunks), so a prefix split in three pieces is covered too.
TEST(MessageFramer, SplitAtEveryPairOfOffsets) {
  Bytes bytes;
  append_message(bytes, 2);
  append_message(bytes, 0);
  append_message(bytes, 6);
  for (size_t a = 0; a <= bytes.size(); ++a) {
    for (size_t b = a; b <= bytes.size(); ++b) {
      MessageFramer framer;
      const uint32_t n = feed_ok(framer, bytes, 0, a) + feed_ok(framer, bytes, a, b) +
                         feed_ok(framer, bytes, b, bytes.size());
      EXPECT_EQ(n, 3u) << a << "," << b;
      EXPECT_TRUE(framer.at_boundary()) << a << "," << b;
    }
  }
}

TEST(MessageFramer, OneByteAtATime) {
  Bytes bytes;
  append_message(bytes, 4);
  append_message(bytes, 0);
  append_message(bytes, 9, /*flag=*/1);
  MessageFramer framer;
  uint32_t n = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    n += feed_ok(framer, bytes, i, i + 1);
    const bool boundary = (i + 1 == 9) || (i + 1 == 14) || (i + 1 == bytes.size());
    EXPECT_EQ(framer.at_boundary(), boundary) << "after byte " << i;
  }
  EXPECT_EQ(n, 3u);
  EXPECT_EQ(framer.messages(), 3u);
}

TEST(MessageFramer, BadFlagDetectedOnFirstByte) {
  for (uint8_t flag : {uint8_t{2}, uint8_t{0x80}, uint8_t{0xff}}) {
    MessageFramer framer;
    const uint8_t byte = flag;
    auto result = framer.feed(&byte, 1);
    ASSERT_FALSE(result.has_value());
    EXPECT_EQ(result.error(), FramerError::kBadFlag);
  }
}

TEST(MessageFramer, BadFlagAfterGoodMessages) {
  Bytes bytes;
  append_message(bytes, 2);
  append_message(bytes, 2, /*flag=*/2);
  MessageFramer framer;
  auto result = framer.feed(bytes.data(), bytes.size());
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error(), FramerError::kBadFlag);
  EXPECT_EQ(framer.messages(), 1u);  // the good one still counts
}

TEST(MessageFramer, TooLargeDetectedFromPrefixAlone) {
  MessageFramer framer(/*max_message_bytes=*/1024);
  const Bytes bytes = message(1025);
  // Only the prefix: the body has not arrived and is never needed.
  auto result = framer.feed(bytes.data(), 5);
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error(), FramerError::kTooLarge);
}

TEST(MessageFramer, TooLargeWithSplitPrefix) {
  const Bytes bytes = message(1u << 20);
  for (size_t cut = 1; cut < 5; ++cut) {
    MessageFramer framer(4 * 1024 * 1024 - 1);
    EXPECT_EQ(feed_ok(framer, bytes, 0, 5), 0u);  // 1 MiB is under the limit
    MessageFramer small(1000);
    EXPECT_EQ(feed_ok(small, bytes, 0, cut), 0u);
    auto result = small.feed(bytes.data() + cut, 5 - cut);
    ASSERT_FALSE(result.has_value()) << cut;
    EXPECT_EQ(result.error(), FramerError::kTooLarge);
  }
}

TEST(MessageFramer, LimitIsInclusive) {
  MessageFramer framer(16);
  const Bytes at_limit = message(16);
  EXPECT_EQ(feed_ok(framer, at_limit, 0, at_limit.size()), 1u);
  const Bytes over = message(17);
  EXPECT_FALSE(framer.feed(over.data(), over.size()).has_value());
}

TEST(MessageFramer, MaximumDeclaredLengthWithDefaultLimit) {
  MessageFramer framer;
  const uint8_t prefix[] = {0, 0xff, 0xff, 0xff, 0xff};
  auto result = framer.feed(prefix, sizeof prefix);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(framer.pending_message_bytes(), UINT32_MAX);
  EXPECT_FALSE(framer.at_boundary());
}

TEST(MessageFramer, ErrorIsSticky) {
  MessageFramer framer(8);
  const Bytes big = message(9);
  ASSERT_FALSE(framer.feed(big.data(), big.size()).has_value());
  const uint64_t bytes_at_error = framer.bytes();
  const Bytes fine = message(1);
  for (int i = 0; i < 3; ++i) {
    auto result = framer.feed(fine.data(), fine.size());
    ASSERT_FALSE(result.has_value());
    EXPECT_EQ(result.error(), FramerError::kTooLarge);
  }
  auto empty = framer.feed(nullptr, 0);
  ASSERT_FALSE(empty.has_value());
  EXPECT_EQ(framer.error(), FramerError::kTooLarge);
  EXPECT_EQ(framer.messages(), 0u);
  EXPECT_EQ(framer.bytes(), bytes_at_error);
}

TEST(MessageFramer, BadFlagIsSticky) {
  MessageFramer framer;
  const uint8_t bad = 7;
  ASSERT_FALSE(framer.feed(&bad, 1).has_value());
  const Bytes fine = message(0);
  auto result = framer.feed(fine.data(), fine.size());
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error(), FramerError::kBadFlag);
}

TEST(FramerError, ToString) {
  EXPECT_NE(to_string(FramerError::kBadFlag), to_string(FramerError::kTooLarge));
  EXPECT_FALSE(to_string(FramerError::kTooLarge).empty());
}

}  // namespace
}  // namespace skiff::grpc
