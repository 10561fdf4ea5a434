// Body: the bytes of one direction of a proxied stream, received on one session and waiting to
// be sent on the other. It never grows past the receiver's flow-control window plus the replay
// buffer, because the window is only reopened (on_drained) as the sending session takes bytes
// out for the first time.
//
// For retries, a request Body can retain what it sent (up to a limit) so a new attempt can
// replay it from the start (rewind). Past the limit it stops retaining and reports overflow.
//
// The bytes live in a list of chunks from the worker's block cache, sized to what arrives (a
// small message gets one small chunk; a large one chunks of up to 16 KiB): growing never moves
// bytes already received, and sent chunks are freed from the front.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "base/block_cache.h"
#include "h2/header.h"

namespace skiff::h2 {

// A run of body bytes with a reference count: the Body's list holds one, each Slice another.
struct BodyChunk;

class Body {
 public:
  Body() = default;
  ~Body();
  Body(const Body&) = delete;
  Body& operator=(const Body&) = delete;

  // Receiving side.
  void append(const uint8_t* data, size_t len);
  void finish();                          // no more data, no trailers
  void finish_with(HeaderList trailers);  // no more data; trailers follow it

  // Sending side.
  size_t size() const { return total_ - sent_; }  // bytes the current attempt may send
  bool finished() const { return finished_; }
  bool has_trailers() const { return trailers_.has_value(); }
  HeaderList take_trailers();
  // Appends up to |n| bytes to |out|. Bytes sent for the first time are reported through
  // on_drained; replayed bytes are not (their window credit was returned already).
  void take(size_t n, std::string& out);
  // Like take(), without copying: |n| bytes (n <= size()) as in-place slices passed to
  // |on_slice(slice)|. Each slice holds a reference on its chunk, so its bytes stay valid
  // (even if this Body drops them or is destroyed) until Slice::release().
  class Slice {
   public:
    const char* data() const { return data_; }
    size_t size() const { return size_; }
    void release();

   private:
    friend class Body;
    BodyChunk* chunk_ = nullptr;
    const char* data_ = nullptr;
    size_t size_ = 0;
  };
  template <typename OnSlice>
  void take_slices(size_t n, OnSlice&& on_slice);

  // Replay. retain(limit): keep sent bytes while the body stays within |limit| bytes; once it
  // grows past, retaining stops for good and overflowed() turns true.
  void retain(size_t limit);
  bool retaining() const { return retaining_; }
  bool overflowed() const { return overflowed_; }
  // The next attempt sends from the first byte again (only while retaining).
  void rewind();
  // Appends every byte received so far, from the first, to |out| (only while retaining): a
  // hedged copy's request.
  void append_replay_to(Body& out) const;
  // The call is committed: nothing will be replayed; drop what was sent.
  void release();

  // Holding a response before deciding on a retry: returns the window credit of everything
  // received so far at once (the holder bounds the bytes itself); take() does not report
  // those bytes again.
  void credit_received();
  // The held response is dropped for another attempt: the Body starts empty and unfinished
  // (window credit of bytes still undrained is the caller's to return first).
  void clear();

  // Wiring (set by the proxy): |on_drained(n)| reopens the receiver's window by n bytes;
  // |on_readable()| wakes the sender when data or the end arrives.
  void set_on_drained(std::function<void(size_t)> fn) { on_drained_ = std::move(fn); }
  void set_on_readable(std::function<void()> fn) { on_readable_ = std::move(fn); }

  // Bytes received whose window credit was not returned yet (it must be, even if the stream
  // dies: see Call teardown).
  size_t undrained() const { return total_ - credited_; }

  // Bytes the sending side has taken, ever (replays and cleared attempts included): a stream
  // whose count stands still while bytes wait is not being read (ServerSession's flush check).
  uint64_t taken() const { return taken_; }

 private:
  void notify_readable();
  // The next |n| bytes from the cursor: one slice per chunk they span.
  Slice next_slice(size_t n);
  void advance_sent(size_t n);
  void compact();
  void free_chunks();

  // Bytes not released yet, in order: offsets below count from the first byte of head_;
  // [0, sent_) went out in the current attempt.
  BodyChunk* head_ = nullptr;
  BodyChunk* tail_ = nullptr;
  BodyChunk* cursor_ = nullptr;  // the chunk holding byte sent_ (null: no chunk yet)
  size_t cursor_off_ = 0;        // sent_'s offset inside cursor_
  size_t total_ = 0;             // bytes held
  size_t sent_ = 0;              // offset of the next byte to send
  size_t credited_ = 0;  // offset up to which on_drained was reported (>= sent_ but on replay)
  uint64_t taken_ = 0;
  bool finished_ = false;
  bool retaining_ = false;
  bool overflowed_ = false;
  size_t retain_limit_ = 0;
  std::optional<HeaderList> trailers_;
  std::function<void(size_t)> on_drained_;
  std::function<void()> on_readable_;
};

template <typename OnSlice>
void Body::take_slices(size_t n, OnSlice&& on_slice) {
  for (size_t left = n; left > 0;) {
    Slice s = next_slice(left);
    left -= s.size();
    on_slice(s);
  }
  advance_sent(n);
}

}  // namespace skiff::h2
