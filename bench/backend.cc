// bench_backend: a fast gRPC-shaped HTTP/2 (h2c) server for the benchmarks, on nghttp2 + libuv.
//
// It answers every request (any method, any path) once the request has ended, with
//   HEADERS :status 200, content-type application/grpc
//   DATA    one gRPC message (5-byte prefix + payload)
//   HEADERS grpc-status 0 (trailers)
// The payload size is fixed (--response-bytes N) or mirrors the request's message size (the
// default), so one backend serves every payload size. --delay-ms holds each response back, which
// keeps streams open in the proxy (the 10,000-concurrent-streams scenario).
//
// It is built to never be the bottleneck: N threads (--threads) each run one libuv loop with its
// own SO_REUSEPORT listener, output is produced with nghttp2_session_mem_send into one buffer per
// connection and written with one write per loop turn, stream state comes from a free list, and
// the advertised windows and stream limits are large.
//
// stdout: "listening on HOST:PORT" once every thread listens; then, on each SIGUSR1, one line
//   "stats seq=K requests=R responses=D resets=X open=O peak_open=P conns=C"
// (cumulative counters; peak_open is reset after each report). SIGTERM/SIGINT exit at once.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  int threads = 1;
  int64_t response_bytes = -1;  // -1: mirror the request message size
  int delay_ms = 0;
  uint32_t max_streams = 100000;
  int32_t stream_window = 16 << 20;
  int32_t conn_window = 1 << 30;
};

Options g_opt;

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "bench_backend: %s\n", msg.c_str());
  std::exit(2);
}

int64_t parse_int(std::string_view flag, std::string_view text) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size()) {
    die(std::string(flag) + ": not an integer: " + std::string(text));
  }
  return v;
}

uint64_t now_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

struct Counters {
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> responses{0};
  std::atomic<uint64_t> resets{0};
  std::atomic<int64_t> open{0};
  std::atomic<int64_t> peak_open{0};
  std::atomic<int64_t> conns{0};
};

struct Worker;
struct Conn;

struct Stream {
  int32_t id = 0;
  uint64_t gen = 0;
  uint64_t request_bytes = 0;  // DATA payload bytes received (prefix included)
  uint64_t body_len = 0;       // response body length (prefix included)
  uint64_t sent = 0;
  uint32_t message_len = 0;
  bool responded = false;
  Stream* next_free = nullptr;
};

struct Pending {
  uint64_t conn_id;
  int32_t stream_id;
  uint64_t gen;
  uint64_t due_ms;
};

struct Worker {
  uv_loop_t loop{};
  uv_tcp_t listener{};
  uv_timer_t delay_timer{};
  int fd = -1;
  Counters counters;
  Stream* free_streams = nullptr;
  uint64_t next_gen = 1;
  uint64_t next_conn_id = 1;
  std::unordered_map<uint64_t, Conn*> conns;
  std::deque<Pending> pending;  // FIFO: every entry has the same delay
  bool timer_armed = false;
  char read_buf[64 * 1024];

  Stream* alloc_stream() {
    Stream* s = free_streams;
    if (s != nullptr) {
      free_streams = s->next_free;
      *s = Stream{};
    } else {
      s = new Stream{};
    }
    s->gen = next_gen++;
    return s;
  }
  void free_stream(Stream* s) {
    s->gen = 0;
    s->next_free = free_streams;
    free_streams = s;
  }
  void note_open(int64_t delta) {
    int64_t v = counters.open.fetch_add(delta, std::memory_order_relaxed) + delta;
    if (v > counters.peak_open.load(std::memory_order_relaxed)) {
      counters.peak_open.store(v, std::memory_order_relaxed);
    }
  }
};

std::vector<std::unique_ptr<Worker>> g_workers;

struct Conn {
  uv_tcp_t tcp{};
  Worker* worker = nullptr;
  nghttp2_session* session = nullptr;
  uint64_t id = 0;
  std::vector<uint8_t> out;       // produced, not yet handed to the kernel
  std::vector<uint8_t> inflight;  // owned by an outstanding uv_write
  uv_write_t write_req{};
  bool writing = false;
  bool closing = false;
};

void conn_close(Conn* c);
void conn_flush(Conn* c);

void on_closed(uv_handle_t* h) {
  Conn* c = static_cast<Conn*>(h->data);
  nghttp2_session_del(c->session);  // frees streams via on_stream_close
  delete c;
}

void conn_close(Conn* c) {
  if (c->closing) return;
  c->closing = true;
  c->worker->conns.erase(c->id);
  c->worker->counters.conns.fetch_sub(1, std::memory_order_relaxed);
  uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp), on_closed);
}

void on_written(uv_write_t* req, int status) {
  Conn* c = static_cast<Conn*>(req->data);
  c->writing = false;
  c->inflight.clear();
  if (c->closing) return;
  if (status < 0) {
    conn_close(c);
    return;
  }
  conn_flush(c);
}

// Produces output into c->out (bounded) and writes it: uv_try_write first, then uv_write for the
// rest. While a write is outstanding nothing more is produced (backpressure from the socket).
void conn_flush(Conn* c) {
  constexpr size_t kMaxOut = 256 * 1024;
  while (!c->closing && !c->writing) {
    while (c->out.size() < kMaxOut) {
      const uint8_t* data = nullptr;
      ssize_t n = nghttp2_session_mem_send(c->session, &data);
      if (n < 0) {
        conn_close(c);
        return;
      }
      if (n == 0) break;
      c->out.insert(c->out.end(), data, data + n);
    }
    if (c->out.empty()) {
      if (!nghttp2_session_want_read(c->session) && !nghttp2_session_want_write(c->session)) {
        conn_close(c);
      }
      return;
    }
    uv_buf_t buf =
        uv_buf_init(reinterpret_cast<char*>(c->out.data()), static_cast<unsigned>(c->out.size()));
    int n = uv_try_write(reinterpret_cast<uv_stream_t*>(&c->tcp), &buf, 1);
    if (n == UV_EAGAIN) n = 0;
    if (n < 0) {
      conn_close(c);
      return;
    }
    if (static_cast<size_t>(n) == c->out.size()) {
      c->out.clear();
      continue;  // produce more
    }
    c->inflight.assign(c->out.begin() + n, c->out.end());
    c->out.clear();
    buf = uv_buf_init(reinterpret_cast<char*>(c->inflight.data()),
                      static_cast<unsigned>(c->inflight.size()));
    c->write_req.data = c;
    if (uv_write(&c->write_req, reinterpret_cast<uv_stream_t*>(&c->tcp), &buf, 1, on_written) < 0) {
      conn_close(c);
      return;
    }
    c->writing = true;
  }
}

constexpr char kGrpcStatusName[] = "grpc-status";
constexpr char kGrpcStatusOk[] = "0";

ssize_t read_body(nghttp2_session* session, int32_t stream_id, uint8_t* buf, size_t length,
                  uint32_t* data_flags, nghttp2_data_source* source, void* /*user_data*/) {
  Stream* s = static_cast<Stream*>(source->ptr);
  size_t n = static_cast<size_t>(std::min<uint64_t>(length, s->body_len - s->sent));
  size_t i = 0;
  // 5-byte gRPC prefix: uncompressed flag, big-endian message length.
  const uint8_t prefix[5] = {
      0, static_cast<uint8_t>(s->message_len >> 24), static_cast<uint8_t>(s->message_len >> 16),
      static_cast<uint8_t>(s->message_len >> 8), static_cast<uint8_t>(s->message_len)};
  for (; i < n && s->sent + i < 5; ++i) buf[i] = prefix[s->sent + i];
  if (i < n) std::memset(buf + i, 'x', n - i);
  s->sent += n;
  if (s->sent == s->body_len) {
    *data_flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
    static nghttp2_nv trailers[] = {
        {const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(kGrpcStatusName)),
         const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(kGrpcStatusOk)),
         sizeof(kGrpcStatusName) - 1, sizeof(kGrpcStatusOk) - 1,
         NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE}};
    if (nghttp2_submit_trailer(session, stream_id, trailers, 1) != 0) {
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
  }
  return static_cast<ssize_t>(n);
}

void respond(Conn* c, Stream* s) {
  if (s->responded) return;
  s->responded = true;
  uint64_t msg = g_opt.response_bytes >= 0 ? static_cast<uint64_t>(g_opt.response_bytes)
                                           : (s->request_bytes >= 5 ? s->request_bytes - 5 : 0);
  msg = std::min<uint64_t>(msg, 0xffffffffu - 5);
  s->message_len = static_cast<uint32_t>(msg);
  s->body_len = msg + 5;
  static const char kStatus[] = ":status";
  static const char k200[] = "200";
  static const char kCt[] = "content-type";
  static const char kGrpc[] = "application/grpc";
  auto nv = [](const char* n, size_t nl, const char* v, size_t vl) {
    return nghttp2_nv{const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(n)),
                      const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(v)), nl, vl,
                      NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE};
  };
  nghttp2_nv hdrs[] = {nv(kStatus, 7, k200, 3), nv(kCt, 12, kGrpc, 16)};
  nghttp2_data_provider prd;
  prd.source.ptr = s;
  prd.read_callback = read_body;
  if (nghttp2_submit_response(c->session, s->id, hdrs, 2, &prd) != 0) {
    nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
  }
}

void on_delay_timer(uv_timer_t* t);

void arm_delay_timer(Worker* w) {
  if (w->timer_armed || w->pending.empty()) return;
  uint64_t now = now_ms();
  uint64_t due = w->pending.front().due_ms;
  w->timer_armed = true;
  uv_timer_start(&w->delay_timer, on_delay_timer, due > now ? due - now : 0, 0);
}

void on_delay_timer(uv_timer_t* t) {
  Worker* w = static_cast<Worker*>(t->data);
  w->timer_armed = false;
  uint64_t now = now_ms();
  std::vector<Conn*> touched;
  while (!w->pending.empty() && w->pending.front().due_ms <= now) {
    Pending p = w->pending.front();
    w->pending.pop_front();
    auto it = w->conns.find(p.conn_id);
    if (it == w->conns.end()) continue;
    Conn* c = it->second;
    auto* s = static_cast<Stream*>(nghttp2_session_get_stream_user_data(c->session, p.stream_id));
    if (s == nullptr || s->gen != p.gen) continue;
    respond(c, s);
    if (touched.empty() || touched.back() != c) touched.push_back(c);
  }
  std::sort(touched.begin(), touched.end());
  touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
  for (Conn* c : touched) conn_flush(c);
  arm_delay_timer(w);
}

int on_begin_headers(nghttp2_session* session, const nghttp2_frame* frame, void* user_data) {
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  Conn* c = static_cast<Conn*>(user_data);
  Stream* s = c->worker->alloc_stream();
  s->id = frame->hd.stream_id;
  nghttp2_session_set_stream_user_data(session, s->id, s);
  c->worker->note_open(1);
  return 0;
}

int on_data_chunk(nghttp2_session* session, uint8_t /*flags*/, int32_t stream_id,
                  const uint8_t* /*data*/, size_t len, void* /*user_data*/) {
  auto* s = static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, stream_id));
  if (s != nullptr) s->request_bytes += len;
  return 0;
}

int on_frame_recv(nghttp2_session* session, const nghttp2_frame* frame, void* user_data) {
  if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
      (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0) {
    return 0;
  }
  auto* s =
      static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, frame->hd.stream_id));
  if (s == nullptr) return 0;
  Conn* c = static_cast<Conn*>(user_data);
  c->worker->counters.requests.fetch_add(1, std::memory_order_relaxed);
  if (g_opt.delay_ms > 0) {
    c->worker->pending.push_back(
        Pending{c->id, s->id, s->gen, now_ms() + static_cast<uint64_t>(g_opt.delay_ms)});
    arm_delay_timer(c->worker);
  } else {
    respond(c, s);
  }
  return 0;
}

int on_frame_send(nghttp2_session* /*session*/, const nghttp2_frame* frame, void* user_data) {
  // Our only HEADERS frame with END_STREAM is the trailers: the response is complete.
  if (frame->hd.type == NGHTTP2_HEADERS && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
    static_cast<Conn*>(user_data)->worker->counters.responses.fetch_add(1,
                                                                        std::memory_order_relaxed);
  }
  return 0;
}

int on_stream_close(nghttp2_session* session, int32_t stream_id, uint32_t error_code,
                    void* user_data) {
  Conn* c = static_cast<Conn*>(user_data);
  auto* s = static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, stream_id));
  if (s == nullptr) return 0;
  if (error_code != NGHTTP2_NO_ERROR) {
    c->worker->counters.resets.fetch_add(1, std::memory_order_relaxed);
  }
  nghttp2_session_set_stream_user_data(session, stream_id, nullptr);
  c->worker->free_stream(s);
  c->worker->note_open(-1);
  return 0;
}

nghttp2_session_callbacks* make_callbacks() {
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
  return cbs;
}

nghttp2_session_callbacks* g_callbacks = nullptr;
nghttp2_option* g_session_option = nullptr;

void on_alloc(uv_handle_t* h, size_t /*suggested*/, uv_buf_t* buf) {
  Conn* c = static_cast<Conn*>(h->data);
  *buf = uv_buf_init(c->worker->read_buf, sizeof(c->worker->read_buf));
}

void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  Conn* c = static_cast<Conn*>(stream->data);
  if (nread < 0) {
    conn_close(c);
    return;
  }
  if (nread == 0 || c->closing) return;
  ssize_t rv = nghttp2_session_mem_recv(c->session, reinterpret_cast<const uint8_t*>(buf->base),
                                        static_cast<size_t>(nread));
  if (rv < 0) {
    conn_close(c);
    return;
  }
  conn_flush(c);
}

void on_connection(uv_stream_t* server, int status) {
  if (status < 0) return;
  Worker* w = static_cast<Worker*>(server->data);
  auto* c = new Conn();
  c->worker = w;
  c->id = w->next_conn_id++;
  uv_tcp_init(&w->loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&c->tcp)) != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp),
             [](uv_handle_t* h) { delete static_cast<Conn*>(h->data); });
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  nghttp2_session_server_new2(&c->session, g_callbacks, c, g_session_option);
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, g_opt.max_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(g_opt.stream_window)},
  };
  nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, 2);
  nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0, g_opt.conn_window);
  w->conns.emplace(c->id, c);
  w->counters.conns.fetch_add(1, std::memory_order_relaxed);
  uv_read_start(reinterpret_cast<uv_stream_t*>(&c->tcp), on_alloc, on_read);
  conn_flush(c);
}

int make_listen_socket(const sockaddr_in& addr) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die(std::string("socket: ") + std::strerror(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
    die(std::string("SO_REUSEPORT: ") + std::strerror(errno));
  }
  if (bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    die(std::string("bind: ") + std::strerror(errno));
  }
  return fd;
}

void print_stats() {
  static uint64_t seq = 0;
  uint64_t req = 0, resp = 0, resets = 0;
  int64_t open = 0, peak = 0, conns = 0;
  for (auto& w : g_workers) {
    req += w->counters.requests.load(std::memory_order_relaxed);
    resp += w->counters.responses.load(std::memory_order_relaxed);
    resets += w->counters.resets.load(std::memory_order_relaxed);
    int64_t o = w->counters.open.load(std::memory_order_relaxed);
    open += o;
    peak += w->counters.peak_open.exchange(o, std::memory_order_relaxed);
    conns += w->counters.conns.load(std::memory_order_relaxed);
  }
  std::printf(
      "stats seq=%llu requests=%llu responses=%llu resets=%llu open=%lld peak_open=%lld "
      "conns=%lld\n",
      static_cast<unsigned long long>(++seq), static_cast<unsigned long long>(req),
      static_cast<unsigned long long>(resp), static_cast<unsigned long long>(resets),
      static_cast<long long>(open), static_cast<long long>(peak), static_cast<long long>(conns));
  std::fflush(stdout);
}

void usage() {
  std::fprintf(stderr,
               "usage: bench_backend [--listen HOST:PORT] [--threads N] [--response-bytes N]\n"
               "                     [--delay-ms N] [--max-streams N] [--window-bytes N]\n");
  std::exit(2);
}

void parse_args(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&]() -> std::string_view {
      if (i + 1 >= argc) usage();
      return argv[++i];
    };
    if (a == "--listen") {
      std::string_view v = value();
      auto colon = v.rfind(':');
      if (colon == std::string_view::npos) die("--listen: expected HOST:PORT");
      g_opt.host = std::string(v.substr(0, colon));
      g_opt.port = static_cast<int>(parse_int(a, v.substr(colon + 1)));
    } else if (a == "--threads") {
      g_opt.threads = static_cast<int>(std::clamp<int64_t>(parse_int(a, value()), 1, 64));
    } else if (a == "--response-bytes") {
      g_opt.response_bytes = parse_int(a, value());
    } else if (a == "--delay-ms") {
      g_opt.delay_ms = static_cast<int>(std::clamp<int64_t>(parse_int(a, value()), 0, 60000));
    } else if (a == "--max-streams") {
      g_opt.max_streams =
          static_cast<uint32_t>(std::clamp<int64_t>(parse_int(a, value()), 1, 0x7fffffff));
    } else if (a == "--window-bytes") {
      g_opt.stream_window =
          static_cast<int32_t>(std::clamp<int64_t>(parse_int(a, value()), 65535, 0x7fffffff));
    } else {
      usage();
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  parse_args(argc, argv);
  std::signal(SIGPIPE, SIG_IGN);
  g_callbacks = make_callbacks();
  nghttp2_option_new(&g_session_option);
  // A server session otherwise keeps up to SETTINGS_MAX_CONCURRENT_STREAMS closed streams for
  // the RFC 7540 priority tree: with --max-streams 100000 that is memory growing with every
  // request until the connection closes.
  nghttp2_option_set_no_closed_streams(g_session_option, 1);

  sockaddr_in addr{};
  if (uv_ip4_addr(g_opt.host.c_str(), g_opt.port, &addr) != 0) die("bad --listen host");
  // Bind every thread's socket to the same port; the first one picks it when port is 0.
  for (int i = 0; i < g_opt.threads; ++i) {
    auto w = std::make_unique<Worker>();
    w->fd = make_listen_socket(addr);
    if (i == 0) {
      socklen_t len = sizeof(addr);
      getsockname(w->fd, reinterpret_cast<sockaddr*>(&addr), &len);
    }
    uv_loop_init(&w->loop);
    uv_tcp_init(&w->loop, &w->listener);
    w->listener.data = w.get();
    uv_timer_init(&w->loop, &w->delay_timer);
    w->delay_timer.data = w.get();
    if (uv_tcp_open(&w->listener, w->fd) != 0) die("uv_tcp_open failed");
    int rc = uv_listen(reinterpret_cast<uv_stream_t*>(&w->listener), 4096, on_connection);
    if (rc != 0) die(std::string("listen: ") + uv_strerror(rc));
    g_workers.push_back(std::move(w));
  }

  // Signals are handled by the main thread; workers block them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  std::vector<std::thread> threads;
  for (auto& w : g_workers) {
    Worker* wp = w.get();
    threads.emplace_back([wp] { uv_run(&wp->loop, UV_RUN_DEFAULT); });
  }
  char host[64];
  inet_ntop(AF_INET, &addr.sin_addr, host, sizeof(host));
  std::printf("listening on %s:%d\n", host, ntohs(addr.sin_port));
  std::fflush(stdout);

  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (sig == SIGUSR1) {
      print_stats();
    } else {
      print_stats();
      std::_Exit(0);
    }
  }
}
