// Header fields and HTTP/2 session limits shared by server and client sessions.
#pragma once

#include <nghttp2/nghttp2.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/block_cache.h"

namespace skiff::h2 {

// One header field. A received field borrows nghttp2's reference-counted buffers (the HPACK
// decoder's own bytes: no copy, no allocation); a field skiff makes (a local reply) owns one heap
// block holding both strings. |name| and |value| are views into that storage: read them, never
// assign them.
class Header {
 public:
  // Owned: copies |name| and |value|.
  Header(std::string_view name, std::string_view value);
  // Borrowed: keeps a reference on each buffer until destroyed. |name_buf| and |value_buf|
  // are their nghttp2_rcbuf_get_buf.
  Header(nghttp2_rcbuf* name, nghttp2_vec name_buf, nghttp2_rcbuf* value, nghttp2_vec value_buf);

  Header(const Header& other);
  Header(Header&& other) noexcept;
  Header& operator=(const Header& other);
  Header& operator=(Header&& other) noexcept;
  ~Header() { release(); }

  std::string_view name;
  std::string_view value;

 private:
  void release() noexcept;
  void copy_from(const Header& other);
  void steal(Header& other) noexcept;

  // Borrowed: both rcbufs set, owned_ null. Owned: owned_ holds name then value.
  nghttp2_rcbuf* name_rc_ = nullptr;
  nghttp2_rcbuf* value_rc_ = nullptr;
  char* owned_ = nullptr;
};
// One per header block (request headers, response headers, trailers): allocated through the
// worker's block cache.
using HeaderList = std::vector<Header, base::CacheAllocator<Header>>;

// A field borrowed from elsewhere (a received header, a literal): forwarding builds these
// instead of copying strings.
struct HeaderView {
  std::string_view name;
  std::string_view value;
};

// Returns the first value of |name| (lower-case), or an empty view.
std::string_view find_header(const HeaderList& headers, std::string_view name);

// The same for a literal name: its length is a constant, so each compare is a few inline loads
// instead of a memcmp call (several of these run on every call).
template <size_t N>
std::string_view find_header(const HeaderList& headers, const char (&name)[N]) {
  constexpr size_t kLength = N - 1;
  for (const Header& h : headers) {
    if (h.name.size() == kLength && std::memcmp(h.name.data(), name, kLength) == 0) return h.value;
  }
  return {};
}

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
  // Downstream: how long a response may hold bytes the client takes none of, and how long the
  // rest may take once the upstream has finished (ServerSession's flush check).
  std::chrono::milliseconds stream_flush_timeout{60'000};
};

// Receiving a header block: charges the field against |limits| (its decoded bytes plus HPACK's
// 32 bytes of overhead, counted before anything is kept, so discarded fields cost too) and keeps
// it in |headers| while the block stays within max_header_list_bytes and max_header_count.
// Returns false once the block is over (the field is then dropped).
// The first field reserves room for |typical| (kRequestFields or kResponseFields).
bool collect_header(HeaderList& headers, size_t& charged_bytes, const Limits& limits,
                    nghttp2_rcbuf* name, nghttp2_rcbuf* value, size_t typical);

// Typical gRPC request blocks have 7 to 10 fields; response header and trailer blocks 1 to 4.
// Sized apart, the short blocks take a smaller block-cache class than the requests: with one
// size for all, the three blocks of every call shared one class and outran its free list.
constexpr size_t kRequestFields = 10;
constexpr size_t kResponseFields = 4;

}  // namespace skiff::h2
