// Reading skiff's admin /metrics from frame-level tests.
#include "metrics_scrape.h"

#include <sstream>
#include <thread>

namespace skiff::it::h2 {

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
    const HttpResponse r = http_get(url);
    last = r.status == 200 ? r.body : "";
    if (pred(last)) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(Millis(50));
  }
}

}  // namespace skiff::it::h2
