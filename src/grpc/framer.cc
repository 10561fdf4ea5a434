// MessageFramer: a byte-counting state machine over gRPC's length-prefixed message framing.
#include "grpc/framer.h"

#include <algorithm>
#include <limits>

namespace skiff::grpc {

std::string_view to_string(FramerError e) {
  switch (e) {
    case FramerError::kBadFlag:
      return "gRPC message flag is not 0 or 1";
    case FramerError::kTooLarge:
      return "gRPC message is larger than the limit";
  }
  return "malformed gRPC message framing";
}

MessageFramer::MessageFramer(uint32_t max_message_bytes) : max_message_bytes_(max_message_bytes) {}

bool MessageFramer::on_prefix(const uint8_t* prefix) {
  const uint32_t length = (uint32_t{prefix[1]} << 24) | (uint32_t{prefix[2]} << 16) |
                          (uint32_t{prefix[3]} << 8) | uint32_t{prefix[4]};
  if (length > max_message_bytes_) {
    error_ = FramerError::kTooLarge;
    return false;
  }
  body_remaining_ = length;
  pending_message_bytes_ = length;
  return true;
}

std::expected<uint32_t, FramerError> MessageFramer::feed(const uint8_t* data, size_t len) {
  if (error_) return std::unexpected(*error_);
  bytes_ += len;

  uint64_t completed = 0;
  size_t pos = 0;
  for (;;) {
    if (body_remaining_ > 0) {
      const size_t take = std::min<size_t>(body_remaining_, len - pos);
      body_remaining_ -= static_cast<uint32_t>(take);
      pos += take;
      if (body_remaining_ > 0) break;  // chunk exhausted mid-body
      ++completed;
      ++messages_;
      pending_message_bytes_ = 0;
      continue;
    }
    if (pos == len) break;

    // At a prefix. The flag byte is checked as soon as it arrives.
    const uint8_t* prefix = nullptr;
    if (prefix_len_ == 0 && len - pos >= kPrefixBytes) {
      prefix = data + pos;  // whole prefix in this chunk: read it in place
      if (prefix[0] > 1) {
        error_ = FramerError::kBadFlag;
        break;
      }
      pos += kPrefixBytes;
    } else {
      if (prefix_len_ == 0 && data[pos] > 1) {
        error_ = FramerError::kBadFlag;
        break;
      }
      const size_t take = std::min(kPrefixBytes - prefix_len_, len - pos);
      std::copy_n(data + pos, take, prefix_.begin() + prefix_len_);
      prefix_len_ = static_cast<uint8_t>(prefix_len_ + take);
      pos += take;
      if (prefix_len_ < kPrefixBytes) break;  // chunk exhausted mid-prefix
      prefix_len_ = 0;
      prefix = prefix_.data();
    }
    if (!on_prefix(prefix)) break;
    if (body_remaining_ == 0) {  // zero-length message: complete with its prefix
      ++completed;
      ++messages_;
    }
  }
  if (error_) return std::unexpected(*error_);
  return static_cast<uint32_t>(std::min<uint64_t>(completed, std::numeric_limits<uint32_t>::max()));
}

}  // namespace skiff::grpc
