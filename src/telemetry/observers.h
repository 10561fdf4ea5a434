// CallObservers: what the server watches calls with beyond counters — trace propagation, span
// export and the access log. Owned by the server, shared read-only by every worker; each
// pointer is null when that feature is off, so an unobserved call pays one branch.
#pragma once

#include "telemetry/access_log.h"
#include "telemetry/span_exporter.h"

namespace skiff::telemetry {

struct CallObservers {
  bool trace = false;      // continue or start trace context; rewrite the trace headers
  double sample_rate = 0;  // new traces sampled (a caller's decision wins)
  SpanExporter* spans = nullptr;
  AccessLog* access_log = nullptr;
};

}  // namespace skiff::telemetry
