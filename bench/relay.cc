// bench_relay: the floor of a proxy hop, for the benchmarks. A TCP relay on libuv: each accepted
// connection gets its own connection to the backend, and bytes are moved between the two as they
// come (read into one 256 KiB buffer, written straight on; only what the socket does not take is
// copied and queued). No HTTP/2, nothing parsed, no state per request.
//
// What it adds over a direct connection is what any user-space proxy on the same cores pays:
// two more sockets to cross and its core to wake twice per request. The fixed-rate scenario runs
// it next to skiff and nghttpx, so a proxy's added latency splits into this floor and the
// proxy's own work.
//
// usage: bench_relay --listen HOST:PORT --backend HOST:PORT
// stdout: "listening on HOST:PORT" once it listens. SIGTERM/SIGINT exit at once.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <uv.h>

#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace {

// Reading from one side stops while this much is queued for the other, and resumes below half.
constexpr size_t kHighWater = 1 << 20;

sockaddr_in g_backend{};

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "bench_relay: %s\n", msg.c_str());
  std::exit(2);
}

sockaddr_in parse_address(std::string_view flag, std::string_view v) {
  auto colon = v.rfind(':');
  int port = -1;
  if (colon != std::string_view::npos) {
    std::from_chars(v.data() + colon + 1, v.data() + v.size(), port);
  }
  sockaddr_in addr{};
  if (port < 0 || port > 65535 ||
      uv_ip4_addr(std::string(v.substr(0, colon)).c_str(), port, &addr) != 0) {
    die(std::string(flag) + ": expected IPv4 HOST:PORT, got " + std::string(v));
  }
  return addr;
}

struct Pair;

// One socket of a pair; |peer| is the other one.
struct Side {
  uv_tcp_t tcp{};
  Side* peer = nullptr;
  Pair* pair = nullptr;
  size_t queued = 0;  // bytes accepted for this socket and not yet written
  bool reading = false;
};

struct Pair {
  Side down;  // the client's connection
  Side up;    // ours to the backend
  uv_connect_t connect{};
  int open_handles = 2;
  bool closing = false;
};

struct QueuedWrite {
  uv_write_t req{};
  Side* to = nullptr;
  std::string bytes;
};

void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);

void close_pair(Pair* p) {
  if (p->closing) return;
  p->closing = true;
  for (Side* s : {&p->down, &p->up}) {
    uv_close(reinterpret_cast<uv_handle_t*>(&s->tcp), [](uv_handle_t* h) {
      Pair* pair = static_cast<Side*>(h->data)->pair;
      if (--pair->open_handles == 0) delete pair;
    });
  }
}

void start_reading(Side* s) {
  if (s->reading || s->pair->closing) return;
  s->reading = true;
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&s->tcp),
      [](uv_handle_t*, size_t, uv_buf_t* buf) {
        static char buffer[256 * 1024];  // as skiff's per-worker read buffer
        *buf = uv_buf_init(buffer, sizeof buffer);
      },
      on_read);
}

void on_written(uv_write_t* req, int status) {
  auto* w = reinterpret_cast<QueuedWrite*>(req);
  Side* to = w->to;
  to->queued -= w->bytes.size();
  delete w;
  if (status < 0) {
    close_pair(to->pair);
    return;
  }
  if (to->queued < kHighWater / 2) start_reading(to->peer);
}

void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  Side* from = static_cast<Side*>(stream->data);
  if (nread < 0) {
    close_pair(from->pair);
    return;
  }
  Side* to = from->peer;
  auto* out = reinterpret_cast<uv_stream_t*>(&to->tcp);
  size_t len = static_cast<size_t>(nread);
  size_t taken = 0;
  if (to->queued == 0) {
    uv_buf_t b = uv_buf_init(buf->base, static_cast<unsigned>(len));
    int n = uv_try_write(out, &b, 1);
    if (n > 0) taken = static_cast<size_t>(n);
  }
  if (taken == len) return;
  auto* w = new QueuedWrite;
  w->to = to;
  w->bytes.assign(buf->base + taken, len - taken);
  to->queued += w->bytes.size();
  uv_buf_t b = uv_buf_init(w->bytes.data(), static_cast<unsigned>(w->bytes.size()));
  if (uv_write(&w->req, out, &b, 1, on_written) != 0) {
    to->queued -= w->bytes.size();
    delete w;
    close_pair(from->pair);
    return;
  }
  if (to->queued >= kHighWater) {
    uv_read_stop(stream);
    from->reading = false;
  }
}

void on_connection(uv_stream_t* server, int status) {
  if (status < 0) return;
  auto* p = new Pair;
  for (Side* s : {&p->down, &p->up}) {
    uv_tcp_init(server->loop, &s->tcp);
    s->tcp.data = s;
    s->pair = p;
  }
  p->down.peer = &p->up;
  p->up.peer = &p->down;
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&p->down.tcp)) != 0) {
    close_pair(p);
    return;
  }
  uv_tcp_nodelay(&p->down.tcp, 1);
  p->connect.data = p;
  int rc = uv_tcp_connect(&p->connect, &p->up.tcp, reinterpret_cast<const sockaddr*>(&g_backend),
                          [](uv_connect_t* req, int status) {
                            auto* pair = static_cast<Pair*>(req->data);
                            if (status < 0 || pair->closing) {
                              close_pair(pair);
                              return;
                            }
                            uv_tcp_nodelay(&pair->up.tcp, 1);
                            start_reading(&pair->down);
                            start_reading(&pair->up);
                          });
  if (rc != 0) close_pair(p);
}

}  // namespace

int main(int argc, char** argv) {
  sockaddr_in listen_addr{};
  bool have_listen = false, have_backend = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string_view flag = argv[i];
    if (flag == "--listen") {
      listen_addr = parse_address(flag, argv[i + 1]);
      have_listen = true;
    } else if (flag == "--backend") {
      g_backend = parse_address(flag, argv[i + 1]);
      have_backend = true;
    } else {
      die("unknown flag " + std::string(flag));
    }
  }
  if (!have_listen || !have_backend || argc % 2 == 0) {
    die("usage: bench_relay --listen HOST:PORT --backend HOST:PORT");
  }
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGTERM, [](int) { std::_Exit(0); });
  std::signal(SIGINT, [](int) { std::_Exit(0); });

  uv_loop_t* loop = uv_default_loop();
  uv_tcp_t listener;
  uv_tcp_init(loop, &listener);
  if (int rc = uv_tcp_bind(&listener, reinterpret_cast<const sockaddr*>(&listen_addr), 0);
      rc != 0) {
    die(std::string("bind: ") + uv_strerror(rc));
  }
  if (int rc = uv_listen(reinterpret_cast<uv_stream_t*>(&listener), 1024, on_connection); rc != 0) {
    die(std::string("listen: ") + uv_strerror(rc));
  }
  sockaddr_in bound{};
  int len = sizeof bound;
  uv_tcp_getsockname(&listener, reinterpret_cast<sockaddr*>(&bound), &len);
  char host[INET_ADDRSTRLEN] = "?";
  uv_ip4_name(&bound, host, sizeof host);
  std::printf("listening on %s:%d\n", host, ntohs(bound.sin_port));
  std::fflush(stdout);
  return uv_run(loop, UV_RUN_DEFAULT);
}
