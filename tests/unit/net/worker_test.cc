// Tests for net/worker.h's flush phase: requested flushes run once per loop iteration, after
// the iteration's I/O callbacks, except the first of a lightly loaded iteration when
// flush_first_now() asks. And the quiet check the heap trim waits for covers every worker.
#include "net/worker.h"

#include <gtest/gtest.h>

namespace skiff::net {
namespace {

struct Counter : Flushable {
  int flushes = 0;
  void flush() override { ++flushes; }
};

// Runs one iteration of |worker|'s loop in which |fn| runs from a timer callback (a callback of
// the loop like a read). The timer closes itself there, so the iteration does not wait in poll
// and ends with the timer gone.
template <typename Fn>
void run_iteration_with(Worker& worker, Fn fn) {
  uv_timer_t timer;
  ASSERT_EQ(uv_timer_init(worker.loop(), &timer), 0);
  timer.data = &fn;
  ASSERT_EQ(uv_timer_start(
                &timer,
                [](uv_timer_t* t) {
                  (*static_cast<Fn*>(t->data))();
                  uv_close(reinterpret_cast<uv_handle_t*>(t), nullptr);
                },
                0, 0),
            0);
  uv_run(worker.loop(), UV_RUN_ONCE);
  ASSERT_TRUE(uv_is_closing(reinterpret_cast<uv_handle_t*>(&timer)));
}

class WorkerFlushTest : public ::testing::Test {
 protected:
  ~WorkerFlushTest() override {
    worker_.close_own_handles();
    uv_run(worker_.loop(), UV_RUN_DEFAULT);  // ~Worker needs every handle closed
  }
  // What a session does after a read: asks for |c|'s flush, then for the early one. Returns
  // how many times |c| had flushed when flush_first_now() returned.
  int read_then_flush(Counter& c) {
    worker_.request_flush(&c);
    worker_.flush_first_now();
    return c.flushes;
  }
  Worker worker_{0};
};

TEST_F(WorkerFlushTest, RequestedFlushRunsOnceAfterTheIteration) {
  Counter a;
  int during = -1;
  run_iteration_with(worker_, [&] {
    worker_.request_flush(&a);
    during = a.flushes;
  });
  EXPECT_EQ(during, 0);
  EXPECT_EQ(a.flushes, 1);
}

TEST_F(WorkerFlushTest, FirstFlushOfAnIterationRunsAtOnceLaterOnesAfterIt) {
  Counter a, b;
  int a_at_once = -1, b_at_once = -1;
  run_iteration_with(worker_, [&] {
    a_at_once = read_then_flush(a);
    b_at_once = read_then_flush(b);  // the iteration's early flush is used up
  });
  EXPECT_EQ(a_at_once, 1);
  EXPECT_EQ(b_at_once, 0);
  EXPECT_EQ(a.flushes, 1);
  EXPECT_EQ(b.flushes, 1);  // in the iteration's flush phase

  // The next iteration has its own early flush.
  run_iteration_with(worker_, [&] { b_at_once = read_then_flush(b); });
  EXPECT_EQ(b_at_once, 2);
}

TEST_F(WorkerFlushTest, BusyIterationsKeepTheirFlushesForTheFlushPhase) {
  Counter a;
  int at_once = -1;
  // An iteration reading from many sockets (saturation)...
  run_iteration_with(worker_, [&] {
    for (int i = 0; i < 8; ++i) worker_.flush_first_now();
  });
  // ...makes the next one batch everything, its first read included.
  run_iteration_with(worker_, [&] { at_once = read_then_flush(a); });
  EXPECT_EQ(at_once, 0);
  EXPECT_EQ(a.flushes, 1);
  // After that quieter iteration (one read), the first flush is early again.
  run_iteration_with(worker_, [&] { at_once = read_then_flush(a); });
  EXPECT_EQ(at_once, 2);
}

TEST_F(WorkerFlushTest, CancelledFlushDoesNotRun) {
  Counter a;
  run_iteration_with(worker_, [&] {
    worker_.request_flush(&a);
    worker_.cancel_flush(&a);
    worker_.flush_first_now();
  });
  EXPECT_EQ(a.flushes, 0);
}

// malloc_trim(0) stalls every thread's allocations, so a worker that had a quiet period must
// not run it while another worker is reading.
TEST_F(WorkerFlushTest, AReadOnAnyWorkerMeansTheProcessIsNotQuiet) {
  EXPECT_TRUE(Worker::all_quiet());
  {
    Worker other{1};
    run_iteration_with(other, [&] { other.flush_first_now(); });
    EXPECT_FALSE(Worker::all_quiet()) << "the other worker read in its trim period";
    other.close_own_handles();
    uv_run(other.loop(), UV_RUN_DEFAULT);
  }
  EXPECT_TRUE(Worker::all_quiet()) << "a destroyed worker no longer counts";
}

}  // namespace
}  // namespace skiff::net
