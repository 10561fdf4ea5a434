// PeerIdentity: URI SAN extraction and the X509-SVID leaf rules.
#include "tls/peer_identity.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <vector>

#include "base/spiffe.h"

namespace skiff::tls {
namespace {

struct GeneralNamesFree {
  void operator()(GENERAL_NAMES* names) const { GENERAL_NAMES_free(names); }
};

std::vector<std::string> uri_sans(X509* cert) {
  std::vector<std::string> uris;
  std::unique_ptr<GENERAL_NAMES, GeneralNamesFree> names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (!names) return uris;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    if (name->type != GEN_URI) continue;
    const ASN1_IA5STRING* uri = name->d.uniformResourceIdentifier;
    uris.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                      static_cast<size_t>(ASN1_STRING_length(uri)));
  }
  return uris;
}

}  // namespace

base::Result<std::string> svid_identity(X509* leaf) {
  // X509_get_extension_flags also computes the cached extension data on first use.
  const uint32_t flags = X509_get_extension_flags(leaf);
  if (flags & EXFLAG_INVALID) return base::fail("the certificate has invalid extensions");
  if (flags & EXFLAG_CA)
    return base::fail("the leaf certificate is a CA (basicConstraints CA:TRUE)");
  if ((flags & EXFLAG_KUSAGE) && (X509_get_key_usage(leaf) & (KU_KEY_CERT_SIGN | KU_CRL_SIGN))) {
    return base::fail("the leaf certificate's keyUsage allows keyCertSign or cRLSign");
  }
  std::vector<std::string> uris = uri_sans(leaf);
  if (uris.empty()) return base::fail("the certificate has no URI SAN (no SPIFFE identity)");
  if (uris.size() > 1) {
    return base::fail("the certificate has " + std::to_string(uris.size()) +
                      " URI SANs; an X509-SVID has exactly one");
  }
  if (auto checked = base::check_spiffe_id(uris.front()); !checked) {
    return base::fail("URI SAN " + checked.error().message);
  }
  return std::move(uris.front());
}

std::string describe_certificate(X509* cert) {
  std::string out = "serial ";
  if (BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr)) {
    if (char* hex = BN_bn2hex(bn)) {
      out += hex;
      OPENSSL_free(hex);
    }
    BN_free(bn);
  }
  std::vector<std::string> uris = uri_sans(cert);
  for (const std::string& uri : uris) out += ", " + uri;
  if (uris.empty()) {
    char subject[256];
    X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof subject);
    out += std::string(", ") + subject;
  }
  if (BIO* bio = BIO_new(BIO_s_mem())) {
    if (ASN1_TIME_print(bio, X509_get0_notAfter(cert)) == 1) {
      char* data = nullptr;
      long n = BIO_get_mem_data(bio, &data);
      out += ", not after " + std::string(data, static_cast<size_t>(n));
    }
    BIO_free(bio);
  }
  return out;
}

}  // namespace skiff::tls
