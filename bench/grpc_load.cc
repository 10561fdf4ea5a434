// grpc_load: the bench's real-gRPC-stack tool (grpc++ callback API, i.e. asynchronous).
//
//   grpc_load serve [--listen HOST:PORT]
//       skiffbench.Echo server: Unary returns the request; Bidi echoes every message in order.
//       Prints "listening on HOST:PORT" when ready; runs until SIGTERM/SIGINT.
//   grpc_load bidi --target HOST:PORT [--streams 4] [--window 32] [--size 64] [--seconds 5]
//       Opens --streams Bidi calls on one channel, keeps --window messages in flight on each
//       (pipelined ping-pong), for --seconds; then half-closes every stream and waits for the
//       final status. Reports messages/s and the count of each grpc-status.
//   grpc_load unary --target HOST:PORT [--concurrency 16] [--requests 2000] [--size 64]
//                   [--seconds 30]
//       --requests Unary calls, --concurrency at a time, stopping early after --seconds.
//       Reports calls/s, latency p50/p99 and the count of each grpc-status.
//
// Client modes print one JSON object on stdout and exit 0 when every call ended with status 0,
// 1 otherwise. Every mode is bounded in time: calls carry deadlines and a watchdog exits the
// process if it runs far past --seconds.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "echo.grpc.pb.h"

namespace {

using skiffbench::Echo;
using skiffbench::Payload;
using Clock = std::chrono::steady_clock;

constexpr int kMaxMessageBytes = 64 << 20;

struct Options {
  std::string mode;
  std::string listen = "127.0.0.1:0";
  std::string target;
  int streams = 4;
  int window = 32;
  int size = 64;
  double seconds = 5;
  int concurrency = 16;
  long requests = 2000;
};

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: grpc_load serve [--listen HOST:PORT]\n"
               "       grpc_load bidi --target HOST:PORT [--streams N] [--window N] [--size B] "
               "[--seconds S]\n"
               "       grpc_load unary --target HOST:PORT [--concurrency N] [--requests N] "
               "[--size B] [--seconds S]\n");
  std::exit(2);
}

Options parse_args(int argc, char** argv) {
  if (argc < 2) usage();
  Options o;
  o.mode = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string_view a = argv[i];
    if (i + 1 >= argc) usage();
    const char* v = argv[++i];
    try {
      if (a == "--listen") {
        o.listen = v;
      } else if (a == "--target") {
        o.target = v;
      } else if (a == "--streams") {
        o.streams = std::clamp(std::stoi(v), 1, 10000);
      } else if (a == "--window") {
        o.window = std::clamp(std::stoi(v), 1, 100000);
      } else if (a == "--size") {
        o.size = std::clamp(std::stoi(v), 0, kMaxMessageBytes - 1024);
      } else if (a == "--seconds") {
        o.seconds = std::clamp(std::stod(v), 0.1, 3600.0);
      } else if (a == "--concurrency") {
        o.concurrency = std::clamp(std::stoi(v), 1, 100000);
      } else if (a == "--requests") {
        o.requests = std::clamp(std::stol(v), 1L, 1000000000L);
      } else {
        usage();
      }
    } catch (const std::exception&) {
      usage();
    }
  }
  if (o.mode != "serve" && o.target.empty()) usage();
  return o;
}

// Exits the process if a client mode runs far past its time budget (a stuck peer).
void start_watchdog(double seconds) {
  std::thread([seconds] {
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    std::fprintf(stderr, "grpc_load: watchdog: still running after %.0f s, exiting\n", seconds);
    std::_Exit(3);
  }).detach();
}

// ---- server ---------------------------------------------------------------------------------

class BidiEcho : public grpc::ServerBidiReactor<Payload, Payload> {
 public:
  BidiEcho() { StartRead(&in_); }

  void OnReadDone(bool ok) override {
    std::lock_guard lock(mu_);
    if (!ok) {
      reads_done_ = true;
      maybe_finish_locked();
      return;
    }
    queue_.push_back(std::move(in_));
    in_.Clear();
    if (!writing_) start_write_locked();
    if (queue_.size() < kMaxQueued) {
      StartRead(&in_);
    } else {
      read_paused_ = true;
    }
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mu_);
    writing_ = false;
    queue_.pop_front();
    if (!ok) {
      failed_ = true;
      reads_done_ = true;
      maybe_finish_locked();
      return;
    }
    if (!queue_.empty()) start_write_locked();
    if (read_paused_ && queue_.size() < kMaxQueued) {
      read_paused_ = false;
      StartRead(&in_);
    }
    maybe_finish_locked();
  }

  void OnDone() override { delete this; }

 private:
  static constexpr size_t kMaxQueued = 64;

  void start_write_locked() {
    writing_ = true;
    StartWrite(&queue_.front());  // deque::push_back keeps references to elements valid
  }
  void maybe_finish_locked() {
    if (finished_ || !reads_done_ || writing_ || (!queue_.empty() && !failed_) || read_paused_) {
      return;
    }
    finished_ = true;
    Finish(failed_ ? grpc::Status(grpc::StatusCode::CANCELLED, "write failed") : grpc::Status::OK);
  }

  std::mutex mu_;
  Payload in_;
  std::deque<Payload> queue_;
  bool writing_ = false;
  bool reads_done_ = false;
  bool read_paused_ = false;
  bool failed_ = false;
  bool finished_ = false;
};

class EchoService final : public Echo::CallbackService {
  grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* ctx, const Payload* req,
                                  Payload* resp) override {
    *resp = *req;
    auto* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  grpc::ServerBidiReactor<Payload, Payload>* Bidi(grpc::CallbackServerContext*) override {
    return new BidiEcho();
  }
};

int serve(const Options& o) {
  EchoService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(o.listen, grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::fprintf(stderr, "grpc_load: cannot listen on %s\n", o.listen.c_str());
    return 1;
  }
  std::string host = o.listen.substr(0, o.listen.rfind(':'));
  std::printf("listening on %s:%d\n", host.c_str(), port);
  std::fflush(stdout);

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // grpc's threads inherit this mask
  int sig = 0;
  sigwait(&set, &sig);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  return 0;
}

// ---- clients --------------------------------------------------------------------------------

std::shared_ptr<grpc::Channel> make_channel(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

struct StatusCounts {
  std::mutex mu;
  std::map<int, long> by_code;
  std::string first_error;
  void add(const grpc::Status& s) {
    std::lock_guard lock(mu);
    ++by_code[static_cast<int>(s.error_code())];
    if (!s.ok() && first_error.empty()) first_error = s.error_message();
  }
  std::string json() {
    std::lock_guard lock(mu);
    std::string out = "{";
    for (auto& [code, n] : by_code) {
      if (out.size() > 1) out += ",";
      out += "\"" + std::to_string(code) + "\":" + std::to_string(n);
    }
    return out + "}";
  }
  bool all_ok() {
    std::lock_guard lock(mu);
    for (auto& [code, n] : by_code) {
      if (code != 0 && n > 0) return false;
    }
    return true;
  }
};

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

struct Done {
  std::mutex mu;
  std::condition_variable cv;
  int remaining = 0;
  void finish_one() {
    std::lock_guard lock(mu);
    if (--remaining == 0) cv.notify_all();
  }
  bool wait_until(Clock::time_point deadline) {
    std::unique_lock lock(mu);
    return cv.wait_until(lock, deadline, [&] { return remaining == 0; });
  }
};

class BidiClient : public grpc::ClientBidiReactor<Payload, Payload> {
 public:
  BidiClient(Echo::Stub* stub, const Payload* msg, int window,
             std::chrono::system_clock::time_point deadline, std::atomic<long>* received,
             StatusCounts* statuses, Done* done)
      : msg_(msg), window_(window), received_(received), statuses_(statuses), done_(done) {
    ctx_.set_deadline(deadline);
    stub->async()->Bidi(&ctx_, this);
    AddHold();  // released by stop(): keeps the reactor alive until the main thread is done
    StartRead(&in_);
    {
      std::lock_guard lock(mu_);
      maybe_write_locked();
    }
    StartCall();
  }

  // Stop sending new messages; half-close once every message in flight has come back.
  void stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      maybe_write_locked();
    }
    RemoveHold();
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mu_);
    writing_ = false;
    if (!ok) {
      broken_ = true;
      return;
    }
    maybe_write_locked();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // the call is ending; OnDone follows
    received_->fetch_add(1, std::memory_order_relaxed);
    {
      std::lock_guard lock(mu_);
      --in_flight_;
      maybe_write_locked();
    }
    StartRead(&in_);
  }

  void OnWritesDoneDone(bool /*ok*/) override {}

  void OnDone(const grpc::Status& s) override {
    statuses_->add(s);
    Done* done = done_;
    delete this;
    done->finish_one();
  }

 private:
  void maybe_write_locked() {
    if (writing_ || writes_done_ || broken_) return;
    if (stopping_) {
      if (in_flight_ == 0) {
        writes_done_ = true;
        StartWritesDone();
      }
      return;
    }
    if (in_flight_ >= window_) return;
    ++in_flight_;
    writing_ = true;
    StartWrite(msg_);
  }

  grpc::ClientContext ctx_;
  const Payload* msg_;
  Payload in_;
  int window_;
  std::atomic<long>* received_;
  StatusCounts* statuses_;
  Done* done_;
  std::mutex mu_;
  int in_flight_ = 0;
  bool writing_ = false;
  bool writes_done_ = false;
  bool stopping_ = false;
  bool broken_ = false;
};

int run_bidi(const Options& o) {
  start_watchdog(o.seconds + 30);
  auto channel = make_channel(o.target);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(5))) {
    std::printf("{\"mode\":\"bidi\",\"error\":\"cannot connect to %s\"}\n", o.target.c_str());
    return 1;
  }
  auto stub = Echo::NewStub(channel);
  Payload msg;
  msg.set_data(std::string(static_cast<size_t>(o.size), 'x'));
  std::atomic<long> received{0};
  StatusCounts statuses;
  Done done;
  done.remaining = o.streams;
  const auto deadline =
      std::chrono::system_clock::now() + std::chrono::duration_cast<std::chrono::nanoseconds>(
                                             std::chrono::duration<double>(o.seconds + 20));
  std::vector<BidiClient*> clients;
  const auto t0 = Clock::now();
  for (int i = 0; i < o.streams; ++i) {
    clients.push_back(
        new BidiClient(stub.get(), &msg, o.window, deadline, &received, &statuses, &done));
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
  const long at_stop = received.load();
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  for (BidiClient* c : clients) c->stop();  // may delete c once its call is done
  bool finished = done.wait_until(Clock::now() + std::chrono::seconds(15));
  std::printf(
      "{\"mode\":\"bidi\",\"streams\":%d,\"window\":%d,\"size\":%d,\"seconds\":%.3f,"
      "\"messages\":%ld,\"messages_total\":%ld,\"msgs_per_s\":%.1f,\"status\":%s,"
      "\"finished\":%s,\"first_error\":\"%s\"}\n",
      o.streams, o.window, o.size, elapsed, at_stop, received.load(), at_stop / elapsed,
      statuses.json().c_str(), finished ? "true" : "false",
      json_escape(statuses.first_error).c_str());
  std::fflush(stdout);
  if (!finished) std::_Exit(1);  // streams still open: do not wait for them in destructors
  return statuses.all_ok() ? 0 : 1;
}

struct UnaryState {
  Echo::Stub* stub;
  Payload msg;
  long requests;
  Clock::time_point stop_at;
  std::atomic<long> started{0};
  std::mutex lat_mu;
  std::vector<double> latencies_us;
  StatusCounts statuses;
  Done done;
};

void start_unary(UnaryState* st);

struct UnaryCall {
  grpc::ClientContext ctx;
  Payload resp;
  Clock::time_point t0;
};

// One slot of the concurrency: issues calls back to back until the budget is used up.
void start_unary(UnaryState* st) {
  if (st->started.fetch_add(1) >= st->requests || Clock::now() >= st->stop_at) {
    st->done.finish_one();
    return;
  }
  auto* call = new UnaryCall();
  call->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  call->t0 = Clock::now();
  st->stub->async()->Unary(&call->ctx, &st->msg, &call->resp, [st, call](grpc::Status s) {
    double us = std::chrono::duration<double, std::micro>(Clock::now() - call->t0).count();
    if (s.ok() && call->resp.data().size() != st->msg.data().size()) {
      s = grpc::Status(grpc::StatusCode::DATA_LOSS, "echo size mismatch");
    }
    st->statuses.add(s);
    {
      std::lock_guard lock(st->lat_mu);
      st->latencies_us.push_back(us);
    }
    delete call;
    start_unary(st);
  });
}

int run_unary(const Options& o) {
  start_watchdog(o.seconds + 30);
  auto channel = make_channel(o.target);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(5))) {
    std::printf("{\"mode\":\"unary\",\"error\":\"cannot connect to %s\"}\n", o.target.c_str());
    return 1;
  }
  auto stub = Echo::NewStub(channel);
  auto st = std::make_unique<UnaryState>();
  st->stub = stub.get();
  st->msg.set_data(std::string(static_cast<size_t>(o.size), 'x'));
  st->requests = o.requests;
  st->done.remaining = o.concurrency;
  const auto t0 = Clock::now();
  st->stop_at =
      t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds));
  for (int i = 0; i < o.concurrency; ++i) start_unary(st.get());
  bool finished = st->done.wait_until(st->stop_at + std::chrono::seconds(15));
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  std::vector<double> lat;
  {
    std::lock_guard lock(st->lat_mu);
    lat = st->latencies_us;
  }
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double p) {
    if (lat.empty()) return 0.0;
    size_t i = std::min(lat.size() - 1, static_cast<size_t>(p * static_cast<double>(lat.size())));
    return lat[i];
  };
  std::printf(
      "{\"mode\":\"unary\",\"concurrency\":%d,\"size\":%d,\"seconds\":%.3f,\"calls\":%zu,"
      "\"calls_per_s\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f,\"status\":%s,\"finished\":%s,"
      "\"first_error\":\"%s\"}\n",
      o.concurrency, o.size, elapsed, lat.size(), static_cast<double>(lat.size()) / elapsed,
      pct(0.50), pct(0.99), st->statuses.json().c_str(), finished ? "true" : "false",
      json_escape(st->statuses.first_error).c_str());
  std::fflush(stdout);
  if (!finished) std::_Exit(1);
  return st->statuses.all_ok() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse_args(argc, argv);
  if (o.mode == "serve") return serve(o);
  if (o.mode == "bidi") return run_bidi(o);
  if (o.mode == "unary") return run_unary(o);
  usage();
}
