// Tests for net/deadline_sweep.h: far deadlines wait on the list without a timer, come back to
// their owner once within kNear (never earlier), and leave the list when removed or destroyed.
#include "net/deadline_sweep.h"

#include <gtest/gtest.h>

#include <memory>

namespace skiff::net {
namespace {

using std::chrono::milliseconds;

struct Probe final : DeadlineSweep::Entry {
  int near_calls = 0;
  base::TimePoint near_at{};
  uv_loop_t* stop_loop = nullptr;
  void on_near() override {
    ++near_calls;
    near_at = base::SteadyClock::now();
    if (stop_loop != nullptr) uv_stop(stop_loop);
  }
};

class DeadlineSweepTest : public ::testing::Test {
 protected:
  DeadlineSweepTest() { uv_loop_init(&loop_); }
  ~DeadlineSweepTest() override {
    sweep_->close();
    uv_run(&loop_, UV_RUN_DEFAULT);  // close callbacks
    sweep_.reset();
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }
  uv_loop_t loop_{};
  std::unique_ptr<DeadlineSweep> sweep_ = std::make_unique<DeadlineSweep>(&loop_);
};

TEST_F(DeadlineSweepTest, NearDeadlinesAreLeftToTheCallersTimer) {
  Probe p;
  const auto now = base::SteadyClock::now();
  EXPECT_FALSE(sweep_->add(p, now + DeadlineSweep::kNear, now));
  EXPECT_FALSE(sweep_->add(p, now - milliseconds(5), now));  // already past
  EXPECT_FALSE(p.linked());
  EXPECT_EQ(sweep_->size(), 0u);
}

TEST_F(DeadlineSweepTest, FarDeadlinesWaitOnTheListUntilRemoved) {
  Probe a, b, c;
  const auto now = base::SteadyClock::now();
  ASSERT_TRUE(sweep_->add(a, now + std::chrono::seconds(30), now));
  ASSERT_TRUE(sweep_->add(b, now + std::chrono::seconds(30), now));
  ASSERT_TRUE(sweep_->add(c, now + std::chrono::seconds(30), now));
  EXPECT_EQ(sweep_->size(), 3u);
  sweep_->remove(b);  // from the middle
  EXPECT_FALSE(b.linked());
  sweep_->remove(b);  // twice: no-op
  sweep_->remove(c);  // the head
  sweep_->remove(a);  // the last one
  EXPECT_EQ(sweep_->size(), 0u);
  // Re-added after removal, like a call whose deadline is set again.
  EXPECT_TRUE(sweep_->add(a, now + std::chrono::seconds(30), now));
  sweep_->remove(a);
  EXPECT_EQ(a.near_calls + b.near_calls + c.near_calls, 0);
}

TEST_F(DeadlineSweepTest, DestroyedEntryLeavesTheList) {
  Probe keep;
  const auto now = base::SteadyClock::now();
  {
    Probe gone;
    ASSERT_TRUE(sweep_->add(gone, now + std::chrono::seconds(30), now));
    ASSERT_TRUE(sweep_->add(keep, now + std::chrono::seconds(30), now));
  }
  EXPECT_EQ(sweep_->size(), 1u);
  EXPECT_TRUE(keep.linked());
}

TEST_F(DeadlineSweepTest, TickHandsBackADeadlineOnceItIsNearAndNotBefore) {
  Probe p;
  p.stop_loop = &loop_;
  const auto start = base::SteadyClock::now();
  const auto at = start + DeadlineSweep::kNear + milliseconds(30);
  ASSERT_TRUE(sweep_->add(p, at, start));
  // The sweep's tick does not keep the loop alive (calls do): a guard timer does here, and
  // fails the test if the hand-back never comes.
  uv_timer_t guard;
  uv_timer_init(&loop_, &guard);
  uv_timer_start(
      &guard, [](uv_timer_t* t) { uv_stop(t->loop); }, 5000, 0);
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_close(reinterpret_cast<uv_handle_t*>(&guard), nullptr);
  uv_run(&loop_, UV_RUN_NOWAIT);  // the guard's close callback, while |guard| exists
  ASSERT_EQ(p.near_calls, 1);
  EXPECT_FALSE(p.linked());
  EXPECT_GE(p.near_at, at - DeadlineSweep::kNear);  // not early
  EXPECT_EQ(sweep_->size(), 0u);
}

// Driven through synthetic time (sweep(now)): each deadline comes back at the first tick within
// kNear of it, entries a whole turn of the wheel apart share a slot without being confused, and
// a late tick catches up on the slots it skipped.
TEST_F(DeadlineSweepTest, WheelHandsBackEachDeadlineAtItsOwnTick) {
  const auto t0 = base::SteadyClock::now();
  const auto turn = DeadlineSweep::kTick * static_cast<int>(DeadlineSweep::kSlots);
  Probe soon, later, far;
  ASSERT_TRUE(sweep_->add(soon, t0 + std::chrono::seconds(2), t0));
  ASSERT_TRUE(sweep_->add(later, t0 + std::chrono::seconds(2) + turn, t0));  // same slot
  ASSERT_TRUE(sweep_->add(far, t0 + std::chrono::seconds(30), t0));
  auto now = t0;
  auto step_until = [&](Probe& p) {
    while (p.near_calls == 0 && now < t0 + std::chrono::seconds(60)) {
      now += DeadlineSweep::kTick;
      sweep_->sweep(now);
    }
    return now;
  };
  const auto soon_at = step_until(soon);
  EXPECT_GE(soon_at, t0 + std::chrono::seconds(2) - DeadlineSweep::kNear);  // not early
  EXPECT_LT(soon_at, t0 + std::chrono::seconds(2) - DeadlineSweep::kNear + DeadlineSweep::kTick);
  EXPECT_EQ(later.near_calls, 0);  // one turn later in the same slot: still waiting
  EXPECT_TRUE(later.linked());
  const auto later_at = step_until(later);
  EXPECT_GE(later_at, t0 + std::chrono::seconds(2) + turn - DeadlineSweep::kNear);
  EXPECT_EQ(far.near_calls, 0);
  // A tick more than a whole turn late still hands |far| back: no slot is skipped.
  now = t0 + std::chrono::seconds(30) - DeadlineSweep::kNear / 2;
  sweep_->sweep(now);
  EXPECT_EQ(far.near_calls, 1);
  EXPECT_EQ(sweep_->size(), 0u);
}

}  // namespace
}  // namespace skiff::net
