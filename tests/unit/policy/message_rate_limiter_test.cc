// Tests for policy::MessageRateLimiter: per-stream message rate with burst and retry_after.
#include "policy/message_rate_limiter.h"

#include <gtest/gtest.h>

#include "base/clock.h"

namespace skiff::policy {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(MessageRateLimiter, BurstThenRate) {
  base::FakeClock clock;
  clock.advance(seconds(5));
  MessageRateLimiter limiter({100.0, 10});  // 100 messages/s, 10 at once
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(limiter.try_acquire(clock.now()).allowed) << i;
  Admission a = limiter.try_acquire(clock.now());
  EXPECT_FALSE(a.allowed);
  EXPECT_EQ(a.retry_after, milliseconds(10));
  clock.advance(milliseconds(10));
  EXPECT_TRUE(limiter.try_acquire(clock.now()).allowed);
  EXPECT_EQ(limiter.admitted(), 11u);
  EXPECT_EQ(limiter.rejected(), 1u);
}

TEST(MessageRateLimiter, LongStreamGetsExactlyTheRate) {
  base::FakeClock clock;
  MessageRateLimiter limiter({50.0, 5});
  int admitted = 0;
  // A client pushing a message every millisecond for 60 s.
  for (int ms = 0; ms < 60000; ++ms) {
    if (limiter.try_acquire(clock.now()).allowed) ++admitted;
    clock.advance(milliseconds(1));
  }
  EXPECT_GE(admitted, 5 + 50 * 60 - 1);
  EXPECT_LE(admitted, 5 + 50 * 60);
}

}  // namespace
}  // namespace skiff::policy
