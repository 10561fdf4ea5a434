// CertWatcher: uv_fs_poll per file -> settle timer -> rebuild -> ContextSlot::set.
#include "server/cert_watcher.h"

#include "base/check.h"
#include "base/log.h"

namespace skiff::server {

struct CertWatcher::Poll {
  uv_fs_poll_t handle{};
  CertWatcher* owner = nullptr;  // null once the watcher closed it
  std::string file;
};

struct CertWatcher::Settle {
  uv_timer_t handle{};
  CertWatcher* owner = nullptr;
};

CertWatcher::CertWatcher(uv_loop_t* loop, std::vector<TlsEntry>& entries)
    : loop_(loop), entries_(entries) {}

CertWatcher::~CertWatcher() {
  // The handles must have been closed while the loop ran (C6).
  SKIFF_CHECK(closed_ || (polls_.empty() && settle_ == nullptr));
}

void CertWatcher::start() {
  std::set<std::string> files;
  for (const TlsEntry& entry : entries_) {
    for (const std::string& f : entry.files()) files.insert(f);
  }
  if (files.empty()) return;
  settle_ = new Settle;
  settle_->owner = this;
  SKIFF_CHECK(uv_timer_init(loop_, &settle_->handle) == 0);
  settle_->handle.data = settle_;
  for (const std::string& file : files) {
    auto* poll = new Poll;
    poll->owner = this;
    poll->file = file;
    SKIFF_CHECK(uv_fs_poll_init(loop_, &poll->handle) == 0);
    poll->handle.data = poll;
    int rc = uv_fs_poll_start(
        &poll->handle,
        [](uv_fs_poll_t* h, int status, const uv_stat_t*, const uv_stat_t*) {
          auto* p = static_cast<Poll*>(h->data);
          if (p->owner != nullptr) p->owner->on_change(p->file, status);
        },
        file.c_str(), static_cast<unsigned int>(kPollInterval.count()));
    if (rc != 0) {
      SKIFF_LOG(kWarn) << "cannot watch " << file << " for changes: " << uv_strerror(rc);
    }
    polls_.push_back(poll);
  }
  SKIFF_LOG(kDebug) << "watching " << files.size() << " TLS file(s) for changes";
}

void CertWatcher::close() {
  if (closed_) return;
  closed_ = true;
  for (Poll* poll : polls_) {
    poll->owner = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(&poll->handle),
             [](uv_handle_t* h) { delete static_cast<Poll*>(h->data); });
  }
  polls_.clear();
  if (settle_ != nullptr) {
    settle_->owner = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(&settle_->handle),
             [](uv_handle_t* h) { delete static_cast<Settle*>(h->data); });
    settle_ = nullptr;
  }
}

void CertWatcher::on_change(const std::string& file, int status) {
  SKIFF_LOG(kDebug) << "TLS file changed: " << file
                    << (status < 0 ? std::string(" (") + uv_strerror(status) + ")" : "");
  for (size_t i = 0; i < entries_.size(); ++i) {
    for (const std::string& f : entries_[i].files()) {
      if (f == file) dirty_.insert(i);
    }
  }
  uv_timer_start(
      &settle_->handle,
      [](uv_timer_t* h) {
        auto* s = static_cast<Settle*>(h->data);
        if (s->owner != nullptr) s->owner->rebuild();
      },
      static_cast<uint64_t>(kSettleDelay.count()), 0);
}

void CertWatcher::rebuild() {
  std::set<size_t> dirty = std::move(dirty_);
  dirty_.clear();
  for (size_t i : dirty) {
    TlsEntry& entry = entries_[i];
    auto context = entry.build();
    if (!context) {
      SKIFF_LOG(kError) << entry.name << ": TLS reload failed, the current certificate keeps "
                        << "serving: " << context.error().message;
      continue;
    }
    std::string description = (*context)->certificate_description();
    entry.slot->set(std::move(*context));
    SKIFF_LOG(kInfo) << entry.name << ": TLS reloaded for new connections"
                     << (description.empty() ? "" : " (certificate " + description + ")");
  }
}

}  // namespace skiff::server
