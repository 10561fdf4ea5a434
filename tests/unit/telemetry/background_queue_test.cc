// Tests for telemetry/background_queue.h: the bound, drop counting, batching, flush by time, and
// stop() draining everything.
#include "telemetry/background_queue.h"

#include <gtest/gtest.h>
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

namespace skiff::telemetry {
namespace {

using namespace std::chrono_literals;

constexpr auto kNever = std::chrono::hours(1);  // a flush interval no test waits for

// Polls |done| until it holds or a generous deadline passes.
bool eventually(const std::function<bool()>& done) {
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// What the handler saw, guarded for reads from the test thread.
struct Seen {
  std::mutex mu;
  std::vector<std::vector<int>> batches;

  void add(const std::vector<int>& batch) {
    std::lock_guard lock(mu);
    batches.push_back(batch);
  }
  std::vector<int> items() {
    std::lock_guard lock(mu);
    std::vector<int> out;
    for (const auto& b : batches) out.insert(out.end(), b.begin(), b.end());
    return out;
  }
};

// Holds the handler until open() is called; entered() says it is being held.
class Gate {
 public:
  void wait() {
    std::unique_lock lock(mu_);
    entered_ = true;
    cv_.notify_all();
    cv_.wait(lock, [this] { return open_; });
  }
  bool entered() {
    std::lock_guard lock(mu_);
    return entered_;
  }
  void open() {
    {
      std::lock_guard lock(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool entered_ = false;
  bool open_ = false;
};

std::vector<int> iota(int n) {
  std::vector<int> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

TEST(BackgroundQueue, DropsWhenFullAndCountsDrops) {
  Seen seen;
  Gate gate;
  BackgroundQueue<int> queue("test-queue", /*max_items=*/4, /*max_batch=*/1, kNever,
                             [&](std::vector<int>& batch) {
                               gate.wait();
                               seen.add(batch);
                             });
  // The first item is taken off the queue and holds the handler; four more fill the queue.
  ASSERT_TRUE(queue.push(0));
  ASSERT_TRUE(eventually([&] { return gate.entered(); }));
  for (int i = 1; i <= 4; ++i) EXPECT_TRUE(queue.push(i)) << i;
  EXPECT_FALSE(queue.push(5));
  EXPECT_FALSE(queue.push(6));
  EXPECT_EQ(queue.dropped(), 2u);
  EXPECT_EQ(queue.handled(), 0u);

  gate.open();
  queue.stop();
  EXPECT_EQ(seen.items(), iota(5));
  EXPECT_EQ(queue.handled(), 5u);
  EXPECT_EQ(queue.dropped(), 2u);
}

TEST(BackgroundQueue, StopDrainsEverythingInOrder) {
  Seen seen;
  BackgroundQueue<int> queue("test-queue", 1000, 1000, kNever,
                             [&](std::vector<int>& batch) { seen.add(batch); });
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(queue.push(i));
  // Neither a full batch nor the flush interval: nothing is handed over before stop().
  EXPECT_EQ(queue.handled(), 0u);
  queue.stop();
  EXPECT_EQ(seen.items(), iota(100));
  EXPECT_EQ(queue.handled(), 100u);
  EXPECT_EQ(queue.dropped(), 0u);
}

TEST(BackgroundQueue, BatchesNeverExceedMaxBatch) {
  Seen seen;
  BackgroundQueue<int> queue("test-queue", 1000, /*max_batch=*/3, kNever,
                             [&](std::vector<int>& batch) { seen.add(batch); });
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(queue.push(i));
  // A full batch goes out without waiting for the flush interval.
  ASSERT_TRUE(eventually([&] { return queue.handled() == 3; }));
  for (int i = 3; i < 11; ++i) ASSERT_TRUE(queue.push(i));
  queue.stop();

  std::lock_guard lock(seen.mu);
  ASSERT_FALSE(seen.batches.empty());
  EXPECT_EQ(seen.batches[0], (std::vector<int>{0, 1, 2}));
  size_t total = 0;
  for (const auto& batch : seen.batches) {
    EXPECT_GE(batch.size(), 1u);
    EXPECT_LE(batch.size(), 3u);
    total += batch.size();
  }
  EXPECT_EQ(total, 11u);
}

TEST(BackgroundQueue, FlushesAPartialBatchAfterTheInterval) {
  Seen seen;
  BackgroundQueue<int> queue("test-queue", 1000, 1000, 10ms,
                             [&](std::vector<int>& batch) { seen.add(batch); });
  ASSERT_TRUE(queue.push(7));
  ASSERT_TRUE(queue.push(8));
  ASSERT_TRUE(eventually([&] { return queue.handled() == 2; }));
  EXPECT_EQ(seen.items(), (std::vector<int>{7, 8}));
}

TEST(BackgroundQueue, PushAfterStopIsADropAndStopIsIdempotent) {
  BackgroundQueue<int> queue("test-queue", 10, 10, kNever, [](std::vector<int>&) {});
  queue.stop();
  queue.stop();
  EXPECT_FALSE(queue.push(1));
  EXPECT_EQ(queue.dropped(), 1u);
  EXPECT_EQ(queue.handled(), 0u);
}

TEST(BackgroundQueue, ManyProducers) {
  std::atomic<int> sum{0};
  BackgroundQueue<int> queue("test-queue", 100000, 64, 1ms, [&](std::vector<int>& batch) {
    for (int v : batch) sum += v;
  });
  std::vector<std::thread> producers;
  for (int t = 0; t < 4; ++t) {
    producers.emplace_back([&] {
      for (int i = 1; i <= 1000; ++i) queue.push(i);
    });
  }
  for (auto& p : producers) p.join();
  queue.stop();
  EXPECT_EQ(queue.handled(), 4000u);
  EXPECT_EQ(queue.dropped(), 0u);
  EXPECT_EQ(sum.load(), 4 * 500500);
}

TEST(BackgroundQueue, NamesItsThreadTruncatedTo15Chars) {
  std::mutex mu;
  std::string name;
  {
    BackgroundQueue<int> queue("skiff-a-very-long-thread-name", 10, 10, kNever,
                               [&](std::vector<int>&) {
                                 char buf[32] = {};
                                 pthread_getname_np(pthread_self(), buf, sizeof buf);
                                 std::lock_guard lock(mu);
                                 name = buf;
                               });
    queue.push(1);
  }  // the destructor drains
  std::lock_guard lock(mu);
  EXPECT_EQ(name, "skiff-a-very-lo");
}

}  // namespace
}  // namespace skiff::telemetry
