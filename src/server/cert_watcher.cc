// CertWatcher: stat poll -> settle timer -> rebuild -> ContextSlot::set.
#include "server/cert_watcher.h"

#include "base/check.h"
#include "base/log.h"

namespace skiff::server {

struct CertWatcher::TimerBox {
  uv_timer_t handle{};
  CertWatcher* owner = nullptr;  // null once the watcher closed it
};

CertWatcher::CertWatcher(uv_loop_t* loop, std::vector<TlsEntry>& entries)
    : loop_(loop), entries_(entries) {
  for (const TlsEntry& entry : entries_) {
    for (const auto& [file, stamp] : entry.stamps) current_.emplace(file, stamp);
  }
}

CertWatcher::~CertWatcher() {
  // The timers must have been closed while the loop ran (C6).
  SKIFF_CHECK(closed_ || poll_timer_ == nullptr);
}

void CertWatcher::start() {
  if (current_.empty()) return;
  for (TimerBox** box : {&poll_timer_, &settle_timer_}) {
    *box = new TimerBox;
    (*box)->owner = this;
    SKIFF_CHECK(uv_timer_init(loop_, &(*box)->handle) == 0);
    (*box)->handle.data = *box;
  }
  const auto interval = static_cast<uint64_t>(kPollInterval.count());
  uv_timer_start(
      &poll_timer_->handle,
      [](uv_timer_t* h) {
        auto* box = static_cast<TimerBox*>(h->data);
        if (box->owner != nullptr) box->owner->poll();
      },
      interval, interval);
  SKIFF_LOG(kDebug) << "watching " << current_.size() << " TLS file(s) for changes";
}

void CertWatcher::close() {
  if (closed_) return;
  closed_ = true;
  for (TimerBox* box : {poll_timer_, settle_timer_}) {
    if (box == nullptr) continue;
    box->owner = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(&box->handle),
             [](uv_handle_t* h) { delete static_cast<TimerBox*>(h->data); });
  }
  poll_timer_ = settle_timer_ = nullptr;
}

void CertWatcher::poll() {
  bool changed = false;
  for (auto& [file, seen] : current_) {
    FileStamp now = stamp_file(file);
    if (now == seen) continue;
    seen = now;
    changed = true;
    SKIFF_LOG(kDebug) << "TLS file changed: " << file;
    for (size_t i = 0; i < entries_.size(); ++i) {
      if (entries_[i].stamps.contains(file)) dirty_.insert(i);
    }
  }
  if (!changed) return;
  uv_timer_start(
      &settle_timer_->handle,
      [](uv_timer_t* h) {
        auto* box = static_cast<TimerBox*>(h->data);
        if (box->owner != nullptr) box->owner->rebuild();
      },
      static_cast<uint64_t>(kSettleDelay.count()), 0);
}

void CertWatcher::rebuild() {
  std::set<size_t> dirty = std::move(dirty_);
  dirty_.clear();
  for (size_t i : dirty) {
    TlsEntry& entry = entries_[i];
    auto context = entry.build();  // restamps the entry's files before reading them
    if (!context) {
      SKIFF_LOG(kError) << entry.name << ": TLS reload failed, the current certificate keeps "
                        << "serving: " << context.error().message;
      reload_failures_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    std::string description = (*context)->certificate_description();
    entry.slot->set(std::move(*context));
    reloads_.fetch_add(1, std::memory_order_relaxed);
    SKIFF_LOG(kInfo) << entry.name << ": TLS reloaded for new connections"
                     << (description.empty() ? "" : " (certificate " + description + ")");
  }
}

}  // namespace skiff::server
