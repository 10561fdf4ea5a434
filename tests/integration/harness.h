// The integration harness: a builder for "client -> skiff -> upstream(s)" on loopback, after
// linkerd's transparency tests:
//
//   TestMesh mesh;
//   auto client = mesh.server().skiff(cfg).client();
//
// SkiffProcess runs the real skiff binary (SKIFF_BINARY) on a generated config and learns its
// ports from the `listener "NAME" listening on HOST:PORT` lines on stderr.
#pragma once

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "subprocess.h"
#include "test_server.h"
#include "testing.grpc.pb.h"

namespace skiff::it {

// The skiff binary under test (a compile definition set by tests/integration/CMakeLists.txt).
const char* skiff_binary();
// The child-process upstream used where a test kills its upstream (skiff_test_upstream).
const char* upstream_binary();

// A scratch directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // Writes |content| to path()/|name| and returns the file's path.
  std::string write(const std::string& name, const std::string& content) const;

 private:
  std::string path_;
};

// A loopback port that is bound but not listening, held for the object's lifetime: connecting
// to it is refused, and no other process can take it meanwhile ("upstream down").
class ClosedPort {
 public:
  ClosedPort();
  ~ClosedPort();
  ClosedPort(const ClosedPort&) = delete;
  ClosedPort& operator=(const ClosedPort&) = delete;

  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// The config a test runs skiff with, rendered to the YAML of docs/config.md.
struct SkiffConfig {
  struct Route {
    std::string service = {};  // empty = any service
    std::string method = {};   // empty = any method
    std::string cluster = "backend";
    std::string timeout = {};  // e.g. "300ms"; empty = none
  };
  struct Cluster {
    std::string name;
    std::vector<std::string> endpoints;  // "127.0.0.1:PORT"
  };

  int workers = 2;
  std::string drain_timeout = "5s";
  std::string listener = "outbound";
  std::vector<Route> routes;      // empty = one catch-all route to "backend"
  std::vector<Cluster> clusters;  // TestMesh adds "backend" = its servers unless present

  SkiffConfig& route(Route r);
  SkiffConfig& cluster(std::string name, std::vector<std::string> endpoints);
  bool has_cluster(const std::string& name) const;
  std::string yaml() const;
};

struct SkiffOptions {
  std::string binary = skiff_binary();
  std::vector<std::string> listeners = {"outbound"};  // readiness lines to wait for
  Millis ready_timeout = Millis(10'000);
  std::string log_level = "info";
};

// "name" -> "host:port" for every `listener "name" listening on host:port` line in |text|, and
// "admin" -> the admin server's address (`admin listening on host:port`).
std::map<std::string, std::string> parse_listening_lines(const std::string& text);

class SkiffProcess {
 public:
  // Writes |yaml| to a temp file, starts skiff on it and waits until every listener in
  // |options.listeners| has logged its readiness line. On failure (timeout, early exit) it
  // records a test failure (skiff's output is printed) and throws std::runtime_error.
  explicit SkiffProcess(const std::string& yaml, SkiffOptions options = {});
  ~SkiffProcess();

  std::string address(const std::string& listener = "outbound") const;  // "127.0.0.1:PORT"
  int port(const std::string& listener = "outbound") const;
  pid_t pid() const { return process_->pid(); }
  long rss_kb() const { return process_->rss_kb(); }
  // SIGTERM, then wait up to |timeout| for the exit; SIGKILL fallback (a test failure).
  ExitStatus terminate(Millis timeout = Millis(15'000)) { return process_->terminate(timeout); }
  Subprocess& process() { return *process_; }
  const std::string& config_path() const { return config_path_; }

 private:
  TempDir dir_;
  std::string config_path_;
  std::unique_ptr<Subprocess> process_;
  std::map<std::string, std::string> listeners_;
};

// Runs skiff to completion with |args| (e.g. {"--config", path, "--check-config"}); the child
// is killed (a test failure) if it has not exited after |timeout|.
struct RunResult {
  ExitStatus status;
  std::string err;
  std::string out;
};
RunResult run_skiff(const std::vector<std::string>& args, Millis timeout = Millis(10'000));

// A channel with its own connection (local subchannel pool), 64 MiB message limits and no
// client-side retries, so every status the test sees is the one skiff produced.
std::shared_ptr<grpc::Channel> make_channel(const std::string& address);
// Connects |channel| now, through grpc's reconnect backoff, and says whether it is READY within
// |timeout|. For tests about calls, not connection set-up: grpc 1.51's client can fail a
// connection attempt that succeeded (it reads connect()'s errno after other calls have
// overwritten it, e.g. "connect: No such file or directory"), and that fails every fail-fast
// call waiting on the channel.
bool connect_now(grpc::Channel& channel, Millis timeout = Millis(10'000));

class TestMesh {
 public:
  TestMesh() = default;
  ~TestMesh();
  TestMesh(const TestMesh&) = delete;
  TestMesh& operator=(const TestMesh&) = delete;

  // Adds |n| upstream TestServers (ids 0, 1, ...), started at once.
  TestMesh& server() { return servers(1); }
  TestMesh& servers(int n);
  // Starts skiff with |config|; cluster "backend" is every server added so far unless |config|
  // defines it.
  TestMesh& skiff(SkiffConfig config = {}, SkiffOptions options = {});

  // A new connection to skiff's listener ("outbound" by default).
  std::shared_ptr<grpc::Channel> channel(const std::string& listener = "outbound");
  std::unique_ptr<skiff::testing::TestService::Stub> client(
      const std::string& listener = "outbound");
  std::unique_ptr<skiff::testing::OtherService::Stub> other_client(
      const std::string& listener = "outbound");

  TestServer& upstream(size_t i = 0) { return *servers_.at(i); }
  SkiffProcess& proxy() { return *skiff_; }

 private:
  std::vector<std::unique_ptr<TestServer>> servers_;
  std::unique_ptr<SkiffProcess> skiff_;  // declared last: stopped before the servers
};

// "OK" or "UNAVAILABLE (14): message", for assertion messages.
std::string describe(const grpc::Status& status);
// EXPECT_TRUE(is_ok(status)) / EXPECT_TRUE(has_code(status, code)) print the whole status.
::testing::AssertionResult is_ok(const grpc::Status& status);
::testing::AssertionResult has_code(const grpc::Status& status, grpc::StatusCode code);
// All values of |key| in received metadata (-bin values are already decoded by grpc++).
std::vector<std::string> metadata_values(
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata, const std::string& key);

// Deterministic, non-repeating-ish bytes (every byte value occurs) for payload checks.
std::string pattern_bytes(size_t n, uint32_t seed = 1);

// YAML for one worker with one catch-all route (plus |route_keys|, indented route lines) on
// listener "outbound" to cluster "backend" = |endpoints| (plus |cluster_keys|, indented cluster
// lines).
std::string catch_all_config(const std::vector<const TestServer*>& endpoints,
                             const std::string& route_keys = "",
                             const std::string& cluster_keys = "");

// A deadline |d| from now, for ClientContext::set_deadline.
std::chrono::system_clock::time_point in(Millis d);

// One TestService.Unary call due |deadline| from now. The response goes to |resp| when given;
// |ctx| (when given) is used instead of a fresh context, e.g. to read trailing metadata after.
grpc::Status unary_call(skiff::testing::TestService::Stub& stub, const skiff::testing::Request& req,
                        Millis deadline, skiff::testing::Response* resp = nullptr,
                        grpc::ClientContext* ctx = nullptr);

}  // namespace skiff::it
