// The integration harness: TestMesh, SkiffProcess, configs and clients (see harness.h).
#include "harness.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>

#include "base/status_code_names.h"

#ifndef SKIFF_BINARY
#error "SKIFF_BINARY must be defined (path of the skiff binary under test)"
#endif
#ifndef SKIFF_TEST_UPSTREAM_BINARY
#error "SKIFF_TEST_UPSTREAM_BINARY must be defined (path of skiff_test_upstream)"
#endif

namespace skiff::it {

const char* skiff_binary() { return SKIFF_BINARY; }
const char* upstream_binary() { return SKIFF_TEST_UPSTREAM_BINARY; }

TempDir::TempDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/skiff-it-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) {
    throw std::runtime_error("mkdtemp: " + std::string(::strerror(errno)));
  }
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::write(const std::string& name, const std::string& content) const {
  std::string file = path_ + "/" + name;
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out << content;
  out.close();
  if (!out) throw std::runtime_error("cannot write " + file);
  return file;
}

ClosedPort::ClosedPort() {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    throw std::runtime_error("ClosedPort: " + std::string(::strerror(errno)));
  }
  port_ = ntohs(addr.sin_port);
}

ClosedPort::~ClosedPort() {
  if (fd_ >= 0) ::close(fd_);
}

SkiffConfig& SkiffConfig::route(Route r) {
  routes.push_back(std::move(r));
  return *this;
}

SkiffConfig& SkiffConfig::cluster(std::string name, std::vector<std::string> endpoints) {
  clusters.push_back({std::move(name), std::move(endpoints)});
  return *this;
}

bool SkiffConfig::has_cluster(const std::string& name) const {
  for (const auto& c : clusters) {
    if (c.name == name) return true;
  }
  return false;
}

std::string SkiffConfig::yaml() const {
  std::ostringstream y;
  y << "workers: " << workers << "\n";
  y << "drain_timeout: " << drain_timeout << "\n";
  y << "listeners:\n";
  y << "  - name: " << listener << "\n";
  y << "    address: 127.0.0.1:0\n";
  y << "    routes:\n";
  std::vector<Route> rs = routes;
  if (rs.empty()) rs.push_back(Route{});
  for (const auto& r : rs) {
    y << "      - match: {";
    if (!r.service.empty()) y << " service: \"" << r.service << "\"";
    if (!r.method.empty()) y << ", method: \"" << r.method << "\"";
    y << (r.service.empty() ? "}" : " }") << "\n";
    y << "        cluster: " << r.cluster << "\n";
    if (!r.timeout.empty()) y << "        timeout: " << r.timeout << "\n";
  }
  y << "clusters:\n";
  for (const auto& c : clusters) {
    y << "  - name: " << c.name << "\n";
    y << "    endpoints: [";
    for (size_t i = 0; i < c.endpoints.size(); ++i) {
      y << (i ? ", " : " ") << "\"" << c.endpoints[i] << "\"";
    }
    y << " ]\n";
  }
  return y.str();
}

std::map<std::string, std::string> parse_listening_lines(const std::string& text) {
  // The admin server's line ("admin listening on ...") is keyed "admin".
  static const std::regex kLine(R"re((?:listener "([^"]+)"|(admin)) listening on (\S+:\d+))re");
  std::map<std::string, std::string> found;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), kLine);
       it != std::sregex_iterator(); ++it) {
    found[(*it)[1].matched ? (*it)[1].str() : (*it)[2].str()] = (*it)[3].str();
  }
  return found;
}

SkiffProcess::SkiffProcess(const std::string& yaml, SkiffOptions options) {
  config_path_ = dir_.write("skiff.yaml", yaml);
  process_ = std::make_unique<Subprocess>(
      "skiff", std::vector<std::string>{options.binary, "--config", config_path_, "--log-level",
                                        options.log_level});
  process_->set_diagnostics("---- " + config_path_ + " ----\n" + yaml);
  // The contract puts the readiness lines on stderr (Lifecycle.ReadinessLinesOnStderr checks
  // that); stdout is accepted here too so one misplaced log sink does not hide every other
  // result.
  auto all_listening = [&](const std::string& err, const std::string& out) {
    auto found = parse_listening_lines(err);
    found.merge(parse_listening_lines(out));
    for (const auto& name : options.listeners) {
      if (!found.contains(name)) return false;
    }
    return true;
  };
  if (!process_->wait_for_output(all_listening, options.ready_timeout)) {
    auto status = process_->wait_exit(Millis(0));
    ADD_FAILURE() << "skiff did not report every listener as listening within "
                  << options.ready_timeout.count() << " ms ("
                  << (status ? "it exited: " + status->to_string() : std::string("still running"))
                  << "); its output follows the test";
    throw std::runtime_error("skiff did not become ready");
  }
  listeners_ = parse_listening_lines(process_->err());
  listeners_.merge(parse_listening_lines(process_->out()));
}

SkiffProcess::~SkiffProcess() = default;

std::string SkiffProcess::address(const std::string& listener) const {
  auto it = listeners_.find(listener);
  if (it == listeners_.end()) throw std::runtime_error("no listener named " + listener);
  return it->second;
}

int SkiffProcess::port(const std::string& listener) const {
  std::string a = address(listener);
  return std::stoi(a.substr(a.rfind(':') + 1));
}

RunResult run_skiff(const std::vector<std::string>& args, Millis timeout) {
  std::vector<std::string> argv{skiff_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  Subprocess p("skiff", argv);
  auto status = p.wait_exit(timeout);
  if (!status) {
    ADD_FAILURE() << "skiff " << args.front() << " ... still running after " << timeout.count()
                  << " ms";
    p.kill();
    status = p.exit_status();
  }
  // The reader thread may still be draining the pipes: wait for EOF on stderr.
  p.wait_for_stderr([](const std::string&) { return false; }, Millis(2000));
  return RunResult{*status, p.err(), p.out()};
}

std::shared_ptr<grpc::Channel> make_channel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

bool connect_now(grpc::Channel& channel, Millis timeout) {
  return channel.WaitForConnected(in(timeout));
}

TestMesh::~TestMesh() = default;

TestMesh& TestMesh::servers(int n) {
  for (int i = 0; i < n; ++i) {
    servers_.push_back(std::make_unique<TestServer>(static_cast<int>(servers_.size())));
  }
  return *this;
}

TestMesh& TestMesh::skiff(SkiffConfig config, SkiffOptions options) {
  if (!config.has_cluster("backend")) {
    std::vector<std::string> endpoints;
    for (const auto& s : servers_) endpoints.push_back(s->address());
    config.cluster("backend", std::move(endpoints));
  }
  if (options.listeners == std::vector<std::string>{"outbound"}) {
    options.listeners = {config.listener};
  }
  skiff_ = std::make_unique<SkiffProcess>(config.yaml(), std::move(options));
  return *this;
}

std::shared_ptr<grpc::Channel> TestMesh::channel(const std::string& listener) {
  if (!skiff_) throw std::runtime_error("TestMesh::channel before TestMesh::skiff");
  return make_channel(skiff_->address(listener));
}

std::unique_ptr<skiff::testing::TestService::Stub> TestMesh::client(const std::string& listener) {
  return skiff::testing::TestService::NewStub(channel(listener));
}

std::unique_ptr<skiff::testing::OtherService::Stub> TestMesh::other_client(
    const std::string& listener) {
  return skiff::testing::OtherService::NewStub(channel(listener));
}

std::string describe(const grpc::Status& status) {
  const int code = static_cast<int>(status.error_code());
  const auto& names = base::kStatusCodeNames;
  std::string name(code >= 0 && code < static_cast<int>(names.size()) ? names[code] : "?");
  if (status.ok() && status.error_message().empty()) return name;
  return name + " (" + std::to_string(code) + "): \"" + status.error_message() + "\"";
}

::testing::AssertionResult is_ok(const grpc::Status& status) {
  if (status.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "expected OK, got " << describe(status);
}

::testing::AssertionResult has_code(const grpc::Status& status, grpc::StatusCode code) {
  if (status.error_code() == code) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "expected " << describe(grpc::Status(code, "")) << ", got " << describe(status);
}

std::vector<std::string> metadata_values(
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata, const std::string& key) {
  std::vector<std::string> values;
  auto [begin, end] = metadata.equal_range(grpc::string_ref(key));
  for (auto it = begin; it != end; ++it) values.emplace_back(it->second.data(), it->second.size());
  return values;
}

std::string catch_all_config(const std::vector<const TestServer*>& endpoints,
                             const std::string& route_keys, const std::string& cluster_keys) {
  std::string list;
  for (const TestServer* s : endpoints) {
    list += (list.empty() ? "\"" : ", \"") + s->address() + "\"";
  }
  return "workers: 1\n"
         "listeners:\n"
         "  - name: outbound\n"
         "    address: 127.0.0.1:0\n"
         "    routes:\n"
         "      - match: {}\n"
         "        cluster: backend\n" +
         route_keys +
         "clusters:\n"
         "  - name: backend\n"
         "    endpoints: [ " +
         list + " ]\n" + cluster_keys;
}

std::string pattern_bytes(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;  // LCG: cheap, and every byte value shows up
    s[i] = static_cast<char>(x >> 24);
  }
  return s;
}

std::chrono::system_clock::time_point in(Millis d) { return std::chrono::system_clock::now() + d; }

grpc::Status unary_call(skiff::testing::TestService::Stub& stub, const skiff::testing::Request& req,
                        Millis deadline, skiff::testing::Response* resp, grpc::ClientContext* ctx) {
  grpc::ClientContext local_ctx;
  if (ctx == nullptr) ctx = &local_ctx;
  ctx->set_deadline(in(deadline));
  skiff::testing::Response local_resp;
  return stub.Unary(ctx, req, resp != nullptr ? resp : &local_resp);
}

}  // namespace skiff::it
