// Body: the bytes of one direction of a proxied stream, received on one session and waiting to
// be sent on the other. It never grows past the receiver's flow-control window, because the
// window is only reopened (on_drained) as the sending session takes bytes out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "h2/header.h"

namespace skiff::h2 {

class Body {
 public:
  // Receiving side.
  void append(const uint8_t* data, size_t len);
  void finish();                        // no more data, no trailers
  void finish_with(HeaderList trailers);  // no more data; trailers follow it

  // Sending side.
  size_t size() const { return buffer_.size() - head_; }
  bool finished() const { return finished_; }
  bool has_trailers() const { return trailers_.has_value(); }
  HeaderList take_trailers();
  // Appends up to |n| bytes to |out| and reports them through on_drained.
  void take(size_t n, std::string& out);

  // Wiring (set by the proxy): |on_drained(n)| reopens the receiver's window by n bytes;
  // |on_readable()| wakes the sender when data or the end arrives.
  void set_on_drained(std::function<void(size_t)> fn) { on_drained_ = std::move(fn); }
  void set_on_readable(std::function<void()> fn) { on_readable_ = std::move(fn); }

  // Bytes received and not yet drained (their window credit must be returned even if the
  // stream dies: see Call teardown).
  size_t undrained() const { return size(); }

 private:
  void notify_readable();

  std::string buffer_;
  size_t head_ = 0;  // bytes at the front of buffer_ already taken
  bool finished_ = false;
  std::optional<HeaderList> trailers_;
  std::function<void(size_t)> on_drained_;
  std::function<void()> on_readable_;
};

}  // namespace skiff::h2
