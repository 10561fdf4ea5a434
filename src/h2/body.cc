// Body: a compacting byte buffer between two HTTP/2 sessions.
#include "h2/body.h"

namespace skiff::h2 {

void Body::append(const uint8_t* data, size_t len) {
  if (head_ > 0 && head_ == buffer_.size()) {
    buffer_.clear();
    head_ = 0;
  }
  buffer_.append(reinterpret_cast<const char*>(data), len);
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
  out.append(buffer_, head_, n);
  head_ += n;
  if (head_ == buffer_.size()) {
    buffer_.clear();
    head_ = 0;
  } else if (head_ > 64 * 1024 && head_ * 2 > buffer_.size()) {
    buffer_.erase(0, head_);
    head_ = 0;
  }
  if (on_drained_ && n > 0) on_drained_(n);
}

void Body::notify_readable() {
  if (on_readable_) on_readable_();
}

}  // namespace skiff::h2
