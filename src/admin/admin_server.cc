// AdminServer: civetweb request routing for the admin endpoints.
#include "admin/admin_server.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <string_view>
#include <thread>

#include "base/log.h"

namespace skiff::admin {
namespace {

void reply(mg_connection* conn, int status, std::string_view content_type, std::string_view body,
           std::string_view extra_headers = {}) {
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %.*s\r\nContent-Length: %zu\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\n%.*s\r\n",
            status, mg_get_response_code_text(conn, status), static_cast<int>(content_type.size()),
            content_type.data(), body.size(), static_cast<int>(extra_headers.size()),
            extra_headers.data());
  if (std::strcmp(mg_get_request_info(conn)->request_method, "HEAD") != 0) {
    mg_write(conn, body.data(), body.size());
  }
}

constexpr const char* kThreads = "8";
constexpr const char* kRequestTimeout = "2000";  // ms

constexpr std::string_view kText = "text/plain; charset=utf-8";
constexpr std::string_view kJson = "application/json";
// The Prometheus text exposition format, version 0.0.4.
constexpr std::string_view kPrometheus = "text/plain; version=0.0.4; charset=utf-8";

constexpr std::string_view kIndex =
    "skiff admin\n"
    "  GET  /metrics   Prometheus metrics\n"
    "  GET  /ready     200 when serving, 503 while starting or draining\n"
    "  GET  /healthz   200 while the process is alive\n"
    "  GET  /config    the effective configuration (JSON)\n"
    "  GET  /clusters  clusters, endpoints, breakers (JSON)\n"
    "  POST /drain     stop accepting, finish in-flight calls, exit\n";

// One TCP connect to |host|:|port| (a numeric IPv4 address), closed at once; errors are ignored.
void connect_and_close(const std::string& host, uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) return;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  (void)connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::close(fd);
}

}  // namespace

base::Result<std::unique_ptr<AdminServer>> AdminServer::start(const std::string& host,
                                                              uint16_t port, Handlers handlers) {
  static std::once_flag init;
  std::call_once(init, [] { mg_init_library(0); });
  // IPv4 only (the config refuses IPv6): Debian's civetweb is built without it.
  const std::string bind = host + ":" + std::to_string(port);
  // civetweb gives each connection a thread until it is answered, so connections that send
  // nothing hold threads: with every thread held, a kubelet probe (1 s timeout) waits. Up to
  // kThreads - 1 such connections leave a thread for the probe; past that, each is dropped after
  // kRequestTimeout. The threads' stacks are touched only as deep as a request goes.
  const char* options[] = {
      "listening_ports", bind.c_str(),        "num_threads", kThreads, "request_timeout_ms",
      kRequestTimeout,   "enable_keep_alive", "no",          nullptr};
  auto server = std::unique_ptr<AdminServer>(new AdminServer(std::move(handlers)));
  mg_callbacks callbacks{};
  // civetweb reports bind errors through log_message; keep them for our message.
  static thread_local std::string last_error;
  last_error.clear();
  callbacks.log_message = [](const mg_connection*, const char* message) {
    // The first says why ("cannot bind to ...: Address already in use"); later ones are generic.
    if (last_error.empty()) last_error = message;
    return 1;  // handled: civetweb prints nothing itself
  };
  server->ctx_ = mg_start(&callbacks, server.get(), options);
  if (server->ctx_ == nullptr) {
    return base::fail("admin: cannot listen on " + bind +
                      (last_error.empty() ? std::string() : ": " + last_error));
  }
  mg_set_request_handler(server->ctx_, "/", &AdminServer::on_request, server.get());
  mg_server_port ports[1];
  const int n = mg_get_server_ports(server->ctx_, 1, ports);
  const int bound_port = n > 0 ? ports[0].port : port;
  server->address_ = host + ":" + std::to_string(bound_port);
  server->wake_host_ = host == "0.0.0.0" ? "127.0.0.1" : host;
  server->wake_port_ = static_cast<uint16_t>(bound_port);
  return server;
}

AdminServer::~AdminServer() {
  if (ctx_ == nullptr) return;
  // civetweb's listener thread sees mg_stop() only when its poll() returns: up to 2 s without a
  // connection, on every shutdown. Connections wake it.
  std::atomic<bool> stopped{false};
  std::thread wake([this, &stopped] {
    while (!stopped.load()) {
      connect_and_close(wake_host_, wake_port_);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  mg_stop(ctx_);
  stopped.store(true);
  wake.join();
}

int AdminServer::on_request(mg_connection* conn, void* self) {
  return static_cast<AdminServer*>(self)->handle(conn);
}

int AdminServer::handle(mg_connection* conn) {
  const mg_request_info* request = mg_get_request_info(conn);
  const std::string_view method = request->request_method;
  const std::string_view path = request->local_uri != nullptr ? request->local_uri : "/";
  const bool get = method == "GET" || method == "HEAD";
  const auto only = [&](std::string_view allowed) {
    reply(conn, 405, kText, "method not allowed\n",
          allowed == "POST" ? "Allow: POST\r\n" : "Allow: GET, HEAD\r\n");
    return 405;
  };

  if (path == "/metrics") {
    if (!get) return only("GET");
    reply(conn, 200, kPrometheus, handlers_.metrics());
    return 200;
  }
  if (path == "/ready") {
    if (!get) return only("GET");
    if (handlers_.ready()) {
      reply(conn, 200, kText, "ready\n");
      return 200;
    }
    reply(conn, 503, kText, handlers_.draining() ? "draining\n" : "starting\n");
    return 503;
  }
  if (path == "/healthz") {
    if (!get) return only("GET");
    reply(conn, 200, kText, "ok\n");
    return 200;
  }
  if (path == "/config") {
    if (!get) return only("GET");
    reply(conn, 200, kJson, handlers_.config());
    return 200;
  }
  if (path == "/clusters") {
    if (!get) return only("GET");
    reply(conn, 200, kJson, handlers_.clusters());
    return 200;
  }
  if (path == "/drain") {
    // POST only: a crawler or a stray GET must not take the sidecar out of service.
    if (method != "POST") return only("POST");
    SKIFF_LOG(kInfo) << "admin: drain requested";
    handlers_.drain();
    reply(conn, 202, kText, "draining\n");
    return 202;
  }
  if (path == "/") {
    if (!get) return only("GET");
    reply(conn, 200, kText, kIndex);
    return 200;
  }
  reply(conn, 404, kText, "not found; see /\n");
  return 404;
}

}  // namespace skiff::admin
