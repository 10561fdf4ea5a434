// HTTP/1.1 requests to skiff's admin listener (and other loopback HTTP servers) over libcurl,
// for every integration test binary.
#pragma once

#include <chrono>
#include <ostream>
#include <string>

namespace skiff::it {

struct HttpResponse {
  long status = 0;           // 0: no HTTP response (connection refused, timeout, ...)
  std::string body;          // or curl's error message when status is 0
  std::string content_type;  // the Content-Type header, if any
};

std::ostream& operator<<(std::ostream& os, const HttpResponse& r);

// |method| "GET", "POST" (an empty body) or any other verb; never through a proxy, whatever the
// environment says.
HttpResponse http_request(const std::string& method, const std::string& url,
                          std::chrono::milliseconds timeout = std::chrono::milliseconds(10'000));
inline HttpResponse http_get(const std::string& url) { return http_request("GET", url); }
inline HttpResponse http_post(const std::string& url) { return http_request("POST", url); }

}  // namespace skiff::it
