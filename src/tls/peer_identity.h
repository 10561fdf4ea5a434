// PeerIdentity: the SPIFFE identity in an X.509 certificate under X509-SVID rules
// (github.com/spiffe/spiffe, standards/X509-SVID.md). OpenSSL verifies the chain but never
// looks at URI SANs; these checks are skiff's.
#pragma once

#include <openssl/types.h>

#include <string>

#include "base/error.h"

namespace skiff::tls {

// The identity of leaf certificate |leaf|: its single URI SAN, a workload SPIFFE ID. Fails when
// the leaf is a CA (basicConstraints CA:TRUE, or keyUsage keyCertSign/cRLSign), has no URI SAN
// or more than one, or the URI is not a valid SPIFFE ID.
base::Result<std::string> svid_identity(X509* leaf);

// "serial 1A2B, spiffe://td/x, not after 2026-01-01 00:00:00 UTC" for logs.
std::string describe_certificate(X509* cert);

}  // namespace skiff::tls
