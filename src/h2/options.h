// nghttp2 options and SETTINGS shared by server and client sessions (reliability.md §1.3).
#pragma once

#include <nghttp2/nghttp2.h>

#include <vector>

#include "h2/header.h"

namespace skiff::h2 {

// Caller owns the result (nghttp2_option_del).
nghttp2_option* make_options(bool server);
// nghttp2's allocator for every session: the worker's block cache (base/block_cache.h), so
// the frames, stream structs and header buffers of each call are recycled, not malloc'd.
// Static: outlives every session and every rcbuf a Header still holds.
nghttp2_mem* session_mem();
std::vector<nghttp2_settings_entry> make_settings(const Limits& limits, bool server);

}  // namespace skiff::h2
