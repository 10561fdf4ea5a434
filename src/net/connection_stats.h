// ConnectionStats: one worker's counts for one listener or one upstream endpoint, written by
// the transports and HTTP/2 sessions of that worker and read by a /metrics scrape. Owned by the
// server for the life of the process, so a scrape never reads freed memory.
#pragma once

#include "base/counter.h"

namespace skiff::net {

struct alignas(64) ConnectionStats {
  base::UpDownCounter connections;  // up = opened (accepted or dialled); level = open now
  base::Counter connect_failures;   // upstream: closed before HTTP/2 was up
  base::Counter tls_handshakes;     // completed
  base::Counter tls_handshake_failures;
  base::UpDownCounter streams;    // up = streams opened; level = active now
  base::Counter protocol_errors;  // connections ended by an HTTP/2 error (either side's)
  base::Counter goaways_sent;
  base::Counter goaways_received;
  // downstream: streams reset, and connections closed, because the client took none of the
  // response bytes waiting for it for http2.stream_flush_timeout
  base::Counter flush_timeouts;
};

}  // namespace skiff::net
