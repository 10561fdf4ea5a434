// Header helpers.
#include "h2/header.h"

#include <cstring>

namespace skiff::h2 {

Header::Header(std::string_view n, std::string_view v) {
  owned_ = new char[n.size() + v.size()];
  if (!n.empty()) std::memcpy(owned_, n.data(), n.size());
  if (!v.empty()) std::memcpy(owned_ + n.size(), v.data(), v.size());
  name = std::string_view(owned_, n.size());
  value = std::string_view(owned_ + n.size(), v.size());
}

Header::Header(nghttp2_rcbuf* n, nghttp2_vec nb, nghttp2_rcbuf* v, nghttp2_vec vb)
    : name(reinterpret_cast<const char*>(nb.base), nb.len),
      value(reinterpret_cast<const char*>(vb.base), vb.len),
      name_rc_(n),
      value_rc_(v) {
  nghttp2_rcbuf_incref(n);
  nghttp2_rcbuf_incref(v);
}

Header::Header(const Header& other) { copy_from(other); }

Header::Header(Header&& other) noexcept { steal(other); }

Header& Header::operator=(const Header& other) {
  if (this != &other) {
    release();
    copy_from(other);
  }
  return *this;
}

Header& Header::operator=(Header&& other) noexcept {
  if (this != &other) {
    release();
    steal(other);
  }
  return *this;
}

void Header::release() noexcept {
  if (name_rc_ != nullptr) nghttp2_rcbuf_decref(name_rc_);
  if (value_rc_ != nullptr) nghttp2_rcbuf_decref(value_rc_);
  delete[] owned_;
  name_rc_ = value_rc_ = nullptr;
  owned_ = nullptr;
}

void Header::copy_from(const Header& other) {
  if (other.owned_ != nullptr) {
    *this = Header(other.name, other.value);
    return;
  }
  name_rc_ = other.name_rc_;
  value_rc_ = other.value_rc_;
  if (name_rc_ != nullptr) nghttp2_rcbuf_incref(name_rc_);
  if (value_rc_ != nullptr) nghttp2_rcbuf_incref(value_rc_);
  name = other.name;
  value = other.value;
}

void Header::steal(Header& other) noexcept {
  name = other.name;
  value = other.value;
  name_rc_ = other.name_rc_;
  value_rc_ = other.value_rc_;
  owned_ = other.owned_;
  other.name_rc_ = other.value_rc_ = nullptr;
  other.owned_ = nullptr;
  other.name = other.value = {};
}

bool collect_header(HeaderList& headers, size_t& charged_bytes, const Limits& limits,
                    nghttp2_rcbuf* name, nghttp2_rcbuf* value) {
  nghttp2_vec n = nghttp2_rcbuf_get_buf(name);
  nghttp2_vec v = nghttp2_rcbuf_get_buf(value);
  charged_bytes += n.len + v.len + 32;
  if (charged_bytes > limits.max_header_list_bytes || headers.size() >= limits.max_header_count) {
    return false;
  }
  // Typical gRPC request blocks have 7 to 10 fields; response blocks 1 to 3.
  if (headers.empty()) headers.reserve(10);
  headers.emplace_back(name, n, value, v);
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
