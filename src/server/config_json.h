// The effective configuration as JSON, for the admin /config endpoint: every key with its
// value after defaults. Certificate and key files appear as paths; their contents never do.
#pragma once

#include <string>

#include "config/config.h"

namespace skiff::server {

std::string config_json(const config::Config& config);

}  // namespace skiff::server
