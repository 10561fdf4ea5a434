// BackgroundQueue: a bounded queue that workers push into and one background thread drains,
// handing items to a handler in batches. Shared by the access log and the span exporter, so the
// data plane never waits on a disk or a collector: push() takes a mutex for a few instructions
// and never runs the handler.
//
// Cost: one mutex acquire per push (and a notify on the first item or a full batch). Only sampled
// calls get here, so a lock-free ring is not worth its complexity.
#pragma once

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace skiff::telemetry {

template <typename T>
class BackgroundQueue {
 public:
  // Called on the background thread only. It may move out of the items; it must not throw.
  using Handler = std::function<void(std::vector<T>&)>;

  // |thread_name| is truncated to 15 characters (the Linux limit). At most |max_items| wait in the
  // queue; a batch holds 1..|max_batch| items. The thread hands over a batch when |max_batch|
  // items wait, or when the oldest waiting item has waited |flush_interval|.
  BackgroundQueue(std::string thread_name, size_t max_items, size_t max_batch,
                  std::chrono::milliseconds flush_interval, Handler handler)
      : thread_name_(std::move(thread_name)),
        max_items_(max_items),
        max_batch_(max_batch == 0 ? 1 : max_batch),
        flush_interval_(flush_interval),
        handler_(std::move(handler)) {
    // Started last, so the thread sees every member initialised.
    thread_ = std::thread([this] { run(); });
  }
  ~BackgroundQueue() { stop(); }
  BackgroundQueue(const BackgroundQueue&) = delete;
  BackgroundQueue& operator=(const BackgroundQueue&) = delete;

  // Any thread. Returns false (and counts a drop) when the queue is full or stopped.
  bool push(T item) {
    bool wake = false;
    {
      std::lock_guard lock(mu_);
      if (stopping_ || items_.size() >= max_items_) {
        dropped_.fetch_add(1, std::memory_order_relaxed);
        return false;
      }
      items_.push_back(Entry{std::move(item), Clock::now()});
      // The thread sleeps without a deadline while the queue is empty, and until the oldest
      // item's deadline otherwise: only these two events change what it waits for.
      wake = items_.size() == 1 || items_.size() == max_batch_;
    }
    if (wake) cv_.notify_one();
    return true;
  }

  // Hands everything still queued to the handler, then joins the thread. Idempotent; concurrent
  // callers all return after the join.
  void stop() {
    std::call_once(stop_once_, [this] {
      {
        std::lock_guard lock(mu_);
        stopping_ = true;
      }
      cv_.notify_one();
      thread_.join();
    });
  }

  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  // Items the handler has returned from.
  uint64_t handled() const { return handled_.load(std::memory_order_relaxed); }

 private:
  using Clock = std::chrono::steady_clock;
  struct Entry {
    T item;
    Clock::time_point queued;
  };

  void run() {
    std::string name = thread_name_.substr(0, 15);
    pthread_setname_np(pthread_self(), name.c_str());

    std::vector<T> batch;
    batch.reserve(max_batch_);
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [this] { return stopping_ || !items_.empty(); });
      if (items_.empty()) break;  // stopping, and everything has been handed over
      if (!stopping_ && items_.size() < max_batch_) {
        // Wait for a full batch, stop(), or the oldest item's deadline; then flush either way.
        Clock::time_point deadline = items_.front().queued + flush_interval_;
        cv_.wait_until(lock, deadline, [this] { return stopping_ || items_.size() >= max_batch_; });
      }
      size_t n = std::min(items_.size(), max_batch_);
      for (size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(items_.front().item));
        items_.pop_front();
      }
      lock.unlock();
      handler_(batch);
      handled_.fetch_add(n, std::memory_order_relaxed);
      batch.clear();
      lock.lock();
    }
  }

  const std::string thread_name_;
  const size_t max_items_;
  const size_t max_batch_;
  const std::chrono::milliseconds flush_interval_;
  const Handler handler_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Entry> items_;  // guarded by mu_
  bool stopping_ = false;    // guarded by mu_

  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> handled_{0};
  std::once_flag stop_once_;
  std::thread thread_;
};

}  // namespace skiff::telemetry
