// Worker: one thread running one uv loop, with a per-iteration flush phase and deferred deletion.
#pragma once

#include <uv.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "net/deadline_sweep.h"
#include "net/timer.h"

namespace skiff::net {

// Something that batches output and writes it once per loop iteration (C8).
class Flushable {
 public:
  virtual ~Flushable() = default;
  virtual void flush() = 0;
};

// Anything whose destruction must wait until no stack frame points at it (C7).
class Deletable {
 public:
  virtual ~Deletable() = default;
};

class Worker {
 public:
  explicit Worker(int id);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  int id() const { return id_; }
  uv_loop_t* loop() { return &loop_; }
  // Timer handles for the request path, reused across calls (loop thread only).
  TimerPool& timer_pool() { return timer_pool_; }
  // Far deadlines of the request path, without a timer each (loop thread only).
  DeadlineSweep& deadlines() { return deadlines_; }

  // Starts the thread; |init| runs on it before the loop. The thread ends when the loop has
  // no more active handles after stop() was posted (or everything closed by itself).
  void start(std::function<void()> init);
  void join();

  // Thread-safe: runs |task| on the worker's loop thread.
  void post(std::function<void()> task);

  // Loop thread only: call |target|->flush() once, after this iteration's I/O callbacks.
  // A target that is deleted must call cancel_flush() first.
  void request_flush(Flushable* target);
  void cancel_flush(Flushable* target);
  // Loop thread only, from a read callback (never from inside a flush). Under light load (the
  // previous iteration read from few sockets), the first call in an iteration runs the flushes
  // requested so far at once; otherwise, and for later calls, they wait for the flush phase.
  // A session calls it after each read, so the first request of a burst is on its way upstream
  // while the rest are parsed (the backend works in parallel). Busy iterations keep one write
  // per session: there the early write would be a second one, for little latency.
  void flush_first_now();

  // Loop thread only: destroys |object| after the current callbacks have returned.
  void defer_delete(std::unique_ptr<Deletable> object);

  // Loop thread only: closes the worker's own handles so the loop can end once its owners
  // have closed theirs.
  void close_own_handles();

  // Any thread: whether no worker of the process read from a socket in its last trim period.
  // glibc's heap is trimmed only then: malloc_trim(0) locks and walks every thread's arena.
  static bool all_quiet();

 private:
  static void on_async(uv_async_t* handle);
  static void on_check(uv_check_t* handle);
  static void on_trim(uv_timer_t* handle);
  void run_flushes();
  void run_flush_rounds();

  int id_;
  uv_loop_t loop_{};
  uv_async_t async_{};
  uv_check_t check_{};
  uv_idle_t idle_{};          // keeps poll from blocking while flushes are pending
  uv_timer_t trim_timer_{};   // gives idle block-cache memory back (base::cache_trim)
  size_t trimmed_bytes_ = 0;  // by the block-cache trims since the heap was last trimmed
  // A session read since the last trim period (written by the loop thread, read by all_quiet()).
  std::atomic<bool> read_since_trim_{false};
  TimerPool timer_pool_{&loop_};
  DeadlineSweep deadlines_{&loop_};
  std::thread thread_;

  std::mutex tasks_mutex_;
  std::vector<std::function<void()>> tasks_;

  std::vector<Flushable*> flush_queue_;
  std::vector<Flushable*> flush_batch_;  // the queue being run (run_flushes)
  std::vector<std::unique_ptr<Deletable>> deferred_;
  std::vector<std::unique_ptr<Deletable>> deferred_batch_;  // the objects being deleted
  bool handles_closed_ = false;
  bool flushed_early_ = false;  // this iteration already ran flush_first_now()
  bool flushing_ = false;       // inside run_flush_rounds()
  // flush_first_now() calls (reads) in this iteration and the previous one.
  uint32_t reads_ = 0;
  uint32_t reads_before_ = 0;
};

}  // namespace skiff::net
