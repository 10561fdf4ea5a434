// MessageFramer: finds gRPC message boundaries in a DATA byte stream without copying the bytes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <optional>
#include <string_view>

namespace skiff::grpc {

enum class FramerError {
  kBadFlag,   // the compressed-flag byte is neither 0 nor 1
  kTooLarge,  // a length prefix declares more than the limit
};

std::string_view to_string(FramerError e);

// Each gRPC message is a 5-byte prefix (1 flag byte, 0 or 1; a 4-byte big-endian length) and then
// that many bytes. The framer only counts: it keeps the at most 4 prefix bytes that a chunk
// boundary can split, never the body. O(1) per chunk plus O(1) per message.
class MessageFramer {
 public:
  explicit MessageFramer(uint32_t max_message_bytes = UINT32_MAX);

  // Consumes |len| bytes; returns how many messages were completed within them, or the first
  // error. Errors are sticky: every later feed returns the same error and consumes nothing.
  // kTooLarge is reported as soon as the prefix is complete, before any of the body arrives.
  // Messages completed earlier in the chunk that fails still count in messages().
  [[nodiscard]] std::expected<uint32_t, FramerError> feed(const uint8_t* data, size_t len);

  // No partially received prefix or body: a stream ending here ended cleanly.
  bool at_boundary() const { return prefix_len_ == 0 && body_remaining_ == 0; }
  uint64_t messages() const { return messages_; }
  // Total bytes passed to feed(), including the call that failed; none after that are counted.
  uint64_t bytes() const { return bytes_; }
  // Declared length of the message whose body is in progress; 0 at a boundary and while the
  // prefix itself is still incomplete.
  uint32_t pending_message_bytes() const { return pending_message_bytes_; }
  std::optional<FramerError> error() const { return error_; }

 private:
  static constexpr size_t kPrefixBytes = 5;

  // Handles a complete prefix in |prefix|; returns false (with error_ set) if it is rejected.
  bool on_prefix(const uint8_t* prefix);

  uint32_t max_message_bytes_;
  std::array<uint8_t, kPrefixBytes> prefix_{};
  uint8_t prefix_len_ = 0;       // bytes of a split prefix held in prefix_
  uint32_t body_remaining_ = 0;  // body bytes of the current message not yet seen
  uint32_t pending_message_bytes_ = 0;
  uint64_t messages_ = 0;
  uint64_t bytes_ = 0;
  std::optional<FramerError> error_;
};

}  // namespace skiff::grpc
