// Snapshot: the read-only data-plane view a worker serves with (C11). Built once per config
// load by server/, shared by every worker, never mutated.
#pragma once

#include <string>
#include <vector>

#include "h2/header.h"
#include "route/route_table.h"
#include "upstream/cluster_pool.h"

namespace skiff::proxy {

struct ListenerView {
  std::string name;
  route::RouteTable routes;  // Route::cluster indexes Snapshot::clusters
};

struct Snapshot {
  std::vector<ListenerView> listeners;
  std::vector<upstream::ClusterSpec> clusters;
  h2::Limits limits;
};

}  // namespace skiff::proxy
