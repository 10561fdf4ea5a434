// nghttp2 options and SETTINGS shared by server and client sessions (reliability.md §1.3).
#pragma once

#include <nghttp2/nghttp2.h>

#include <vector>

#include "h2/header.h"

namespace skiff::h2 {

// Caller owns the result (nghttp2_option_del).
nghttp2_option* make_options(bool server);
std::vector<nghttp2_settings_entry> make_settings(const Limits& limits, bool server);

}  // namespace skiff::h2
