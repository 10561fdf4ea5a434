// user_server: the demo's user.UserService backend, an in-memory user directory.
//
//   user_server --listen 127.0.0.1:50051
//
// Logs "user_server listening on ADDR" to stderr when ready, and each caller identity the first
// time it calls: the SPIFFE ID its skiff verified (mTLS) and passed in x-skiff-peer-identity.
// SIGINT/SIGTERM shut it down gracefully (in-flight calls get up to 2 s).
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "user.grpc.pb.h"

namespace {

// Bounds the store so a long demo (CreateUser in a loop) cannot grow memory without limit;
// the oldest created users are evicted first, the seed users never are.
constexpr size_t kMaxUsers = 10'000;

class UserStore {
 public:
  UserStore() {
    add("Ada Lovelace", "ada@example.com");
    add("Grace Hopper", "grace@example.com");
    add("Barbara Liskov", "barbara@example.com");
    add("Edsger Dijkstra", "edsger@example.com");
    add("Leslie Lamport", "leslie@example.com");
    seed_count_ = users_.size();
  }

  bool get(int32_t id, user::User* out) const {
    std::lock_guard lock(mu_);
    auto it = users_.find(id);
    if (it == users_.end()) return false;
    *out = it->second;
    return true;
  }

  user::User add(const std::string& name, const std::string& email) {
    std::lock_guard lock(mu_);
    user::User u;
    u.set_id(next_id_++);
    u.set_name(name);
    u.set_email(email);
    users_.emplace(u.id(), u);
    if (users_.size() > kMaxUsers) {
      // Evict the oldest non-seed user: ids are assigned in increasing order.
      auto it = users_.upper_bound(static_cast<int32_t>(seed_count_));
      if (it != users_.end()) users_.erase(it);
    }
    return u;
  }

  // Users with id > |after_id| in id order, at most |limit| (0 = all).
  std::vector<user::User> list(int32_t after_id, int32_t limit) const {
    std::lock_guard lock(mu_);
    std::vector<user::User> out;
    for (auto it = users_.upper_bound(after_id); it != users_.end(); ++it) {
      if (limit > 0 && out.size() >= static_cast<size_t>(limit)) break;
      out.push_back(it->second);
    }
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::map<int32_t, user::User> users_;
  int32_t next_id_ = 1;
  size_t seed_count_ = 0;
};

// The caller's identity as verified by the sidecar in front of this server: skiff sets the
// header from the client certificate of the mTLS connection and removes any copy the caller
// sent, so the app can trust it when it only listens for its own skiff.
constexpr const char* kPeerIdentityHeader = "x-skiff-peer-identity";

class CallerLog {
 public:
  // Prints each distinct caller once.
  void note(const grpc::ServerContext* ctx) {
    std::string caller;
    auto [begin, end] = ctx->client_metadata().equal_range(kPeerIdentityHeader);
    for (auto it = begin; it != end; ++it) caller.assign(it->second.data(), it->second.size());
    std::lock_guard lock(mu_);
    if (!seen_.insert(caller).second) return;
    if (caller.empty()) {
      std::cerr << "user_server: call without a verified caller identity (no "
                << kPeerIdentityHeader << " header)" << std::endl;
    } else {
      std::cerr << "user_server: call from verified caller " << caller << " ("
                << kPeerIdentityHeader << ")" << std::endl;
    }
  }

 private:
  std::mutex mu_;
  std::set<std::string> seen_;
};

class UserServiceImpl final : public user::UserService::Service {
 public:
  grpc::Status GetUser(grpc::ServerContext* ctx, const user::GetUserRequest* req,
                       user::User* resp) override {
    callers_.note(ctx);
    if (!store_.get(req->id(), resp)) {
      return {grpc::StatusCode::NOT_FOUND, "no user with id " + std::to_string(req->id())};
    }
    return grpc::Status::OK;
  }

  grpc::Status CreateUser(grpc::ServerContext* ctx, const user::CreateUserRequest* req,
                          user::User* resp) override {
    callers_.note(ctx);
    if (req->name().empty()) return {grpc::StatusCode::INVALID_ARGUMENT, "name is required"};
    *resp = store_.add(req->name(), req->email());
    return grpc::Status::OK;
  }

  grpc::Status ListUsers(grpc::ServerContext* ctx, const user::ListUsersRequest* req,
                         grpc::ServerWriter<user::User>* writer) override {
    callers_.note(ctx);
    for (const auto& u : store_.list(req->after_id(), req->limit())) {
      if (ctx->IsCancelled()) return {grpc::StatusCode::CANCELLED, "cancelled"};
      if (!writer->Write(u)) break;
    }
    return grpc::Status::OK;
  }

  grpc::Status Chat(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<user::ChatMessage, user::ChatMessage>* stream) override {
    callers_.note(ctx);
    user::ChatMessage in;
    while (stream->Read(&in)) {
      user::ChatMessage out;
      out.set_from("user_server");
      out.set_text("echo: " + in.text());
      out.set_sent_unix_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count());
      if (!stream->Write(out)) break;
    }
    return grpc::Status::OK;
  }

 private:
  UserStore store_;
  CallerLog callers_;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"user.UserService demo backend"};
  std::string listen = "127.0.0.1:50051";
  app.add_option("--listen", listen, "address to listen on (host:port)");
  CLI11_PARSE(app, argc, argv);

  // Block the shutdown signals before gRPC starts its threads, so only sigwait below sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  UserServiceImpl service;
  grpc::ServerBuilder builder;
  int port = 0;
  // gRPC sets SO_REUSEPORT by default, which would let a second server "listen" on a port that
  // is already taken; the demo wants a clear failure instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::cerr << "user_server: cannot listen on " << listen << " (address in use?)\n";
    return 1;
  }
  std::cerr << "user_server listening on " << listen << std::endl;

  int sig = 0;
  sigwait(&signals, &sig);
  std::cerr << "user_server: signal " << sig << ", shutting down" << std::endl;
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server->Wait();
  return 0;
}
