// Body: a compacting byte buffer between two HTTP/2 sessions, with an optional replay window.
#include "h2/body.h"

#include <algorithm>
#include <cstring>

#include "base/check.h"

namespace skiff::h2 {

struct BodyChunk {
  BodyChunk* next;
  uint32_t cap;   // bytes data() can hold
  uint32_t len;   // bytes used
  uint32_t refs;  // the Body's list (while the chunk is in it) + live Slices
  char* data() { return reinterpret_cast<char*>(this + 1); }
};

namespace {

// Block sizes (header included): at least kMinBlock, at most kMaxBlock (the block cache's
// largest class, and nghttp2's default DATA frame payload).
constexpr size_t kMinBlock = 128;
constexpr size_t kMaxBlock = 16 * 1024;

// The whole block-cache class a block of |n| bytes lands in (base/block_cache.h): 32-byte steps
// to 1 KiB, 128-byte steps to 4 KiB, then powers of two.
size_t round_block(size_t n) {
  if (n <= 1024) return (n + 31) / 32 * 32;
  if (n <= 4096) return (n + 127) / 128 * 128;
  size_t b = 8192;
  while (b < n) b <<= 1;
  return b;
}

void unref(BodyChunk* c) {
  if (--c->refs == 0) base::cache_free(c, sizeof(BodyChunk) + c->cap);
}

}  // namespace

void Body::Slice::release() {
  if (chunk_ != nullptr) unref(chunk_);
  chunk_ = nullptr;
}

Body::~Body() { free_chunks(); }

void Body::free_chunks() {
  while (head_ != nullptr) {
    BodyChunk* c = head_;
    head_ = c->next;
    unref(c);
  }
  tail_ = nullptr;
  cursor_ = nullptr;
  cursor_off_ = 0;
}

void Body::append(const uint8_t* data, size_t len) {
  while (len > 0) {
    if (tail_ == nullptr || tail_->len == tail_->cap) {
      // Room for this append, at least as much as is held already (so a large body takes few
      // chunks) and twice the full chunk's room (so a stream's kept chunk soon holds what is
      // in flight, and messages stop costing allocations), within [kMinBlock, kMaxBlock].
      size_t grown = tail_ != nullptr ? 2 * size_t{tail_->cap} : 0;
      size_t want = sizeof(BodyChunk) + std::max({len, total_, grown});
      size_t block = round_block(std::clamp(want, kMinBlock, kMaxBlock));
      auto* c = static_cast<BodyChunk*>(base::cache_alloc(block));
      c->next = nullptr;
      c->cap = static_cast<uint32_t>(block - sizeof(BodyChunk));
      c->len = 0;
      c->refs = 1;
      if (tail_ != nullptr) {
        tail_->next = c;
      } else {
        head_ = c;
      }
      tail_ = c;
      if (cursor_ == nullptr) {
        cursor_ = c;
        cursor_off_ = 0;
      }
    }
    size_t n = std::min<size_t>(len, tail_->cap - tail_->len);
    std::memcpy(tail_->data() + tail_->len, data, n);
    tail_->len += static_cast<uint32_t>(n);
    data += n;
    len -= n;
    total_ += n;
  }
  if (retaining_ && total_ > retain_limit_) {
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
  for (size_t left = n; left > 0;) {
    if (cursor_off_ == cursor_->len) {
      // size() > 0 says a later chunk holds the rest.
      cursor_ = cursor_->next;
      cursor_off_ = 0;
    }
    size_t k = std::min<size_t>(left, cursor_->len - cursor_off_);
    out.append(cursor_->data() + cursor_off_, k);
    cursor_off_ += k;
    left -= k;
  }
  advance_sent(n);
}

Body::Slice Body::next_slice(size_t n) {
  SKIFF_DCHECK(n <= size());  // take_slices' contract
  if (cursor_off_ == cursor_->len) {
    cursor_ = cursor_->next;
    cursor_off_ = 0;
  }
  Slice s;
  s.chunk_ = cursor_;
  s.data_ = cursor_->data() + cursor_off_;
  s.size_ = std::min<size_t>(n, cursor_->len - cursor_off_);
  ++cursor_->refs;
  cursor_off_ += s.size_;
  return s;
}

void Body::advance_sent(size_t n) {
  sent_ += n;
  taken_ += n;
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
  retaining_ = total_ <= limit;
  overflowed_ = !retaining_;
}

void Body::rewind() {
  SKIFF_CHECK(retaining_);  // Call only retries while the request can be replayed
  // While retaining nothing was dropped: head_ holds the first byte.
  sent_ = 0;
  cursor_ = head_;
  cursor_off_ = 0;
}

void Body::append_replay_to(Body& out) const {
  SKIFF_CHECK(retaining_);  // the chunks hold every byte from the first
  for (BodyChunk* c = head_; c != nullptr; c = c->next) {
    out.append(reinterpret_cast<const uint8_t*>(c->data()), c->len);
  }
}

void Body::release() {
  retaining_ = false;
  compact();
}

void Body::credit_received() {
  if (credited_ == total_) return;
  size_t fresh = total_ - credited_;
  credited_ = total_;
  if (on_drained_) on_drained_(fresh);
}

void Body::clear() {
  free_chunks();
  total_ = 0;
  sent_ = 0;
  credited_ = 0;
  finished_ = false;
  trailers_.reset();
}

void Body::compact() {
  // Free the chunks the current attempt sent whole; they will never be needed again.
  size_t dropped = 0;
  while (head_ != nullptr && (head_ != cursor_ || cursor_off_ == head_->len)) {
    BodyChunk* c = head_;
    dropped += c->len;
    if (c->next == nullptr && c->refs == 1) {
      // The last chunk, all sent and in no Slice: kept, empty, for the next bytes (a stream's
      // next message) instead of a free and an allocation per message.
      c->len = 0;
      cursor_ = c;
      cursor_off_ = 0;
      break;
    }
    if (c == cursor_) {
      cursor_ = c->next;
      cursor_off_ = 0;
    }
    head_ = c->next;
    unref(c);  // a Slice may still hold it
  }
  if (head_ == nullptr) tail_ = nullptr;
  total_ -= dropped;
  sent_ -= dropped;
  credited_ -= dropped;
}

void Body::notify_readable() {
  if (on_readable_) on_readable_();
}

}  // namespace skiff::h2
