// Body: a compacting byte buffer between two HTTP/2 sessions, with an optional replay window.
#include "h2/body.h"

#include "base/check.h"

namespace skiff::h2 {

void Body::append(const uint8_t* data, size_t len) {
  buffer_.append(reinterpret_cast<const char*>(data), len);
  if (retaining_ && buffer_.size() > retain_limit_) {
    retaining_ = false;
    overflowed_ = true;
    compact();
  }
  notify_readable();
}

void Body::finish() {
  finished_ = true;
  notify_readable();
}

void Body::finish_with(HeaderList trailers) {
  trailers_ = std::move(trailers);
  finish();
}

HeaderList Body::take_trailers() {
  HeaderList out = std::move(*trailers_);
  trailers_.reset();
  return out;
}

void Body::take(size_t n, std::string& out) {
  if (n > size()) n = size();
  out.append(buffer_.data() + sent_, n);
  sent_ += n;
  if (sent_ > credited_) {
    size_t fresh = sent_ - credited_;
    credited_ = sent_;
    if (on_drained_) on_drained_(fresh);
  }
  if (!retaining_) compact();
}

void Body::retain(size_t limit) {
  // Only before anything was sent: a replay must start at the request's first byte.
  SKIFF_CHECK(sent_ == 0 && credited_ == 0);
  retain_limit_ = limit;
  retaining_ = buffer_.size() <= limit;
  overflowed_ = !retaining_;
}

void Body::rewind() {
  SKIFF_CHECK(retaining_);  // Call only retries while the request can be replayed
  sent_ = 0;
}

void Body::release() {
  retaining_ = false;
  compact();
}

void Body::credit_received() {
  if (credited_ == buffer_.size()) return;
  size_t fresh = buffer_.size() - credited_;
  credited_ = buffer_.size();
  if (on_drained_) on_drained_(fresh);
}

void Body::clear() {
  buffer_.clear();
  sent_ = 0;
  credited_ = 0;
  finished_ = false;
  trailers_.reset();
}

void Body::compact() {
  // Drop what the current attempt sent and will never need again. Erasing is amortised: all
  // at once when everything was sent, else only once the dead prefix dominates.
  if (sent_ == buffer_.size()) {
    buffer_.clear();
  } else if (sent_ > 64 * 1024 && sent_ * 2 > buffer_.size()) {
    buffer_.erase(0, sent_);
  } else {
    return;
  }
  credited_ -= sent_;
  sent_ = 0;
}

void Body::notify_readable() {
  if (on_readable_) on_readable_();
}

}  // namespace skiff::h2
