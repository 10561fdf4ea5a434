// Outcome: how one upstream attempt ended, in the terms every policy decides on. policy/ may
// not include grpc/, so gRPC status codes are their wire values (uint8_t 0..16, the same
// numbers as grpc::StatusCode); the proxy converts with a static_cast.
#pragma once

#include <cstdint>
#include <string_view>

namespace skiff::policy {

// gRPC status codes by wire value (grpc/grpc doc/statuscodes.md).
inline constexpr uint8_t kCodeOk = 0;
inline constexpr uint8_t kCodeCancelled = 1;
inline constexpr uint8_t kCodeUnknown = 2;
inline constexpr uint8_t kCodeInvalidArgument = 3;
inline constexpr uint8_t kCodeDeadlineExceeded = 4;
inline constexpr uint8_t kCodeNotFound = 5;
inline constexpr uint8_t kCodeAlreadyExists = 6;
inline constexpr uint8_t kCodePermissionDenied = 7;
inline constexpr uint8_t kCodeResourceExhausted = 8;
inline constexpr uint8_t kCodeFailedPrecondition = 9;
inline constexpr uint8_t kCodeAborted = 10;
inline constexpr uint8_t kCodeOutOfRange = 11;
inline constexpr uint8_t kCodeUnimplemented = 12;
inline constexpr uint8_t kCodeInternal = 13;
inline constexpr uint8_t kCodeUnavailable = 14;
inline constexpr uint8_t kCodeDataLoss = 15;
inline constexpr uint8_t kCodeUnauthenticated = 16;
inline constexpr uint8_t kMaxCode = 16;

// Failures skiff sees itself, where no grpc-status came back from the upstream.
enum class ProxyFailure : uint8_t {
  kConnectFailure,  // no stream was opened: connect or TLS handshake failed
  kReset,           // the upstream reset the stream, or its connection was lost, before a status
  kPerTryTimeout,   // the attempt's per_try_timeout fired before a status
  kRefusedStream,   // RST_STREAM(REFUSED_STREAM), or the stream was above a GOAWAY's
                    // last-stream-id: the upstream application never saw the request
};
inline constexpr uint8_t kProxyFailureCount = 4;

// The result of one attempt: either a grpc-status from the upstream (trailers-only, or the
// trailers of a response skiff held before committing) or a ProxyFailure. A trivially
// copyable value, two bytes.
class Outcome {
 public:
  static constexpr Outcome ok() { return Outcome(kCodeOk, false); }
  // |code| above 16 becomes UNKNOWN, as gRPC clients read it.
  static constexpr Outcome status(uint8_t code) {
    return Outcome(code > kMaxCode ? kCodeUnknown : code, false);
  }
  static constexpr Outcome failure(ProxyFailure f) {
    return Outcome(static_cast<uint8_t>(f), true);
  }

  constexpr bool is_ok() const { return !proxy_ && value_ == kCodeOk; }
  constexpr bool is_status() const { return !proxy_; }
  constexpr bool is_proxy_failure() const { return proxy_; }
  // The gRPC status; for a ProxyFailure, the code skiff answers with if it is final
  // (always UNAVAILABLE: the upstream was not reachable or did not finish, DESIGN.md's table).
  constexpr uint8_t code() const { return proxy_ ? kCodeUnavailable : value_; }
  // Only meaningful when is_proxy_failure().
  constexpr ProxyFailure proxy_failure() const { return static_cast<ProxyFailure>(value_); }

  friend constexpr bool operator==(Outcome, Outcome) = default;

 private:
  constexpr Outcome(uint8_t value, bool proxy) : value_(value), proxy_(proxy) {}
  uint8_t value_;
  bool proxy_;
};

// "UNAVAILABLE", "connect-failure", ...: for messages and tests.
std::string_view to_string(ProxyFailure failure);
std::string_view code_name(uint8_t code);
// The failure's name, or the status code's: "connect-failure", "UNAVAILABLE".
std::string_view to_string(Outcome outcome);

}  // namespace skiff::policy
