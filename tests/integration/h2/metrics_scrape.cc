// Reading skiff's admin /metrics from frame-level tests.
#include "metrics_scrape.h"

#include <curl/curl.h>

#include <mutex>
#include <sstream>
#include <thread>

namespace skiff::it::h2 {

std::optional<std::string> http_get(const std::string& url) {
  static std::once_flag init;
  std::call_once(init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return std::nullopt;
  std::string body;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5'000L);
  curl_easy_setopt(
      curl, CURLOPT_WRITEFUNCTION, +[](char* data, size_t size, size_t n, void* out) {
        static_cast<std::string*>(out)->append(data, size * n);
        return size * n;
      });
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  long status = 0;
  if (curl_easy_perform(curl) == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(curl);
  if (status != 200) return std::nullopt;
  return body;
}

std::optional<double> metric_value(const std::string& metrics, std::string_view family,
                                   std::initializer_list<std::string_view> labels) {
  std::istringstream lines(metrics);
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with(family)) continue;
    const std::string_view rest = std::string_view(line).substr(family.size());
    if (!rest.starts_with('{') && !rest.starts_with(' ')) continue;  // a longer family name
    bool all = true;
    for (std::string_view label : labels) all = all && rest.find(label) != std::string_view::npos;
    if (!all) continue;
    const size_t space = line.rfind(' ');
    if (space == std::string::npos) return std::nullopt;
    return std::stod(line.substr(space + 1));
  }
  return std::nullopt;
}

bool metrics_until(const SkiffProcess& skiff, const std::function<bool(const std::string&)>& pred,
                   std::string& last, Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  const std::string url = "http://" + skiff.address("admin") + "/metrics";
  for (;;) {
    last = http_get(url).value_or("");
    if (pred(last)) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(Millis(50));
  }
}

}  // namespace skiff::it::h2
