// TestServer: fault-injecting skiff.testing.TestService implementation (see test_server.h).
#include "test_server.h"

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <stdexcept>
#include <thread>

namespace skiff::it {
namespace {

using grpc::ServerContext;
using grpc::Status;
using grpc::StatusCode;
using skiff::testing::Request;
using skiff::testing::Response;

Status status_of(int32_t code, const std::string& message) {
  if (code == 0) return Status::OK;
  return Status(static_cast<StatusCode>(code), message);
}

Status cancelled_status() { return Status(StatusCode::CANCELLED, "cancelled"); }

// Waits |ms| unless the call is cancelled first; returns false if it was. The sync API has no
// cancellation callback, so this polls IsCancelled() at a fine grain: it is the upstream's
// own "work", not a test waiting for an event.
bool pause(ServerContext* ctx, int32_t ms) {
  const auto end = std::chrono::steady_clock::now() + Millis(std::max(ms, 0));
  for (;;) {
    if (ctx->IsCancelled()) return false;
    const auto now = std::chrono::steady_clock::now();
    if (now >= end) return true;
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(end - now, Millis(2)));
  }
}

Response make_response(const Request& req, int index, int server_id, int64_t request_bytes,
                       int request_count) {
  Response resp;
  if (req.response_bytes() > 0) {
    resp.set_payload(std::string(static_cast<size_t>(req.response_bytes()), 'r'));
  } else {
    resp.set_payload(req.payload());
  }
  resp.set_index(index);
  resp.set_server_id(server_id);
  resp.set_request_bytes(request_bytes);
  resp.set_request_count(request_count);
  return resp;
}

}  // namespace

// The retry number a proxy put on this attempt (gRFC A6 grpc-previous-rpc-attempts).
int previous_attempts(ServerContext* ctx) {
  auto it = ctx->client_metadata().find("grpc-previous-rpc-attempts");
  if (it == ctx->client_metadata().end()) return 0;
  return std::atoi(std::string(it->second.data(), it->second.size()).c_str());
}

void echo_metadata(ServerContext* ctx) {
  constexpr std::string_view kEcho = "x-echo-";
  for (const auto& [k, v] : ctx->client_metadata()) {
    std::string key(k.data(), k.size());
    if (!key.starts_with(kEcho)) continue;
    std::string value(v.data(), v.size());
    ctx->AddInitialMetadata(key, value);
    ctx->AddTrailingMetadata("x-trail-" + key.substr(kEcho.size()), value);
  }
}

// Records one call for its whole handler: begin on construction, end (with whether the peer
// cancelled it) on destruction, i.e. just before grpc++ sends the handler's status.
class CallScope {
 public:
  CallScope(TestServer& server, const std::string& method, ServerContext* ctx)
      : server_(server), ctx_(ctx), index_(server.begin_call(method, ctx)) {}
  ~CallScope() {
    const bool cancelled = !self_aborted && ctx_->IsCancelled();
    server_.end_call(index_, cancelled, self_aborted);
  }
  void tag(const std::string& t) { server_.set_tag(index_, t); }
  // The server kills the stream itself: RST_STREAM (or trailers) without a real status.
  Status abort() {
    self_aborted = true;
    ctx_->TryCancel();
    return Status(StatusCode::CANCELLED, "aborted by test server");
  }

  bool self_aborted = false;

 private:
  TestServer& server_;
  ServerContext* ctx_;
  size_t index_;
};

class TestServer::Service final : public skiff::testing::TestService::Service {
 public:
  explicit Service(TestServer& server) : server_(server) {}

  Status Unary(ServerContext* ctx, const Request* req, Response* resp) override {
    CallScope call(server_, "Unary", ctx);
    call.tag(req->tag());
    if (req->echo_metadata()) echo_metadata(ctx);
    if (!pause(ctx, req->delay_ms() + server_.unary_delay_ms_.load())) return cancelled_status();
    bool fail = req->respond_status() != 0;
    if (fail && req->fail_attempts() > 0) fail = previous_attempts(ctx) < req->fail_attempts();
    if (fail && req->fail_on_server() > 0) fail = req->fail_on_server() - 1 == server_.id();
    if (fail) return status_of(req->respond_status(), req->respond_message());
    *resp = make_response(*req, 0, server_.id(), static_cast<int64_t>(req->payload().size()), 1);
    return Status::OK;
  }

  Status ServerStream(ServerContext* ctx, const Request* req,
                      grpc::ServerWriter<Response>* writer) override {
    CallScope call(server_, "ServerStream", ctx);
    call.tag(req->tag());
    if (req->echo_metadata()) echo_metadata(ctx);
    if (!pause(ctx, req->delay_ms())) return cancelled_status();
    bool fail = req->respond_status() != 0;
    if (fail && req->fail_attempts() > 0) fail = previous_attempts(ctx) < req->fail_attempts();
    const Status status =
        fail ? status_of(req->respond_status(), req->respond_message()) : Status::OK;
    if (req->headers_only()) {
      writer->SendInitialMetadata();
      return status;
    }
    const int count = std::max(req->response_count(), 1);
    for (int i = 0; i < count; ++i) {
      if (i > 0 && !pause(ctx, req->interval_ms())) return cancelled_status();
      if (!writer->Write(make_response(*req, i, server_.id(),
                                       static_cast<int64_t>(req->payload().size()), 1))) {
        return cancelled_status();
      }
      if (req->abort_after() > 0 && i + 1 == req->abort_after()) return call.abort();
    }
    return status;
  }

  Status ClientStream(ServerContext* ctx, grpc::ServerReader<Request>* reader,
                      Response* resp) override {
    CallScope call(server_, "ClientStream", ctx);
    Request req;
    Request first;
    int count = 0;
    int64_t bytes = 0;
    while (reader->Read(&req)) {
      if (count == 0) {
        call.tag(req.tag());
        if (req.echo_metadata()) echo_metadata(ctx);
        first = req;
      }
      ++count;
      bytes += static_cast<int64_t>(req.payload().size());
    }
    if (ctx->IsCancelled()) return cancelled_status();
    if (!pause(ctx, first.delay_ms())) return cancelled_status();
    bool fail = first.respond_status() != 0;
    if (fail && first.fail_attempts() > 0) fail = previous_attempts(ctx) < first.fail_attempts();
    if (fail) return status_of(first.respond_status(), first.respond_message());
    *resp = make_response(first, 0, server_.id(), bytes, count);
    return Status::OK;
  }

  Status Bidi(ServerContext* ctx, grpc::ServerReaderWriter<Response, Request>* stream) override {
    CallScope call(server_, "Bidi", ctx);
    Request req;
    int count = 0;
    int64_t bytes = 0;
    int32_t final_code = 0;
    std::string final_message;
    while (stream->Read(&req)) {
      if (count == 0) {
        call.tag(req.tag());
        if (req.echo_metadata()) echo_metadata(ctx);
      }
      ++count;
      bytes += static_cast<int64_t>(req.payload().size());
      if (!pause(ctx, req.delay_ms())) return cancelled_status();
      if (!stream->Write(make_response(req, count - 1, server_.id(), bytes, count))) {
        return cancelled_status();
      }
      if (req.abort_after() > 0 && count == req.abort_after()) return call.abort();
      if (req.respond_status() != final_code || !req.respond_message().empty()) {
        final_code = req.respond_status();
        final_message = req.respond_message();
      }
    }
    if (ctx->IsCancelled()) return cancelled_status();
    return status_of(final_code, final_message);
  }

 private:
  TestServer& server_;
};

class TestServer::Other final : public skiff::testing::OtherService::Service {
 public:
  explicit Other(TestServer& server) : server_(server) {}

  Status Ping(ServerContext* ctx, const Request* req, Response* resp) override {
    CallScope call(server_, "Ping", ctx);
    call.tag(req->tag());
    *resp = make_response(*req, 0, server_.id(), static_cast<int64_t>(req->payload().size()), 1);
    return Status::OK;
  }

 private:
  TestServer& server_;
};

TestServer::TestServer(int id)
    : id_(id), service_(std::make_unique<Service>(*this)), other_(std::make_unique<Other>(*this)) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  builder.RegisterService(service_.get());
  builder.RegisterService(other_.get());
  server_ = builder.BuildAndStart();
  if (!server_ || port_ == 0) throw std::runtime_error("TestServer: cannot listen on 127.0.0.1:0");
}

TestServer::~TestServer() { stop(); }

void TestServer::stop(Millis grace) {
  if (stopped_) return;
  stopped_ = true;
  server_->Shutdown(std::chrono::system_clock::now() + grace);
  server_->Wait();
}

size_t TestServer::begin_call(const std::string& method, ServerContext* ctx) {
  if (log_calls_) std::cerr << "test upstream: call " << method << std::endl;
  CallRecord record;
  record.method = method;
  for (const auto& [k, v] : ctx->client_metadata()) {
    record.metadata.emplace(std::string(k.data(), k.size()), std::string(v.data(), v.size()));
  }
  std::lock_guard lock(mu_);
  records_.push_back(std::move(record));
  cv_.notify_all();
  return records_.size() - 1;
}

void TestServer::set_tag(size_t call, const std::string& tag) {
  std::lock_guard lock(mu_);
  records_[call].tag = tag;
}

void TestServer::end_call(size_t call, bool cancelled, bool self_aborted) {
  std::lock_guard lock(mu_);
  records_[call].finished = true;
  records_[call].cancelled = cancelled;
  records_[call].self_aborted = self_aborted;
  cv_.notify_all();
}

int TestServer::calls() const {
  std::lock_guard lock(mu_);
  return static_cast<int>(records_.size());
}

int TestServer::calls(const std::string& method) const {
  std::lock_guard lock(mu_);
  return static_cast<int>(std::count_if(records_.begin(), records_.end(),
                                        [&](const CallRecord& r) { return r.method == method; }));
}

int TestServer::cancellations() const {
  std::lock_guard lock(mu_);
  return static_cast<int>(std::count_if(records_.begin(), records_.end(),
                                        [](const CallRecord& r) { return r.cancelled; }));
}

std::vector<CallRecord> TestServer::records() const {
  std::lock_guard lock(mu_);
  return records_;
}

bool TestServer::wait_until(const std::function<bool()>& done, Millis timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, done);
}

bool TestServer::wait_for_calls(int n, Millis timeout) const {
  return wait_until([&] { return static_cast<int>(records_.size()) >= n; }, timeout);
}

bool TestServer::wait_for_cancellations(int n, Millis timeout) const {
  return wait_until(
      [&] {
        return std::count_if(records_.begin(), records_.end(),
                             [](const CallRecord& r) { return r.cancelled; }) >= n;
      },
      timeout);
}

bool TestServer::wait_for_finished(int n, Millis timeout) const {
  return wait_until(
      [&] {
        return std::count_if(records_.begin(), records_.end(),
                             [](const CallRecord& r) { return r.finished; }) >= n;
      },
      timeout);
}

}  // namespace skiff::it
