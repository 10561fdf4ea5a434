// user_client: demo load generator for user.UserService (normally pointed at a skiff listener).
//
//   user_client --target 127.0.0.1:15001 --seconds 10 --concurrency 4
//
// Each of |concurrency| workers calls GetUser, CreateUser, ListUsers and Chat in a loop on its
// own connection. Prints one line per second (calls/s and counts per status code) and a final
// summary. Exits 0 if every call was OK (or the expected NOT_FOUND of GetUser on an unknown
// id), 1 otherwise. --seconds 0 runs until SIGINT/SIGTERM.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <array>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/status_code_names.h"
#include "user.grpc.pb.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kCodes = skiff::base::kStatusCodeNames.size();  // grpc::StatusCode 0..16
constexpr int kMaxLoggedErrors = 5;

// The shared gRPC status-name table (src/base, header-only).
std::string_view code_name(int code) {
  const auto& names = skiff::base::kStatusCodeNames;
  return code >= 0 && code < static_cast<int>(names.size()) ? names[code] : "?";
}

struct Stats {
  std::array<std::atomic<uint64_t>, kCodes> by_code{};
  std::atomic<uint64_t> unexpected{0};
  std::atomic<int> logged_errors{0};

  uint64_t total() const {
    uint64_t n = 0;
    for (const auto& c : by_code) n += c.load(std::memory_order_relaxed);
    return n;
  }
  std::array<uint64_t, kCodes> snapshot() const {
    std::array<uint64_t, kCodes> s{};
    for (int i = 0; i < kCodes; ++i) s[i] = by_code[i].load(std::memory_order_relaxed);
    return s;
  }
};

std::string format_codes(const std::array<uint64_t, kCodes>& counts) {
  std::ostringstream out;
  bool first = true;
  for (int i = 0; i < kCodes; ++i) {
    if (counts[i] == 0) continue;
    out << (first ? "" : " ") << code_name(i) << "=" << counts[i];
    first = false;
  }
  return first ? "-" : out.str();
}

class Worker {
 public:
  Worker(int index, const std::string& target, std::chrono::milliseconds deadline, Stats& stats,
         const std::atomic<bool>& stop)
      : index_(index), deadline_(deadline), stats_(stats), stop_(stop) {
    grpc::ChannelArguments args;
    // A connection per worker, so the load spreads over skiff's workers.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    stub_ = user::UserService::NewStub(
        grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args));
  }

  void run() {
    for (uint64_t i = 0; !stop_.load(std::memory_order_relaxed); ++i) {
      switch (i % 4) {
        case 0:
          get_user(i);
          break;
        case 1:
          create_user(i);
          break;
        case 2:
          list_users();
          break;
        case 3:
          chat(i);
          break;
      }
    }
  }

 private:
  void arm(grpc::ClientContext& ctx) const {
    ctx.set_deadline(std::chrono::system_clock::now() + deadline_);
  }

  void record(const char* method, const grpc::Status& status, bool expected) {
    int code = static_cast<int>(status.error_code());
    if (code < 0 || code >= kCodes) code = static_cast<int>(grpc::StatusCode::UNKNOWN);
    stats_.by_code[code].fetch_add(1, std::memory_order_relaxed);
    if (expected) return;
    stats_.unexpected.fetch_add(1, std::memory_order_relaxed);
    if (stats_.logged_errors.fetch_add(1) < kMaxLoggedErrors) {
      std::cerr << "user_client: " << method << " failed: " << code_name(code) << ": "
                << status.error_message() << std::endl;
    }
  }

  void get_user(uint64_t i) {
    // Every fifth lookup asks for an id that never exists: NOT_FOUND is the expected answer.
    const bool unknown = (i / 4) % 5 == 4;
    user::GetUserRequest req;
    req.set_id(unknown ? -1 : static_cast<int32_t>(1 + (i / 4) % 5));
    user::User resp;
    grpc::ClientContext ctx;
    arm(ctx);
    grpc::Status s = stub_->GetUser(&ctx, req, &resp);
    const bool ok =
        unknown ? s.error_code() == grpc::StatusCode::NOT_FOUND : s.ok() && resp.id() == req.id();
    record("GetUser", s, ok);
  }

  void create_user(uint64_t i) {
    user::CreateUserRequest req;
    req.set_name("user-" + std::to_string(index_) + "-" + std::to_string(i));
    req.set_email(req.name() + "@example.com");
    user::User resp;
    grpc::ClientContext ctx;
    arm(ctx);
    grpc::Status s = stub_->CreateUser(&ctx, req, &resp);
    record("CreateUser", s, s.ok() && resp.name() == req.name());
  }

  void list_users() {
    user::ListUsersRequest req;
    req.set_limit(5);
    grpc::ClientContext ctx;
    arm(ctx);
    auto reader = stub_->ListUsers(&ctx, req);
    user::User u;
    int n = 0;
    while (reader->Read(&u)) ++n;
    grpc::Status s = reader->Finish();
    record("ListUsers", s, s.ok() && n == 5);
  }

  void chat(uint64_t i) {
    constexpr int kMessages = 3;
    grpc::ClientContext ctx;
    arm(ctx);
    auto stream = stub_->Chat(&ctx);
    for (int m = 0; m < kMessages; ++m) {
      user::ChatMessage msg;
      msg.set_from("user_client-" + std::to_string(index_));
      msg.set_text("hello " + std::to_string(i) + "." + std::to_string(m));
      if (!stream->Write(msg)) break;
    }
    stream->WritesDone();
    user::ChatMessage in;
    int n = 0;
    while (stream->Read(&in)) ++n;
    grpc::Status s = stream->Finish();
    record("Chat", s, s.ok() && n == kMessages);
  }

  int index_;
  std::chrono::milliseconds deadline_;
  Stats& stats_;
  const std::atomic<bool>& stop_;
  std::unique_ptr<user::UserService::Stub> stub_;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"user.UserService demo load client"};
  std::string target = "127.0.0.1:15001";
  int seconds = 0;
  int concurrency = 4;
  int deadline_ms = 5000;
  app.add_option("--target", target, "skiff listener (or server) address, host:port");
  app.add_option("--seconds", seconds, "how long to run; 0 = until Ctrl-C")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--concurrency", concurrency, "parallel workers, one connection each")
      ->check(CLI::Range(1, 1000));
  app.add_option("--deadline-ms", deadline_ms, "per-call deadline")->check(CLI::Range(1, 600000));
  CLI11_PARSE(app, argc, argv);

  // Only the sigtimedwait below receives SIGINT/SIGTERM: block them before any thread starts.
  // A shell starts background jobs with SIGINT ignored, and an ignored signal is discarded
  // rather than left pending, so restore the default disposition first.
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  Stats stats;
  std::atomic<bool> stop{false};
  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<std::thread> threads;
  for (int i = 0; i < concurrency; ++i) {
    workers.push_back(
        std::make_unique<Worker>(i, target, std::chrono::milliseconds(deadline_ms), stats, stop));
  }
  std::cerr << "user_client: " << concurrency << " workers -> " << target << ", "
            << (seconds > 0 ? std::to_string(seconds) + " s" : std::string("until Ctrl-C"))
            << std::endl;

  const auto start = Clock::now();
  for (auto& w : workers) threads.emplace_back([&w] { w->run(); });

  auto previous = stats.snapshot();
  for (int tick = 1; seconds == 0 || tick <= seconds; ++tick) {
    const auto next = start + std::chrono::seconds(tick);
    bool interrupted = false;
    for (auto now = Clock::now(); now < next; now = Clock::now()) {
      auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(next - now);
      timespec ts{static_cast<time_t>(left.count() / 1'000'000'000),
                  static_cast<long>(left.count() % 1'000'000'000)};
      if (sigtimedwait(&signals, nullptr, &ts) > 0) {
        interrupted = true;
        break;
      }
    }
    if (interrupted) break;
    auto current = stats.snapshot();
    std::array<uint64_t, kCodes> delta{};
    uint64_t calls = 0;
    for (int i = 0; i < kCodes; ++i) {
      delta[i] = current[i] - previous[i];
      calls += delta[i];
    }
    previous = current;
    std::printf("[%4ds] %7llu calls/s  %s\n", tick, static_cast<unsigned long long>(calls),
                format_codes(delta).c_str());
    std::fflush(stdout);
  }

  stop.store(true);
  for (auto& t : threads) t.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  const uint64_t total = stats.total();
  const uint64_t unexpected = stats.unexpected.load();
  std::printf("summary: %llu calls in %.1f s (%.0f calls/s); %s; unexpected failures: %llu\n",
              static_cast<unsigned long long>(total), elapsed, elapsed > 0 ? total / elapsed : 0.0,
              format_codes(stats.snapshot()).c_str(), static_cast<unsigned long long>(unexpected));
  std::fflush(stdout);
  return unexpected == 0 && total > 0 ? 0 : 1;
}
