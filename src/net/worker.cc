// Worker: thread + uv loop; flushes and deferred deletes run in the uv_check phase.
#include "net/worker.h"

#include <malloc.h>

#include <algorithm>

#include "base/block_cache.h"
#include "base/check.h"

namespace skiff::net {
namespace {

// How often the block cache is trimmed.
constexpr uint64_t kTrimPeriodMs = 500;
// Bytes the block cache must have let go of in one trim before the heap is trimmed too.
constexpr size_t kTrimHeapAfter = 1024 * 1024;
// A trim frees at most this many cached blocks at once and takes the rest a millisecond later:
// giving back the 90,000 blocks 10,000 held streams leave took 6.7 ms of free() calls in one
// go, and takes slices of at most 0.7 ms this way.
constexpr size_t kTrimSliceBlocks = 4096;
// flush_first_now() flushes early only after an iteration with at most this many reads.
constexpr uint32_t kEarlyFlushMaxReads = 4;

// Every live Worker, for all_quiet().
std::mutex workers_mutex;
std::vector<const Worker*>& live_workers() {
  static std::vector<const Worker*> workers;
  return workers;
}

}  // namespace

Worker::Worker(int id) : id_(id) {
  // Initialised here so handles can be used from init() and post() before start().
  SKIFF_CHECK(uv_loop_init(&loop_) == 0);
  SKIFF_CHECK(uv_async_init(&loop_, &async_, &Worker::on_async) == 0);
  async_.data = this;
  SKIFF_CHECK(uv_check_init(&loop_, &check_) == 0);
  check_.data = this;
  SKIFF_CHECK(uv_check_start(&check_, &Worker::on_check) == 0);
  // The check handle alone must not keep the loop alive.
  uv_unref(reinterpret_cast<uv_handle_t*>(&check_));
  SKIFF_CHECK(uv_idle_init(&loop_, &idle_) == 0);
  idle_.data = this;
  // Twice a second, on the loop thread: cached blocks that a list did not need for half a
  // second go back to malloc, and after a burst, once every worker has had a quiet period, glibc
  // is asked to give its free pages back (scattered blocks keep a heap from shrinking on its
  // own).
  SKIFF_CHECK(uv_timer_init(&loop_, &trim_timer_) == 0);
  trim_timer_.data = this;
  SKIFF_CHECK(uv_timer_start(&trim_timer_, &Worker::on_trim, kTrimPeriodMs, kTrimPeriodMs) == 0);
  uv_unref(reinterpret_cast<uv_handle_t*>(&trim_timer_));  // must not keep the loop alive
  std::lock_guard<std::mutex> lock(workers_mutex);
  live_workers().push_back(this);
}

Worker::~Worker() {
  {
    std::lock_guard<std::mutex> lock(workers_mutex);
    std::erase(live_workers(), this);
  }
  if (thread_.joinable()) thread_.join();
  // Every owner closed its handles before the loop ended (C15: loop_close must succeed).
  int rc = uv_loop_close(&loop_);
  SKIFF_CHECK(rc == 0);
}

void Worker::start(std::function<void()> init) {
  thread_ = std::thread([this, init = std::move(init)] {
    init();
    uv_run(&loop_, UV_RUN_DEFAULT);
    // The check phase is gone with the worker's own handles: run what is still queued, and
    // the close callbacks that deleting it produces, until nothing is left.
    while (!deferred_.empty() || !flush_queue_.empty()) {
      run_flushes();
      uv_run(&loop_, UV_RUN_DEFAULT);
    }
  });
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(tasks_mutex_);
    tasks_.push_back(std::move(task));
  }
  uv_async_send(&async_);
}

void Worker::on_async(uv_async_t* handle) {
  auto* self = static_cast<Worker*>(handle->data);
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard<std::mutex> lock(self->tasks_mutex_);
    tasks.swap(self->tasks_);
  }
  for (auto& task : tasks) task();
}

void Worker::request_flush(Flushable* target) {
  if (flush_queue_.empty() && !handles_closed_) {
    uv_idle_start(&idle_, [](uv_idle_t*) {});
  }
  flush_queue_.push_back(target);
}

void Worker::cancel_flush(Flushable* target) {
  std::replace(flush_queue_.begin(), flush_queue_.end(), target, static_cast<Flushable*>(nullptr));
  // And from the batch being run, should the target go away in the middle of it.
  std::replace(flush_batch_.begin(), flush_batch_.end(), target, static_cast<Flushable*>(nullptr));
}

void Worker::defer_delete(std::unique_ptr<Deletable> object) {
  if (deferred_.empty() && !handles_closed_) {
    uv_idle_start(&idle_, [](uv_idle_t*) {});
  }
  deferred_.push_back(std::move(object));
}

void Worker::on_check(uv_check_t* handle) { static_cast<Worker*>(handle->data)->run_flushes(); }

void Worker::on_trim(uv_timer_t* handle) {
  auto* self = static_cast<Worker*>(handle->data);
  bool more = false;
  self->trimmed_bytes_ += base::cache_trim(kTrimSliceBlocks, &more);
  if (more) {
    // The next slice soon; the period resumes after it.
    uv_timer_start(handle, &Worker::on_trim, 1, kTrimPeriodMs);
    return;
  }
  // glibc's heap is trimmed only after a period in which no worker read: malloc_trim(0) walks
  // and madvises every thread's arena under its lock (about 20 ms after a 10,000-stream burst),
  // and calls in flight on any worker would wait for it. Under steady traffic the heap keeps
  // its free pages until a pause.
  if (self->trimmed_bytes_ >= kTrimHeapAfter && all_quiet()) {
    malloc_trim(0);
    self->trimmed_bytes_ = 0;
  }
  self->read_since_trim_.store(false, std::memory_order_relaxed);
}

bool Worker::all_quiet() {
  std::lock_guard<std::mutex> lock(workers_mutex);
  return std::none_of(live_workers().begin(), live_workers().end(), [](const Worker* w) {
    return w->read_since_trim_.load(std::memory_order_relaxed);
  });
}

void Worker::flush_first_now() {
  ++reads_;
  read_since_trim_.store(true, std::memory_order_relaxed);
  if (flushed_early_ || flushing_ || reads_before_ > kEarlyFlushMaxReads) return;
  flushed_early_ = true;
  run_flush_rounds();
}

void Worker::run_flush_rounds() {
  // A flush may request further flushes (a session waking its peer); loop until quiet,
  // bounded so a ping-pong can't starve the loop.
  // The batches are members swapped with the queues, so both keep their capacity: a loop
  // turn allocates nothing here (a local vector cost an allocation per turn).
  flushing_ = true;
  for (int round = 0; round < 8 && !flush_queue_.empty(); ++round) {
    flush_batch_.swap(flush_queue_);
    for (Flushable* target : flush_batch_) {
      if (target != nullptr) target->flush();
    }
    flush_batch_.clear();
  }
  flushing_ = false;
}

void Worker::run_flushes() {
  flushed_early_ = false;
  reads_before_ = reads_;
  reads_ = 0;
  run_flush_rounds();
  // Deleting may trigger more deferred deletes (an object owning others); drain fully.
  while (!deferred_.empty()) {
    deferred_batch_.swap(deferred_);
    deferred_batch_.clear();
  }
  if (flush_queue_.empty() && !handles_closed_) uv_idle_stop(&idle_);
}

void Worker::close_own_handles() {
  if (handles_closed_) return;
  handles_closed_ = true;
  timer_pool_.close();
  deadlines_.close();
  uv_idle_stop(&idle_);
  uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&check_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&idle_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&trim_timer_), nullptr);
}

}  // namespace skiff::net
