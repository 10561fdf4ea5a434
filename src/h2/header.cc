// Header helpers.
#include "h2/header.h"

namespace skiff::h2 {

std::string_view find_header(const HeaderList& headers, std::string_view name) {
  for (const Header& h : headers) {
    if (h.name == name) return h.value;
  }
  return {};
}

std::vector<nghttp2_nv> to_nv(const HeaderList& headers) {
  std::vector<nghttp2_nv> nva;
  nva.reserve(headers.size());
  for (const Header& h : headers) {
    // nghttp2 copies name and value at submit time (no NO_COPY flags), so |headers| may go.
    nva.push_back(nghttp2_nv{
        const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(h.name.data())),
        const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(h.value.data())), h.name.size(),
        h.value.size(), NGHTTP2_NV_FLAG_NONE});
  }
  return nva;
}

}  // namespace skiff::h2
