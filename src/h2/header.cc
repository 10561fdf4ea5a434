// Header helpers.
#include "h2/header.h"

namespace skiff::h2 {

bool collect_header(HeaderList& headers, size_t& charged_bytes, const Limits& limits,
                    nghttp2_rcbuf* name, nghttp2_rcbuf* value) {
  nghttp2_vec n = nghttp2_rcbuf_get_buf(name);
  nghttp2_vec v = nghttp2_rcbuf_get_buf(value);
  charged_bytes += n.len + v.len + 32;
  if (charged_bytes > limits.max_header_list_bytes || headers.size() >= limits.max_header_count) {
    return false;
  }
  if (headers.empty()) headers.reserve(16);
  headers.push_back(Header{std::string(reinterpret_cast<const char*>(n.base), n.len),
                           std::string(reinterpret_cast<const char*>(v.base), v.len)});
  return true;
}

std::string_view find_header(const HeaderList& headers, std::string_view name) {
  for (const Header& h : headers) {
    if (h.name == name) return h.value;
  }
  return {};
}

namespace {

// Reused by every submit on this thread: building a header block allocates nothing in steady
// state. nghttp2 copies name and value at submit time (no NO_COPY flags).
thread_local std::vector<nghttp2_nv> nv_scratch;

// Fields whose value is new on every request: grpc-timeout (the time left) and the per-call
// trace ids. Indexing them would only churn the HPACK dynamic table (a hash, compares and
// evictions of useful entries per call).
bool new_every_request(std::string_view name) {
  switch (name.empty() ? '\0' : name[0]) {
    case 'g':
      return name == "grpc-timeout";
    case 't':
      return name == "traceparent";
    case 'x':
      return name == "x-request-id" || name == "x-b3-traceid" || name == "x-b3-spanid" ||
             name == "x-b3-parentspanid";
    case 'b':
      return name == "b3";
    default:
      return false;
  }
}

nghttp2_nv make_nv(std::string_view name, std::string_view value) {
  const uint8_t flags = new_every_request(name) ? NGHTTP2_NV_FLAG_NO_INDEX : NGHTTP2_NV_FLAG_NONE;
  return nghttp2_nv{const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(name.data())),
                    const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(value.data())),
                    name.size(), value.size(), flags};
}

}  // namespace

std::span<const nghttp2_nv> to_nv(const HeaderList& headers) {
  nv_scratch.clear();
  for (const Header& h : headers) nv_scratch.push_back(make_nv(h.name, h.value));
  return nv_scratch;
}

std::span<const nghttp2_nv> to_nv(std::span<const HeaderView> headers) {
  nv_scratch.clear();
  for (const HeaderView& h : headers) nv_scratch.push_back(make_nv(h.name, h.value));
  return nv_scratch;
}

}  // namespace skiff::h2
