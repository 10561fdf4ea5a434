// Tests for policy::Deadline: min(grpc-timeout − offset, route timeout), per-try deadlines,
// remaining time, and whether a retry after backoff still fits.
#include "policy/deadline.h"

#include <gtest/gtest.h>

#include "base/clock.h"

namespace skiff::policy {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::seconds;

class DeadlineTest : public ::testing::Test {
 protected:
  DeadlineTest() { clock_.advance(hours(1)); }
  base::FakeClock clock_;
};

TEST_F(DeadlineTest, NoneWithoutTimeouts) {
  Deadline d = Deadline::start(clock_.now(), std::nullopt, std::nullopt);
  EXPECT_FALSE(d.is_set());
  EXPECT_FALSE(d.expired(clock_.now() + hours(100000)));
  EXPECT_EQ(d.remaining(clock_.now()), std::nullopt);
  EXPECT_TRUE(d.fits(clock_.now(), hours(1000)));
}

TEST_F(DeadlineTest, MinOfGrpcTimeoutAndRouteTimeout) {
  auto now = clock_.now();
  EXPECT_EQ(Deadline::start(now, seconds(5), seconds(2)).when(), now + seconds(2));
  EXPECT_EQ(Deadline::start(now, seconds(1), seconds(2)).when(), now + seconds(1));
  EXPECT_EQ(Deadline::start(now, seconds(1), std::nullopt).when(), now + seconds(1));
  EXPECT_EQ(Deadline::start(now, std::nullopt, seconds(2)).when(), now + seconds(2));
}

TEST_F(DeadlineTest, OffsetAppliesToGrpcTimeoutOnly) {
  auto now = clock_.now();
  EXPECT_EQ(Deadline::start(now, seconds(5), std::nullopt, milliseconds(100)).when(),
            now + milliseconds(4900));
  // The route timeout is skiff's own cap: no offset.
  EXPECT_EQ(Deadline::start(now, std::nullopt, seconds(2), milliseconds(100)).when(),
            now + seconds(2));
  EXPECT_EQ(Deadline::start(now, seconds(5), seconds(2), milliseconds(100)).when(),
            now + seconds(2));
}

TEST_F(DeadlineTest, ZeroOrNegativeBudgetIsAlreadyExpired) {
  auto now = clock_.now();
  EXPECT_TRUE(Deadline::start(now, seconds(0), std::nullopt).expired(now));
  EXPECT_TRUE(Deadline::start(now, milliseconds(50), std::nullopt, milliseconds(100)).expired(now));
  EXPECT_EQ(Deadline::start(now, milliseconds(50), std::nullopt, milliseconds(100)).remaining(now),
            base::Duration::zero());
}

TEST_F(DeadlineTest, HugeGrpcTimeoutSaturates) {
  auto now = clock_.now();
  // grpc::parse_timeout saturates 99999999H to nanoseconds::max().
  Deadline d = Deadline::start(now, base::Duration::max(), std::nullopt);
  ASSERT_TRUE(d.is_set());
  EXPECT_GT(d.when(), now + hours(1000000));
  EXPECT_FALSE(d.expired(now + hours(1000000)));
  EXPECT_TRUE(d.fits(now, hours(1000)));
}

TEST_F(DeadlineTest, RemainingAndExpiry) {
  auto start = clock_.now();
  Deadline d = Deadline::start(start, seconds(2), std::nullopt);
  EXPECT_EQ(d.remaining(clock_.now()), seconds(2));
  clock_.advance(milliseconds(1500));
  EXPECT_EQ(d.remaining(clock_.now()), milliseconds(500));
  EXPECT_FALSE(d.expired(clock_.now()));
  clock_.advance(milliseconds(500));
  EXPECT_TRUE(d.expired(clock_.now()));
  EXPECT_EQ(d.remaining(clock_.now()), base::Duration::zero());
  clock_.advance(seconds(1));
  EXPECT_EQ(d.remaining(clock_.now()), base::Duration::zero());
}

TEST_F(DeadlineTest, PerTryTimeoutShortensTheAttempt) {
  auto now = clock_.now();
  Deadline call = Deadline::start(now, seconds(2), std::nullopt);
  EXPECT_EQ(call.for_attempt(now, milliseconds(500)).when(), now + milliseconds(500));
  EXPECT_EQ(call.for_attempt(now, std::nullopt), call);
  // Late in the call, the call deadline is the earlier one.
  auto late = now + milliseconds(1800);
  EXPECT_EQ(call.for_attempt(late, milliseconds(500)).when(), now + seconds(2));
  // Without a call deadline, the per-try timeout alone.
  EXPECT_EQ(Deadline::none().for_attempt(now, milliseconds(500)).when(), now + milliseconds(500));
  // The grpc-timeout to send upstream is the attempt deadline's remaining time.
  EXPECT_EQ(call.for_attempt(late, milliseconds(500)).remaining(late), milliseconds(200));
}

TEST_F(DeadlineTest, FitsChecksBackoffAndMinimumAttemptTime) {
  auto now = clock_.now();
  Deadline d = Deadline::at(now + milliseconds(100));
  EXPECT_TRUE(d.fits(now, milliseconds(50)));
  EXPECT_TRUE(d.fits(now, milliseconds(99)));
  EXPECT_FALSE(d.fits(now, milliseconds(100)));  // would start exactly at the deadline
  EXPECT_FALSE(d.fits(now, milliseconds(150)));
  EXPECT_TRUE(d.fits(now, milliseconds(50), milliseconds(40)));
  EXPECT_FALSE(d.fits(now, milliseconds(50), milliseconds(50)));
  EXPECT_FALSE(d.fits(now + milliseconds(100), base::Duration::zero()));
  EXPECT_TRUE(d.fits(now, -milliseconds(5)));        // negative delays count as zero
  EXPECT_FALSE(d.fits(now, base::Duration::max()));  // no overflow
}

TEST_F(DeadlineTest, Earlier) {
  auto now = clock_.now();
  Deadline a = Deadline::at(now + seconds(1));
  Deadline b = Deadline::at(now + seconds(2));
  EXPECT_EQ(Deadline::earlier(a, b), a);
  EXPECT_EQ(Deadline::earlier(b, a), a);
  EXPECT_EQ(Deadline::earlier(Deadline::none(), b), b);
  EXPECT_EQ(Deadline::earlier(a, Deadline::none()), a);
  EXPECT_FALSE(Deadline::earlier(Deadline::none(), Deadline::none()).is_set());
}

}  // namespace
}  // namespace skiff::policy
