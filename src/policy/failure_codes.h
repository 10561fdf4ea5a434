// FailureCodes: the per-route set of outcomes that count as failures. One set drives the
// circuit breaker, outlier detection, the error metrics and (by default) retry_on, so the
// whole proxy agrees on what "failed" means (features.md §4.6).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "base/error.h"
#include "policy/outcome.h"

namespace skiff::policy {

// A set over the 17 gRPC codes and the ProxyFailure kinds; 4 bytes, constexpr, no allocation.
class FailureCodes {
 public:
  constexpr FailureCodes() = default;

  // UNKNOWN, DEADLINE_EXCEEDED, INTERNAL, UNAVAILABLE, DATA_LOSS, plus connect-failure, reset
  // and per-try-timeout. REFUSED_STREAM is not a failure by default: the upstream never saw
  // the request (it is usually at its stream limit or draining), so it says nothing about
  // the method's or the endpoint's health.
  static constexpr FailureCodes defaults() {
    return FailureCodes()
        .add(kCodeUnknown)
        .add(kCodeDeadlineExceeded)
        .add(kCodeInternal)
        .add(kCodeUnavailable)
        .add(kCodeDataLoss)
        .add(ProxyFailure::kConnectFailure)
        .add(ProxyFailure::kReset)
        .add(ProxyFailure::kPerTryTimeout);
  }

  // Codes above 16 are ignored; OK may be added (it is then a "failure" like any other).
  constexpr FailureCodes add(uint8_t code) const {
    FailureCodes out = *this;
    if (code <= kMaxCode) out.codes_ |= 1u << code;
    return out;
  }
  constexpr FailureCodes add(ProxyFailure failure) const {
    FailureCodes out = *this;
    out.proxy_ |= static_cast<uint8_t>(1u << static_cast<uint8_t>(failure));
    return out;
  }
  // Every code and failure of either set.
  constexpr FailureCodes merge(const FailureCodes& other) const {
    FailureCodes out = *this;
    out.codes_ |= other.codes_;
    out.proxy_ |= other.proxy_;
    return out;
  }
  constexpr FailureCodes remove(uint8_t code) const {
    FailureCodes out = *this;
    if (code <= kMaxCode) out.codes_ &= ~(1u << code);
    return out;
  }
  constexpr FailureCodes remove(ProxyFailure failure) const {
    FailureCodes out = *this;
    out.proxy_ &= static_cast<uint8_t>(~(1u << static_cast<uint8_t>(failure)));
    return out;
  }

  constexpr bool contains(uint8_t code) const { return code <= kMaxCode && (codes_ >> code) & 1u; }
  constexpr bool contains(ProxyFailure failure) const {
    return (proxy_ >> static_cast<uint8_t>(failure)) & 1u;
  }
  // The question every consumer asks: does this attempt's outcome count?
  constexpr bool contains(Outcome outcome) const {
    return outcome.is_proxy_failure() ? contains(outcome.proxy_failure())
                                      : contains(outcome.code());
  }
  constexpr bool empty() const { return codes_ == 0 && proxy_ == 0; }

  friend constexpr bool operator==(FailureCodes, FailureCodes) = default;

  // Parses config names: a gRPC code by name, case-insensitive, '-' and '_' alike
  // ("unavailable", "DEADLINE_EXCEEDED", "resource-exhausted") or by number ("14"), or a proxy
  // failure ("connect-failure", "reset", "per-try-timeout", "refused-stream"). The error names
  // the first bad entry as "[i]: ...".
  static base::Result<FailureCodes> parse(std::span<const std::string> names);
  // One name, as above; false if |name| is not one.
  [[nodiscard]] bool add_name(std::string_view name);

  // "UNAVAILABLE,DATA_LOSS,connect-failure": for /config and messages.
  std::string to_string() const;

 private:
  uint32_t codes_ = 0;  // bit c = gRPC code c
  uint8_t proxy_ = 0;   // bit f = ProxyFailure f
};

}  // namespace skiff::policy
