// Result type for code that can fail without it being a bug: std::expected with a message.
#pragma once

#include <expected>
#include <string>

namespace skiff::base {

struct Error {
  std::string message;
};

template <typename T>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> fail(std::string message) {
  return std::unexpected<Error>(Error{std::move(message)});
}

}  // namespace skiff::base
