// TestServer: an in-process grpc++ upstream implementing skiff.testing.TestService, driven by
// the fault-injection controls in each Request, that records what it saw for the tests.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "testing.grpc.pb.h"

namespace skiff::it {

class CallScope;

using Millis = std::chrono::milliseconds;

// Large enough for the 16 MiB message test plus framing, on both ends of every hop.
inline constexpr int kMaxMessageBytes = 64 << 20;

// One call as the upstream saw it.
struct CallRecord {
  std::string method;                                // "Unary", "ServerStream", ..., "Ping"
  std::multimap<std::string, std::string> metadata;  // request metadata (-bin values decoded)
  std::string tag;                                   // Request.tag of the first request
  bool finished = false;                             // the handler has returned
  bool cancelled = false;     // the call was cancelled by the peer (deadline, RST_STREAM, ...)
  bool self_aborted = false;  // the server cancelled it itself (abort_after)
};

class TestServer {
 public:
  // Starts listening on 127.0.0.1:0 at once. |id| is returned in Response.server_id.
  explicit TestServer(int id = 0);
  ~TestServer();
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  int id() const { return id_; }
  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  // Shuts the server down: in-flight calls are cancelled after |grace|, the port is closed.
  // Simulates "upstream down". Idempotent.
  void stop(Millis grace = Millis(0));

  // Log "test upstream: call METHOD" to stderr when a call starts (for the child-process
  // upstream, whose observations a test can only read from its output).
  void log_calls(bool on) { log_calls_ = on; }

  // Every Unary call on this server waits |d| longer before answering (on top of
  // Request.delay_ms): one slow replica while the cluster's other servers stay fast.
  void set_unary_delay(Millis d) { unary_delay_ms_ = static_cast<int32_t>(d.count()); }

  // Observations. Counts include calls still in progress.
  int calls() const;
  int calls(const std::string& method) const;
  int cancellations() const;  // calls the peer cancelled (not self-aborted ones)
  std::vector<CallRecord> records() const;

  // Wait (up to |timeout|) until at least |n| calls have started / been cancelled by the peer /
  // finished. Return whether that happened.
  bool wait_for_calls(int n, Millis timeout) const;
  bool wait_for_cancellations(int n, Millis timeout) const;
  bool wait_for_finished(int n, Millis timeout) const;

 private:
  class Service;
  class Other;
  friend class CallScope;

  // Called by the handlers.
  size_t begin_call(const std::string& method, grpc::ServerContext* ctx);
  void set_tag(size_t call, const std::string& tag);
  void end_call(size_t call, bool cancelled, bool self_aborted);
  bool wait_until(const std::function<bool()>& done, Millis timeout) const;

  const int id_;
  int port_ = 0;
  std::unique_ptr<Service> service_;
  std::unique_ptr<Other> other_;
  std::unique_ptr<grpc::Server> server_;
  bool stopped_ = false;
  std::atomic<bool> log_calls_{false};
  std::atomic<int32_t> unary_delay_ms_{0};

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::vector<CallRecord> records_;
};

// Fills |ctx| with the "x-echo-*" request metadata as initial metadata and "x-trail-*" as
// trailing metadata (see Request.echo_metadata). Exposed for the harness self-test.
void echo_metadata(grpc::ServerContext* ctx);

}  // namespace skiff::it
