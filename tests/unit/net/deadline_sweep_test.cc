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

}  // namespace
}  // namespace skiff::net
