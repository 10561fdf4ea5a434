// The frame-level tests' topology: raw client -> skiff (1 worker, outbound listener) -> one
// in-process TestServer; after each test, skiff must still be running and serving grpc++.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>

#include <memory>
#include <string>

#include "harness.h"
#include "raw_h2_client.h"

namespace skiff::it::h2 {

inline constexpr std::string_view kUnaryPath = "/skiff.testing.TestService/Unary";
inline constexpr std::string_view kBidiPath = "/skiff.testing.TestService/Bidi";

// One worker, one route (TestService -> backend) and the http2 limits the tests probe.
// |cluster_keys| are more lines of the backend cluster (indented 4 spaces), |route_keys| more
// lines of the route (indented 8), |http2_keys| more entries of the http2 map (", key: value"),
// and |top_keys| more top-level lines (e.g. an admin listener).
inline std::string h2_test_config(const std::string& upstream, const std::string& cluster_keys = "",
                                  const std::string& route_keys = "",
                                  const std::string& http2_keys = "",
                                  const std::string& top_keys = "") {
  return "workers: 1\n"
         "drain_timeout: 1s\n" +
         top_keys +
         "listeners:\n"
         "  - name: outbound\n"
         "    address: 127.0.0.1:0\n"
         "    routes:\n"
         "      - match: { service: skiff.testing.TestService }\n"
         "        cluster: backend\n" +
         route_keys +
         "clusters:\n"
         "  - name: backend\n"
         "    endpoints: [ \"" +
         upstream + "\" ]\n" + cluster_keys +
         "http2: { max_concurrent_streams: 100, max_header_list_bytes: 61440, "
         "max_header_count: 100" +
         http2_keys + " }\n";
}

// The DATA payload of a unary TestService call carrying |payload|.
inline std::string unary_request_body(const std::string& payload) {
  skiff::testing::Request req;
  req.set_payload(payload);
  return grpc_message(req.SerializeAsString());
}

class H2Test : public ::testing::Test {
 protected:
  void SetUp() override {
    skiff_ = std::make_unique<SkiffProcess>(h2_test_config(upstream_.address()));
  }

  void TearDown() override {
    if (skiff_ != nullptr) {
      EXPECT_TRUE(skiff_serves());
    }
  }

  int port() const { return skiff_->port(); }

  // skiff is still running and a fresh grpc++ connection gets an OK unary call through it.
  ::testing::AssertionResult skiff_serves() {
    if (auto status = skiff_->process().wait_exit(Millis(0))) {
      return ::testing::AssertionFailure() << "skiff exited: " << status->to_string();
    }
    if (::kill(skiff_->pid(), 0) != 0) return ::testing::AssertionFailure() << "skiff is gone";
    auto stub = skiff::testing::TestService::NewStub(make_channel(skiff_->address()));
    skiff::testing::Request req;
    req.set_payload("still-alive");
    skiff::testing::Response resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(in(kWaitTimeout));
    grpc::Status status = stub->Unary(&ctx, req, &resp);
    if (!status.ok()) {
      return ::testing::AssertionFailure()
             << "a fresh grpc++ call through skiff failed: " << it::describe(status);
    }
    if (resp.payload() != "still-alive") {
      return ::testing::AssertionFailure() << "wrong echo: " << resp.payload();
    }
    return ::testing::AssertionSuccess();
  }

  // A valid unary call on |client|'s connection; the proof that it is still usable.
  static ::testing::AssertionResult unary_ok(H2Client& client, const std::string& payload) {
    StreamResult r = client.call(grpc_request_headers(kUnaryPath), unary_request_body(payload));
    if (!r.closed) {
      return ::testing::AssertionFailure()
             << "unary call did not finish: " << client.error() << "; " << r.describe();
    }
    if (r.grpc_status() != 0 || r.body.size() < 5) {
      return ::testing::AssertionFailure() << "unary call failed: " << r.describe();
    }
    skiff::testing::Response resp;
    if (!resp.ParseFromString(r.body.substr(5)) || resp.payload() != payload) {
      return ::testing::AssertionFailure() << "bad response message: " << r.describe();
    }
    return ::testing::AssertionSuccess();
  }

  TestServer upstream_;
  std::unique_ptr<SkiffProcess> skiff_;  // declared last: stopped before the upstream
};

}  // namespace skiff::it::h2
