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
                    nghttp2_rcbuf* name, nghttp2_rcbuf* value, size_t typical) {
  nghttp2_vec n = nghttp2_rcbuf_get_buf(name);
  nghttp2_vec v = nghttp2_rcbuf_get_buf(value);
  charged_bytes += n.len + v.len + 32;
  if (charged_bytes > limits.max_header_list_bytes || headers.size() >= limits.max_header_count) {
    return false;
  }
  if (headers.empty()) headers.reserve(typical);
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
// state. nghttp2 copies (and lower-cases) a name or value at submit time unless it is flagged
// NO_COPY, which skiff only does for the static strings below.
thread_local std::vector<nghttp2_nv> nv_scratch;

uint8_t* bytes(std::string_view s) {
  return const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(s.data()));
}

// How a field skiff sends on every call is encoded. |name| (and |value|, when set) are static
// copies nghttp2 may point at instead of copying: a NO_COPY name also skips nghttp2's per-byte
// lower-casing (these are lower-case already).
struct KnownField {
  std::string_view name;
  std::string_view value;  // the usual value, or empty
  // The value is new on every request (per-call trace ids): indexing it would only churn the
  // HPACK dynamic table (a hash, compares and evictions of useful entries).
  bool no_index = false;
};

constexpr KnownField kMethod{":method", "POST"};
constexpr KnownField kScheme{":scheme", "http"};
constexpr KnownField kSchemeTls{":scheme", "https"};
constexpr KnownField kStatus{":status", "200"};
constexpr KnownField kPath{":path", ""};
constexpr KnownField kAuthority{":authority", ""};
constexpr KnownField kTe{"te", "trailers"};
constexpr KnownField kContentType{"content-type", "application/grpc"};
constexpr KnownField kUserAgent{"user-agent", ""};
constexpr KnownField kContentLength{"content-length", ""};
constexpr KnownField kGrpcStatus{"grpc-status", "0"};
constexpr KnownField kGrpcMessage{"grpc-message", ""};
constexpr KnownField kGrpcEncoding{"grpc-encoding", ""};
constexpr KnownField kGrpcAcceptEncoding{"grpc-accept-encoding", ""};
constexpr KnownField kAcceptEncoding{"accept-encoding", ""};
// Indexed: format_timeout keeps 3 significant digits, so a route timeout's time left is the
// same short value on every call ("30S").
constexpr KnownField kGrpcTimeout{"grpc-timeout", ""};
constexpr KnownField kTraceparent{"traceparent", "", true};
constexpr KnownField kRequestId{"x-request-id", "", true};
constexpr KnownField kB3TraceId{"x-b3-traceid", "", true};
constexpr KnownField kB3SpanId{"x-b3-spanid", "", true};
constexpr KnownField kB3ParentSpanId{"x-b3-parentspanid", "", true};
constexpr KnownField kB3{"b3", "", true};

// |F| as a template argument makes its name's length a constant: an inline compare, not a
// memcmp call.
template <const KnownField& F>
const KnownField* is(std::string_view name) {
  return name.size() == F.name.size() && std::memcmp(name.data(), F.name.data(), F.name.size()) == 0
             ? &F
             : nullptr;
}

// One switch on the length, then at most a few fixed-size compares.
const KnownField* find_known(std::string_view name) {
  switch (name.size()) {
    case 2:
      if (auto* f = is<kTe>(name)) return f;
      return is<kB3>(name);
    case 5:
      return is<kPath>(name);
    case 7:
      if (auto* f = is<kMethod>(name)) return f;
      if (auto* f = is<kScheme>(name)) return f;
      return is<kStatus>(name);
    case 10:
      if (auto* f = is<kAuthority>(name)) return f;
      return is<kUserAgent>(name);
    case 11:
      if (auto* f = is<kGrpcStatus>(name)) return f;
      if (auto* f = is<kTraceparent>(name)) return f;
      return is<kB3SpanId>(name);
    case 12:
      if (auto* f = is<kContentType>(name)) return f;
      if (auto* f = is<kGrpcMessage>(name)) return f;
      if (auto* f = is<kGrpcTimeout>(name)) return f;
      if (auto* f = is<kRequestId>(name)) return f;
      return is<kB3TraceId>(name);
    case 13:
      return is<kGrpcEncoding>(name);
    case 14:
      return is<kContentLength>(name);
    case 15:
      return is<kAcceptEncoding>(name);
    case 17:
      return is<kB3ParentSpanId>(name);
    case 20:
      return is<kGrpcAcceptEncoding>(name);
    default:
      return nullptr;
  }
}

// Fills |nv| in place, field by field: building a whole nghttp2_nv and copying it into the
// vector made GCC reload the fields as 16-byte words right after storing them as 8-byte ones
// (a store-forwarding stall per field, visible in a perf profile).
void fill_nv(nghttp2_nv& nv, std::string_view name, std::string_view value) {
  nv.namelen = name.size();
  nv.valuelen = value.size();
  const KnownField* f = find_known(name);
  if (f == nullptr) {
    nv.name = bytes(name);
    nv.value = bytes(value);
    nv.flags = NGHTTP2_NV_FLAG_NONE;
    return;
  }
  nv.name = bytes(f->name);
  uint8_t flags = NGHTTP2_NV_FLAG_NO_COPY_NAME;
  if (f->no_index) flags |= NGHTTP2_NV_FLAG_NO_INDEX;
  nv.value = bytes(value);
  if (!f->value.empty()) {
    const KnownField* v = f;
    if (f == &kScheme && value == kSchemeTls.value) v = &kSchemeTls;
    if (value == v->value) {
      nv.value = bytes(v->value);
      flags |= NGHTTP2_NV_FLAG_NO_COPY_VALUE;
    }
  }
  nv.flags = flags;
}

template <typename Fields>
std::span<const nghttp2_nv> to_nv_scratch(const Fields& headers) {
  std::vector<nghttp2_nv>& nva = nv_scratch;
  nva.resize(headers.size());
  nghttp2_nv* out = nva.data();
  for (const auto& h : headers) fill_nv(*out++, h.name, h.value);
  return nva;
}

}  // namespace

std::span<const nghttp2_nv> to_nv(const HeaderList& headers) { return to_nv_scratch(headers); }

std::span<const nghttp2_nv> to_nv(std::span<const HeaderView> headers) {
  return to_nv_scratch(headers);
}

}  // namespace skiff::h2
