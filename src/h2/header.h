// Header fields and HTTP/2 session limits shared by server and client sessions.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace skiff::h2 {

struct Header {
  std::string name;
  std::string value;
};
using HeaderList = std::vector<Header>;

// A field borrowed from elsewhere (a received header, a literal): forwarding builds these
// instead of copying strings.
struct HeaderView {
  std::string_view name;
  std::string_view value;
};

// Returns the first value of |name| (lower-case), or an empty view.
std::string_view find_header(const HeaderList& headers, std::string_view name);

// nghttp2_nv views over |headers|, in a per-thread scratch array that the next to_nv call on
// this thread reuses: pass straight to an nghttp2 submit function (which copies).
std::span<const nghttp2_nv> to_nv(const HeaderList& headers);
std::span<const nghttp2_nv> to_nv(std::span<const HeaderView> headers);

struct Limits {
  uint32_t max_concurrent_streams = 100;
  uint32_t initial_stream_window = 256 * 1024;
  uint32_t initial_connection_window = 1024 * 1024;
  uint32_t max_header_list_bytes = 60 * 1024;
  uint32_t max_header_count = 100;
  uint32_t max_frame_size = 16 * 1024;
};

}  // namespace skiff::h2
