// Tests for telemetry/access_log.h: the JSON line, writing to a file, sampling, open() errors.
#include "telemetry/access_log.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

namespace skiff::telemetry {
namespace {

using namespace std::chrono;
using nlohmann::json;

// 2026-11-22T10:04:05.123456Z
system_clock::time_point known_time() {
  return sys_days{year{2026} / November / 22} + 10h + 4min + 5s + 123ms + 456us;
}

CallRecord full_record() {
  CallRecord r;
  r.start = known_time();
  r.duration = nanoseconds(12'345'678);
  r.listener = "inbound";
  r.path = "/user.UserService/GetUser";
  r.authority = "users.mesh.local";
  r.peer_identity = "spiffe://mesh.local/ns/default/sa/frontend";
  r.downstream_address = "10.0.0.5:51000";
  r.upstream_cluster = "users";
  r.upstream_endpoint = "users-0:8080";
  r.upstream_address = "10.1.2.3:8080";
  r.grpc_status = 14;
  r.grpc_message = "no healthy upstream";
  r.attempts = 2;
  r.request_bytes = 100;
  r.response_bytes = 2000;
  r.request_messages = 1;
  r.response_messages = 3;
  r.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  r.span_id = "b7ad6b7169203331";
  r.parent_span_id = "00f067aa0ba902b7";
  r.sampled = true;
  r.request_id = "req-42";
  return r;
}

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "skiff-accesslog-XXXXXX");
    char* made = mkdtemp(pattern.data());
    if (made != nullptr) path_ = made;
  }
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  std::string file(const char* name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

TEST(AccessLogLine, AllFields) {
  std::string line = to_json_line(full_record());
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1);  // exactly one line

  json j = json::parse(line);
  EXPECT_EQ(j["time"], "2026-11-22T10:04:05.123Z");
  EXPECT_EQ(j["listener"], "inbound");
  EXPECT_EQ(j["method"], "/user.UserService/GetUser");
  EXPECT_EQ(j["authority"], "users.mesh.local");
  EXPECT_EQ(j["peer"], "spiffe://mesh.local/ns/default/sa/frontend");
  EXPECT_EQ(j["downstream"], "10.0.0.5:51000");
  EXPECT_EQ(j["grpc_status"], 14);
  EXPECT_EQ(j["grpc_message"], "no healthy upstream");
  EXPECT_DOUBLE_EQ(j["duration_ms"].get<double>(), 12.346);
  EXPECT_EQ(j["request_bytes"], 100);
  EXPECT_EQ(j["response_bytes"], 2000);
  EXPECT_EQ(j["request_messages"], 1);
  EXPECT_EQ(j["response_messages"], 3);
  EXPECT_EQ(j["cluster"], "users");
  EXPECT_EQ(j["upstream"], "users-0:8080");
  EXPECT_EQ(j["upstream_address"], "10.1.2.3:8080");
  EXPECT_EQ(j["attempts"], 2);
  EXPECT_EQ(j["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(j["span_id"], "b7ad6b7169203331");
  EXPECT_EQ(j["request_id"], "req-42");
  EXPECT_EQ(j.size(), 20u);
  EXPECT_NE(line.find("\"duration_ms\":12.346,"), std::string::npos) << line;
}

TEST(AccessLogLine, CancelledCallHasNullStatusAndOmitsEmptyFields) {
  CallRecord r = full_record();
  r.grpc_status.reset();
  r.grpc_message.clear();
  r.peer_identity.clear();
  r.upstream_endpoint.clear();
  r.trace_id.clear();
  r.start = sys_days{year{1970} / January / 1} + 7ms;

  json j = json::parse(to_json_line(r));
  ASSERT_TRUE(j.contains("grpc_status"));
  EXPECT_TRUE(j["grpc_status"].is_null());
  EXPECT_FALSE(j.contains("grpc_message"));
  EXPECT_FALSE(j.contains("peer"));
  EXPECT_FALSE(j.contains("upstream"));
  EXPECT_FALSE(j.contains("trace_id"));
  EXPECT_EQ(j["time"], "1970-01-01T00:00:00.007Z");
}

TEST(AccessLog, AppendsExactLinesToTheFile) {
  TempDir dir;
  std::string path = dir.file("access.log");
  {
    std::ofstream existing(path);
    existing << "earlier line\n";
  }
  auto log = AccessLog::open(AccessLogOptions{.path = path});
  ASSERT_TRUE(log.has_value()) << log.error().message;

  std::string expected = "earlier line\n";
  for (int i = 0; i < 300; ++i) {  // more than one batch
    CallRecord r = full_record();
    r.request_id = "req-" + std::to_string(i);
    expected += to_json_line(r);
    ASSERT_TRUE((*log)->sampled());
    EXPECT_TRUE((*log)->submit(std::move(r)));
  }
  (*log)->stop();
  EXPECT_EQ((*log)->written(), 300u);
  EXPECT_EQ((*log)->dropped(), 0u);
  EXPECT_EQ((*log)->failed(), 0u);
  EXPECT_EQ(read_file(path), expected);
  EXPECT_EQ(std::filesystem::status(path).permissions() & std::filesystem::perms::owner_write,
            std::filesystem::perms::owner_write);
}

TEST(AccessLog, SampleRateZeroLogsNothing) {
  TempDir dir;
  std::string path = dir.file("access.log");
  auto log = AccessLog::open(AccessLogOptions{.path = path, .sample_rate = 0.0});
  ASSERT_TRUE(log.has_value()) << log.error().message;
  for (int i = 0; i < 1000; ++i) {
    if ((*log)->sampled()) (*log)->submit(full_record());
  }
  (*log)->stop();
  EXPECT_EQ((*log)->written(), 0u);
  EXPECT_EQ(read_file(path), "");
}

TEST(AccessLog, SampleRateHalfSamplesAboutHalf) {
  auto log = AccessLog::open(AccessLogOptions{.path = "-", .sample_rate = 0.5});
  ASSERT_TRUE(log.has_value()) << log.error().message;
  int sampled = 0;
  for (int i = 0; i < 10000; ++i) sampled += (*log)->sampled() ? 1 : 0;
  // Binomial(10000, 0.5) has a standard deviation of 50: this is 20 of them.
  EXPECT_GT(sampled, 4000);
  EXPECT_LT(sampled, 6000);
}

TEST(AccessLog, OpenFailsWithThePathAndReason) {
  TempDir dir;
  std::string path = dir.file("missing-dir/access.log");
  auto log = AccessLog::open(AccessLogOptions{.path = path});
  ASSERT_FALSE(log.has_value());
  EXPECT_NE(log.error().message.find(path), std::string::npos) << log.error().message;
  EXPECT_NE(log.error().message.find("No such file or directory"), std::string::npos)
      << log.error().message;
}

TEST(AccessLog, OpenRejectsASampleRateOutsideZeroToOne) {
  EXPECT_FALSE(AccessLog::open(AccessLogOptions{.path = "-", .sample_rate = 1.5}).has_value());
  EXPECT_FALSE(AccessLog::open(AccessLogOptions{.path = "-", .sample_rate = -0.1}).has_value());
}

TEST(AccessLog, FullQueueDropsAndCounts) {
  TempDir dir;
  std::string path = dir.file("access.log");
  auto log = AccessLog::open(AccessLogOptions{.path = path, .max_queue = 0});
  ASSERT_TRUE(log.has_value()) << log.error().message;
  EXPECT_FALSE((*log)->submit(full_record()));
  EXPECT_EQ((*log)->dropped(), 1u);
}

}  // namespace
}  // namespace skiff::telemetry
