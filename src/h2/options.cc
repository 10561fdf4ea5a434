// nghttp2 session recipe for Debian's 1.52 (with its rapid-reset and CONTINUATION backports).
#include "h2/options.h"

#include <cstdint>
#include <cstring>

#include "base/block_cache.h"
#include "base/check.h"

namespace skiff::h2 {
namespace {

void* mem_malloc(size_t size, void*) { return base::cache_malloc(size); }
void mem_free(void* p, void*) { base::cache_free_unsized(p); }
void* mem_calloc(size_t n, size_t size, void*) {
  SKIFF_CHECK(size == 0 || n <= SIZE_MAX / size);  // nghttp2 asks for a few small structs
  void* p = base::cache_malloc(n * size);
  std::memset(p, 0, n * size);
  return p;
}
void* mem_realloc(void* p, size_t size, void*) { return base::cache_realloc(p, size); }

nghttp2_mem g_mem = {nullptr, mem_malloc, mem_free, mem_calloc, mem_realloc};

}  // namespace

nghttp2_mem* session_mem() { return &g_mem; }

nghttp2_option* make_options(bool server) {
  nghttp2_option* opt = nullptr;
  SKIFF_CHECK(nghttp2_option_new(&opt) == 0);
  // Windows are returned only after the next hop took the bytes (Session::consume).
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_max_settings(opt, 32);
  nghttp2_option_set_max_outbound_ack(opt, 1000);
  nghttp2_option_set_max_continuations(opt, 8);
  nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
  // A server session would otherwise keep up to MAX_CONCURRENT_STREAMS closed streams for the
  // RFC 7540 priority tree (which clients that don't send SETTINGS_NO_RFC7540_PRIORITIES fall
  // back to): memory and list upkeep on every stream close, for prioritising responses that
  // skiff forwards as they arrive anyway. As in Envoy's codec.
  nghttp2_option_set_no_closed_streams(opt, 1);
  if (server) {
    // CVE-2023-44487 (rapid reset): at most 1000 resets in a burst, refilled at 33/s.
    nghttp2_option_set_stream_reset_rate_limit(opt, 1000, 33);
  } else {
    nghttp2_option_set_max_reserved_remote_streams(opt, 0);
    // Until the upstream's SETTINGS arrive.
    nghttp2_option_set_peer_max_concurrent_streams(opt, 100);
  }
  return opt;
}

std::vector<nghttp2_settings_entry> make_settings(const Limits& limits, bool server) {
  std::vector<nghttp2_settings_entry> s = {
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, limits.initial_stream_window},
      {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, limits.max_frame_size},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, limits.max_header_list_bytes},
      {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, 4096},
  };
  if (server) {
    s.push_back({NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, limits.max_concurrent_streams});
    s.push_back({NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1});
  } else {
    s.push_back({NGHTTP2_SETTINGS_ENABLE_PUSH, 0});
  }
  return s;
}

}  // namespace skiff::h2
