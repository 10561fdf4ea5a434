// Reading skiff's admin /metrics from frame-level tests (the GET itself: http_client.h): one
// sample's value, and a bounded poll until the scrape shows what a test waits for.
#pragma once

#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include "harness.h"
#include "http_client.h"
#include "raw_h2_client.h"

namespace skiff::it::h2 {

// The value of the first sample of |family| whose labels contain every one of |labels| (each
// written as in the exposition, e.g. `cluster="backend"`), if there is one.
std::optional<double> metric_value(const std::string& metrics, std::string_view family,
                                   std::initializer_list<std::string_view> labels = {});

// Scrapes skiff's /metrics (its "admin" listener) every 50 ms until |pred| holds for the text or
// |timeout| passes; |last| gets the last scrape.
bool metrics_until(const SkiffProcess& skiff, const std::function<bool(const std::string&)>& pred,
                   std::string& last, Millis timeout = Millis(10'000));

}  // namespace skiff::it::h2
