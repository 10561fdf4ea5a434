// Live certificate rotation on a running skiff, under steady traffic: files replaced by atomic
// rename and by a Kubernetes-style symlink swap; new handshakes present the new certificate,
// existing connections keep working, no call fails; a bad key is rejected and the old
// certificate keeps serving. Also: bad TLS files at startup are config errors (exit 2).
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <sstream>
#include <thread>

#include "harness.h"
#include "tls_fixture.h"

namespace skiff::it::tls {
namespace {

using skiff::testing::Request;
using skiff::testing::Response;
using skiff::testing::TestService;
using Clock = std::chrono::steady_clock;

// Calls Unary in a loop until stopped: mostly on one long-lived channel, and every tenth call on
// a fresh channel (a new connection, so a new handshake with whatever certificate is current).
class SteadyTraffic {
 public:
  SteadyTraffic(std::string address, std::string ca_pem, Pem client)
      : address_(std::move(address)), ca_pem_(std::move(ca_pem)), client_(std::move(client)) {
    thread_ = std::thread([this] { run(); });
  }
  ~SteadyTraffic() { stop(); }

  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int ok() const { return ok_.load(); }
  int failed() const { return failed_.load(); }
  std::string first_failure() const {
    std::lock_guard lock(mu_);
    return first_failure_;
  }
  bool wait_for_ok(int n, Millis timeout) const {
    const auto deadline = Clock::now() + timeout;
    while (ok_.load() < n) {
      if (Clock::now() >= deadline || failed_.load() > 0) return false;
      std::this_thread::sleep_for(Millis(5));  // polling an observable counter
    }
    return true;
  }

 private:
  void run() {
    auto persistent = TestService::NewStub(make_tls_channel(address_, ca_pem_, client_));
    for (int i = 0; !stop_; ++i) {
      std::unique_ptr<TestService::Stub> fresh;
      if (i % 10 == 9) fresh = TestService::NewStub(make_tls_channel(address_, ca_pem_, client_));
      grpc::ClientContext ctx;
      ctx.set_deadline(in(Millis(20'000)));
      Request req;
      req.set_payload("tick " + std::to_string(i));
      Response resp;
      grpc::Status status = (fresh ? *fresh : *persistent).Unary(&ctx, req, &resp);
      if (status.ok() && resp.payload() == req.payload()) {
        ok_++;
      } else {
        failed_++;
        std::lock_guard lock(mu_);
        if (first_failure_.empty())
          first_failure_ = "call " + std::to_string(i) + ": " + describe(status);
      }
    }
  }

  std::string address_, ca_pem_;
  Pem client_;
  std::atomic<bool> stop_{false};
  std::atomic<int> ok_{0}, failed_{0};
  mutable std::mutex mu_;
  std::string first_failure_;
  std::thread thread_;
};

std::string inbound_yaml(const std::string& cert, const std::string& key, const std::string& ca,
                         const std::string& backend) {
  std::ostringstream y;
  y << "workers: 2\n"
    << "listeners:\n"
    << "  - name: inbound\n"
    << "    address: 127.0.0.1:0\n"
    << "    tls:\n"
    << "      cert: " << cert << "\n"
    << "      key: " << key << "\n"
    << "      client_ca: " << ca << "\n"
    << "    routes:\n"
    << "      - match: {}\n"
    << "        cluster: backend\n"
    << "clusters:\n"
    << "  - name: backend\n"
    << "    endpoints: [ \"" << backend << "\" ]\n";
  return y.str();
}

// Probes new connections until the server presents |serial|; returns how long it took, or
// nullopt after |timeout|.
std::optional<Millis> wait_for_serial(int port, const ProbeOptions& options,
                                      const std::string& serial, Millis timeout) {
  const auto start = Clock::now();
  while (Clock::now() - start < timeout) {
    ProbeResult r = probe_tls(port, options);
    if (r.accepted() && r.peer_serial == serial) {
      return std::chrono::duration_cast<Millis>(Clock::now() - start);
    }
    std::this_thread::sleep_for(Millis(20));  // polling: each probe is a full handshake
  }
  return std::nullopt;
}

struct RotationSetup {
  TempDir dir;
  TestCa ca;
  std::string ca_file = dir.write("ca.crt", ca.cert_pem());
  Pem frontend = ca.svid(kFrontendId);
  Pem users_v1 = ca.svid(kUsersId, 0x1001);
  Pem users_v2 = ca.svid(kUsersId, 0x2002);
  std::pair<std::string, std::string> frontend_files = write_pem(dir, "frontend", frontend);

  ProbeOptions probe_options() const {
    ProbeOptions o;
    o.ca_file = ca_file;
    o.cert_file = frontend_files.first;
    o.key_file = frontend_files.second;
    return o;
  }
};

SkiffOptions inbound_listener() {
  SkiffOptions options;
  options.listeners = {"inbound"};
  return options;
}

TEST(Rotation, AtomicRenameUnderSteadyTraffic) {
  RotationSetup s;
  auto [cert, key] = write_pem(s.dir, "users", s.users_v1);
  TestServer upstream;
  SkiffProcess skiff(inbound_yaml(cert, key, s.ca_file, upstream.address()), inbound_listener());
  const int port = skiff.port("inbound");

  ProbeResult before = probe_tls(port, s.probe_options());
  ASSERT_TRUE(before.accepted()) << before.describe();
  ASSERT_EQ(before.peer_serial, "1001");
  // A connection made before the rotation must keep working after it.
  RawH2Connection old_connection(port, s.probe_options());
  ASSERT_TRUE(old_connection.ping(Millis(10'000))) << old_connection.error();

  SteadyTraffic traffic(skiff.address("inbound"), s.ca.cert_pem(), s.frontend);
  ASSERT_TRUE(traffic.wait_for_ok(20, Millis(20'000))) << traffic.first_failure();

  // cert-manager style: each file replaced by rename; key first, so a new key briefly meets the
  // old certificate (a failed rebuild, then the good one).
  replace_file(key, s.users_v2.key);
  replace_file(cert, s.users_v2.cert);
  auto took = wait_for_serial(port, s.probe_options(), "2002", Millis(10'000));
  ASSERT_TRUE(took) << "the new certificate was not presented within 10 s\n"
                    << skiff.process().err();
  std::cerr << "new certificate presented " << took->count() << " ms after the rename\n";
  EXPECT_LT(took->count(), 5000);  // designed for ~350 ms (poll 250 ms + settle 100 ms)

  const int ok_at_switch = traffic.ok();
  ASSERT_TRUE(traffic.wait_for_ok(ok_at_switch + 20, Millis(20'000))) << traffic.first_failure();
  traffic.stop();
  EXPECT_EQ(traffic.failed(), 0) << traffic.first_failure();
  EXPECT_TRUE(old_connection.ping(Millis(10'000))) << old_connection.error();
  EXPECT_EQ(old_connection.peer_serial(), "1001");
  EXPECT_TRUE(skiff.process().wait_for_stderr(
      [](const std::string& err) {
        return err.find("TLS reloaded for new connections") != std::string::npos;
      },
      Millis(1000)));
}

TEST(Rotation, KubernetesSymlinkSwap) {
  RotationSetup s;
  namespace fs = std::filesystem;
  const fs::path d = s.dir.path();
  // The layout a Kubernetes secret volume uses: files -> ..data/files, ..data -> ..<version>.
  fs::create_directory(d / "..v1");
  write_pem(s.dir, "..v1/tls", s.users_v1);
  fs::create_directory_symlink("..v1", d / "..data");
  fs::create_symlink("..data/tls.crt", d / "tls.crt");
  fs::create_symlink("..data/tls.key", d / "tls.key");
  TestServer upstream;
  SkiffProcess skiff(inbound_yaml((d / "tls.crt").string(), (d / "tls.key").string(), s.ca_file,
                                  upstream.address()),
                     inbound_listener());
  const int port = skiff.port("inbound");
  ASSERT_EQ(probe_tls(port, s.probe_options()).peer_serial, "1001");
  SteadyTraffic traffic(skiff.address("inbound"), s.ca.cert_pem(), s.frontend);
  ASSERT_TRUE(traffic.wait_for_ok(10, Millis(20'000))) << traffic.first_failure();

  // The swap: a new version directory, then ..data re-pointed by one atomic rename.
  fs::create_directory(d / "..v2");
  write_pem(s.dir, "..v2/tls", s.users_v2);
  fs::create_directory_symlink("..v2", d / "..data_tmp");
  fs::rename(d / "..data_tmp", d / "..data");
  fs::remove_all(d / "..v1");

  auto took = wait_for_serial(port, s.probe_options(), "2002", Millis(10'000));
  ASSERT_TRUE(took) << skiff.process().err();
  std::cerr << "new certificate presented " << took->count() << " ms after the swap\n";
  const int ok_at_switch = traffic.ok();
  ASSERT_TRUE(traffic.wait_for_ok(ok_at_switch + 10, Millis(20'000))) << traffic.first_failure();
  traffic.stop();
  EXPECT_EQ(traffic.failed(), 0) << traffic.first_failure();
}

TEST(Rotation, MismatchedKeyIsRejectedAndOldCertificateKeepsServing) {
  RotationSetup s;
  auto [cert, key] = write_pem(s.dir, "users", s.users_v1);
  TestServer upstream;
  SkiffProcess skiff(inbound_yaml(cert, key, s.ca_file, upstream.address()), inbound_listener());
  const int port = skiff.port("inbound");

  replace_file(key, s.ca.svid(kOtherId).key);  // a valid key, but not the certificate's
  ASSERT_TRUE(skiff.process().wait_for_stderr(
      [](const std::string& err) {
        return err.find("TLS reload failed, the current certificate keeps serving") !=
                   std::string::npos &&
               err.find("does not match the certificate") != std::string::npos;
      },
      Millis(10'000)))
      << skiff.process().err();
  ProbeResult r = probe_tls(port, s.probe_options());
  EXPECT_TRUE(r.accepted()) << r.describe();
  EXPECT_EQ(r.peer_serial, "1001");

  // An unreadable file is the same kind of error.
  replace_file(cert, "not a certificate\n");
  ASSERT_TRUE(skiff.process().wait_for_stderr(
      [](const std::string& err) { return err.find("no PEM certificate in") != std::string::npos; },
      Millis(10'000)))
      << skiff.process().err();
  EXPECT_EQ(probe_tls(port, s.probe_options()).peer_serial, "1001");

  // Fixing both files brings the new certificate in.
  replace_file(key, s.users_v2.key);
  replace_file(cert, s.users_v2.cert);
  EXPECT_TRUE(wait_for_serial(port, s.probe_options(), "2002", Millis(10'000)))
      << skiff.process().err();
}

// Client-side rotation: new upstream connections present the new client certificate.
TEST(Rotation, ClusterClientCertificate) {
  RotationSetup s;
  // The upstream ends every connection after 300 ms, so skiff keeps dialling new ones.
  TlsGrpcServer upstream(s.ca.cert_pem(), s.ca.svid(kUsersId), Millis(300));
  Pem client_v2 = s.ca.svid(kAdminId);
  auto [cert, key] = write_pem(s.dir, "client", s.frontend);
  SkiffProcess skiff(
      "workers: 1\n"
      "listeners:\n"
      "  - name: outbound\n"
      "    address: 127.0.0.1:0\n"
      "    routes:\n"
      "      - match: {}\n"
      "        cluster: users\n"
      "clusters:\n"
      "  - name: users\n"
      "    endpoints: [ \"" +
      upstream.address() +
      "\" ]\n"
      "    tls:\n"
      "      ca: " +
      s.ca_file +
      "\n"
      "      cert: " +
      cert +
      "\n"
      "      key: " +
      key +
      "\n"
      "      identities: [ \"" +
      kUsersId + "\" ]\n");
  auto stub = TestService::NewStub(make_channel(skiff.address()));
  auto call = [&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(in(Millis(20'000)));
    Request req;
    Response resp;
    return stub->Unary(&ctx, req, &resp);
  };
  ASSERT_TRUE(is_ok(call()));
  ASSERT_EQ(upstream.peer_ids().front(), kFrontendId);
  replace_file(key, client_v2.key);
  replace_file(cert, client_v2.cert);
  ASSERT_TRUE(skiff.process().wait_for_stderr(
      [](const std::string& err) {
        return err.find("cluster \"users\": TLS reloaded for new connections") != std::string::npos;
      },
      Millis(10'000)))
      << skiff.process().err();
  // Calls keep succeeding across the upstream's connection turnover; once skiff has dialled
  // again, the upstream sees the new identity.
  const auto deadline = Clock::now() + Millis(15'000);
  while (Clock::now() < deadline && upstream.peer_ids().back() != kAdminId) {
    ASSERT_TRUE(is_ok(call()));
    std::this_thread::sleep_for(Millis(20));  // pacing: each call is the observation
  }
  EXPECT_EQ(upstream.peer_ids().back(), kAdminId);
}

TEST(TlsStartup, BadFilesAreConfigErrors) {
  RotationSetup s;
  auto [cert, key] = write_pem(s.dir, "users", s.users_v1);
  const std::string other_key = s.dir.write("other.key", s.ca.svid(kOtherId).key);
  auto check = [&](const std::string& yaml) {
    const std::string path = s.dir.write("skiff.yaml", yaml);
    return run_skiff({"--config", path});
  };
  RunResult mismatch = check(inbound_yaml(cert, other_key, s.ca_file, "127.0.0.1:1"));
  EXPECT_EQ(mismatch.status.code(), 2) << mismatch.status.to_string();
  EXPECT_NE(mismatch.err.find(s.dir.path() +
                              "/skiff.yaml:7:12: listeners[0].tls.key: the private "
                              "key in '" +
                              other_key + "' does not match the certificate in '" + cert + "'"),
            std::string::npos)
      << mismatch.err;

  RunResult missing = check(inbound_yaml(cert, key, s.dir.path() + "/nope.crt", "127.0.0.1:1"));
  EXPECT_EQ(missing.status.code(), 2);
  EXPECT_NE(missing.err.find("skiff.yaml:8:18: listeners[0].tls.client_ca: cannot read '" +
                             s.dir.path() + "/nope.crt': No such file or directory"),
            std::string::npos)
      << missing.err;

  const std::string garbage = s.dir.write("garbage.crt", "hello\n");
  RunResult bad_cert = check(inbound_yaml(garbage, key, s.ca_file, "127.0.0.1:1"));
  EXPECT_EQ(bad_cert.status.code(), 2);
  EXPECT_NE(bad_cert.err.find("skiff.yaml:6:13: listeners[0].tls.cert: no PEM certificate in '" +
                              garbage + "'"),
            std::string::npos)
      << bad_cert.err;

  // --check-config reads the files too.
  const std::string path =
      s.dir.write("check.yaml", inbound_yaml(cert, other_key, s.ca_file, "127.0.0.1:1"));
  RunResult checked = run_skiff({"--config", path, "--check-config"});
  EXPECT_EQ(checked.status.code(), 2);
  EXPECT_NE(checked.err.find("listeners[0].tls.key: the private key in"), std::string::npos)
      << checked.err;
}

}  // namespace
}  // namespace skiff::it::tls
