// RefusingUpstream: nghttp2's server session (Debian 1.52: the ssize_t callback API) fed by
// nghttp2_session_mem_recv and drained through its send callback, from one poll() loop. All state
// is guarded by one mutex, held while the loop processes what poll() reported (nghttp2's callbacks
// run under it), never across poll().
#include "refusing_upstream.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

namespace skiff::it::h2 {

struct RefusingUpstream::State {
  // One accepted connection.
  struct Conn {
    State* state = nullptr;
    int index = 0;
    int fd = -1;
    nghttp2_session* ng = nullptr;
    std::string out;                            // bytes nghttp2 produced, not yet written
    bool write_shut = false;                    // the session is done: FIN sent, draining
    std::map<int32_t, size_t> streams;          // stream id -> index in State::streams
    std::map<int32_t, std::string> responses;   // stream id -> answer DATA left to send
    std::optional<int32_t> goaway_last_stream;  // our GOAWAY's last-stream-id, once submitted

    ~Conn() {
      if (ng != nullptr) nghttp2_session_del(ng);
      if (fd >= 0) ::close(fd);
    }
  };

  explicit State(RefusingUpstreamOptions o) : options(std::move(o)) {}

  const RefusingUpstreamOptions options;
  int listen_fd = -1;
  int stop_pipe[2] = {-1, -1};
  int port = 0;
  std::string error;
  std::thread thread;

  mutable std::mutex mu;
  mutable std::condition_variable changed;
  RefusingUpstreamStats stats;
  bool released = false;  // release_answers() was called
  std::vector<UpstreamStream> streams;
  std::vector<std::unique_ptr<Conn>> conns;  // open connections (thread-owned)

  bool start();
  void loop();
  void accept_all();
  // Reads what is available into the session; false when the connection is finished.
  bool read_conn(Conn& c);
  // Serializes the session's frames and writes what the socket takes; false on a write error.
  bool write_conn(Conn& c);
  // Submits the answers that are due (request complete, hold released, below our GOAWAY).
  void answer_due();
  void answer(Conn& c, int32_t stream_id, UpstreamStream& s);
  void refuse(nghttp2_session* ng, int32_t stream_id);

  UpstreamStream* find(Conn& c, int32_t stream_id) {
    auto it = c.streams.find(stream_id);
    return it == c.streams.end() ? nullptr : &streams[it->second];
  }

  static ssize_t on_send(nghttp2_session*, const uint8_t* data, size_t len, int, void* user);
  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                       size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* user);
  static int on_frame_recv(nghttp2_session* ng, const nghttp2_frame* frame, void* user);
  static int on_data_chunk(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data,
                           size_t len, void* user);
  static int on_stream_close(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* user);
  static ssize_t on_read_answer(nghttp2_session* ng, int32_t stream_id, uint8_t* buf, size_t length,
                                uint32_t* flags, nghttp2_data_source*, void* user);
};

namespace {

constexpr int kPollMs = 100;  // the loop wakes at least this often (bounded waits)

nghttp2_nv make_nv(std::string_view name, std::string_view value) {
  return nghttp2_nv{const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(name.data())),
                    const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(value.data())),
                    name.size(), value.size(), NGHTTP2_NV_FLAG_NONE};
}

}  // namespace

std::string_view to_string(UpstreamStream::Fate fate) {
  switch (fate) {
    case UpstreamStream::Fate::kOpen:
      return "open";
    case UpstreamStream::Fate::kRefused:
      return "refused";
    case UpstreamStream::Fate::kAnswered:
      return "answered";
    case UpstreamStream::Fate::kRefusedByGoaway:
      return "refused-by-goaway";
    case UpstreamStream::Fate::kReset:
      return "reset";
  }
  return "?";
}

// ---------------------------------------------------------------------------------------------
// Setup and the loop.

bool RefusingUpstream::State::start() {
  if (::pipe2(stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    error = std::string("pipe2: ") + std::strerror(errno);
    return false;
  }
  listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (listen_fd < 0) {
    error = std::string("socket: ") + std::strerror(errno);
    return false;
  }
  int one = 1;
  ::setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd, 64) != 0 ||
      ::getsockname(listen_fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    error = std::string("listen on 127.0.0.1:0: ") + std::strerror(errno);
    return false;
  }
  port = ntohs(addr.sin_port);
  return true;
}

void RefusingUpstream::State::loop() {
  std::vector<pollfd> fds;
  for (;;) {
    fds.clear();
    fds.push_back({stop_pipe[0], POLLIN, 0});
    fds.push_back({listen_fd, POLLIN, 0});
    {
      std::lock_guard lock(mu);
      for (const auto& c : conns) {
        fds.push_back({c->fd, static_cast<short>(POLLIN | (c->out.empty() ? 0 : POLLOUT)), 0});
      }
    }
    int rv = ::poll(fds.data(), fds.size(), kPollMs);
    if (rv < 0 && errno != EINTR) return;
    if (fds[0].revents != 0) return;  // stop()

    std::lock_guard lock(mu);
    if (fds[1].revents & POLLIN) accept_all();
    // conns may have grown in accept_all; the pollfds cover the first fds.size() - 2.
    std::vector<Conn*> finished;
    for (size_t i = 2; i < fds.size(); ++i) {
      Conn& c = *conns[i - 2];
      if (fds[i].revents == 0) continue;
      if (!read_conn(c)) finished.push_back(&c);
    }
    answer_due();
    for (const auto& c : conns) {
      if (std::find(finished.begin(), finished.end(), c.get()) != finished.end()) continue;
      if (!write_conn(*c)) finished.push_back(c.get());
    }
    for (Conn* done : finished) {
      // Streams still open die with the connection.
      for (auto [id, index] : done->streams) {
        UpstreamStream& s = streams[index];
        if (s.fate == UpstreamStream::Fate::kOpen) s.fate = UpstreamStream::Fate::kReset;
      }
      std::erase_if(conns, [done](const auto& c) { return c.get() == done; });
      ++stats.closed;
    }
    changed.notify_all();
  }
}

void RefusingUpstream::State::accept_all() {
  for (;;) {
    int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN (or a transient error: poll will report it again)
    if (options.close_on_accept) {
      ++stats.connections;
      ++stats.closed;
      ::close(fd);
      continue;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto c = std::make_unique<Conn>();
    c->state = this;
    c->index = stats.connections++;
    c->fd = fd;

    nghttp2_session_callbacks* cbs = nullptr;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_send_callback(cbs, &State::on_send);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, &State::on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, &State::on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &State::on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &State::on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &State::on_stream_close);
    nghttp2_session_server_new(&c->ng, cbs, c.get());
    nghttp2_session_callbacks_del(cbs);
    nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, options.max_concurrent_streams}};
    nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, settings, 1);
    conns.push_back(std::move(c));
    if (options.max_accepts > 0 && stats.connections >= options.max_accepts) {
      ::close(listen_fd);  // poll() skips the negative fd from now on
      listen_fd = -1;
      return;
    }
  }
}

bool RefusingUpstream::State::read_conn(Conn& c) {
  char buf[64 * 1024];
  for (;;) {
    ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
    if (n == 0) return false;  // EOF
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK;
    }
    if (c.write_shut) continue;  // done with HTTP/2 here: drain until the peer closes
    ssize_t rv = nghttp2_session_mem_recv(c.ng, reinterpret_cast<const uint8_t*>(buf),
                                          static_cast<size_t>(n));
    if (rv < 0) return false;  // bad preface or a connection error: drop it
  }
}

bool RefusingUpstream::State::write_conn(Conn& c) {
  if (!c.write_shut && nghttp2_session_send(c.ng) != 0) return false;
  while (!c.out.empty()) {
    ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
    if (n > 0) {
      c.out.erase(0, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;  // POLLOUT next turn
    return false;
  }
  if (!c.write_shut && !nghttp2_session_want_read(c.ng) && !nghttp2_session_want_write(c.ng)) {
    // After our GOAWAY and its last stream: end our side, and read until the peer closes (a
    // close with unread input would reset the connection and could discard our answers).
    ::shutdown(c.fd, SHUT_WR);
    c.write_shut = true;
  }
  return true;
}

void RefusingUpstream::State::answer_due() {
  if (stats.seen < options.hold_answers_until_seen) return;
  if (options.hold_answers && !released) return;
  for (const auto& cp : conns) {
    Conn& c = *cp;
    if (c.write_shut) continue;
    // In stream id order, so a GOAWAY after stream K stops the answers above K.
    for (auto [id, index] : c.streams) {
      UpstreamStream& s = streams[index];
      if (s.fate != UpstreamStream::Fate::kOpen || !s.request_complete) continue;
      if (c.goaway_last_stream && id > *c.goaway_last_stream) continue;
      answer(c, id, s);
    }
  }
}

void RefusingUpstream::State::refuse(nghttp2_session* ng, int32_t stream_id) {
  if (!options.refuse_with_status) {
    nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_REFUSED_STREAM);
    return;
  }
  // nghttp2 copies the header block at submit time.
  const std::string status = std::to_string(*options.refuse_with_status);
  const std::string pushback =
      options.refuse_pushback_ms ? std::to_string(*options.refuse_pushback_ms) : "";
  std::vector<nghttp2_nv> block = {make_nv(":status", "200"),
                                   make_nv("content-type", "application/grpc"),
                                   make_nv("grpc-status", status)};
  if (!pushback.empty()) block.push_back(make_nv("grpc-retry-pushback-ms", pushback));
  if (!options.refuse_skiff_rejected.empty()) {
    block.push_back(make_nv("skiff-rejected", options.refuse_skiff_rejected));
  }
  nghttp2_submit_response(ng, stream_id, block.data(), block.size(), nullptr);
}

void RefusingUpstream::State::answer(Conn& c, int32_t stream_id, UpstreamStream& s) {
  if (!options.interim_status.empty()) {
    nghttp2_nv interim[] = {make_nv(":status", options.interim_status)};
    nghttp2_submit_headers(c.ng, NGHTTP2_FLAG_NONE, stream_id, nullptr, interim, 1, nullptr);
  }
  std::string body;
  std::vector<nghttp2_nv> headers;
  const std::string http_status = options.http_status ? std::to_string(*options.http_status) : "";
  if (options.http_status) {
    body = options.http_body;
    headers.push_back(make_nv(":status", http_status));
    if (!options.http_content_type.empty()) {
      headers.push_back(make_nv("content-type", options.http_content_type));
    }
  } else {
    body.push_back('\0');
    const uint32_t n = options.declared_message_bytes.value_or(
        static_cast<uint32_t>(options.response_message.size()));
    for (int shift : {24, 16, 8, 0}) body.push_back(static_cast<char>(n >> shift));
    body += options.response_message;
    headers = {make_nv(":status", "200"), make_nv("content-type", "application/grpc")};
  }
  const bool with_body = !body.empty();
  c.responses[stream_id] = std::move(body);

  nghttp2_data_provider provider{};
  provider.read_callback = &State::on_read_answer;
  if (nghttp2_submit_response(c.ng, stream_id, headers.data(), headers.size(),
                              with_body ? &provider : nullptr) != 0) {
    c.responses.erase(stream_id);
    return;
  }
  s.fate = UpstreamStream::Fate::kAnswered;
  ++stats.answered;
  if (options.goaway_after_stream && stream_id == *options.goaway_after_stream &&
      !stats.goaway_sent) {
    nghttp2_submit_goaway(c.ng, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_NO_ERROR, nullptr, 0);
    c.goaway_last_stream = stream_id;
    stats.goaway_sent = true;
  }
}

// ---------------------------------------------------------------------------------------------
// nghttp2 callbacks (run under mu, on the server thread).

ssize_t RefusingUpstream::State::on_send(nghttp2_session*, const uint8_t* data, size_t len, int,
                                         void* user) {
  static_cast<Conn*>(user)->out.append(reinterpret_cast<const char*>(data), len);
  return static_cast<ssize_t>(len);
}

int RefusingUpstream::State::on_begin_headers(nghttp2_session*, const nghttp2_frame* frame,
                                              void* user) {
  auto* c = static_cast<Conn*>(user);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  State& st = *c->state;
  UpstreamStream s;
  s.connection = c->index;
  s.id = frame->hd.stream_id;
  c->streams[s.id] = st.streams.size();
  st.streams.push_back(std::move(s));
  ++st.stats.seen;
  return 0;
}

int RefusingUpstream::State::on_header(nghttp2_session*, const nghttp2_frame* frame,
                                       const uint8_t* name, size_t namelen, const uint8_t* value,
                                       size_t valuelen, uint8_t, void* user) {
  auto* c = static_cast<Conn*>(user);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  if (UpstreamStream* s = c->state->find(*c, frame->hd.stream_id)) {
    s->headers.push_back(Header{std::string(reinterpret_cast<const char*>(name), namelen),
                                std::string(reinterpret_cast<const char*>(value), valuelen)});
  }
  return 0;
}

int RefusingUpstream::State::on_frame_recv(nghttp2_session* ng, const nghttp2_frame* frame,
                                           void* user) {
  auto* c = static_cast<Conn*>(user);
  State& st = *c->state;
  if (frame->hd.type == NGHTTP2_SETTINGS && (frame->hd.flags & NGHTTP2_FLAG_ACK)) {
    ++st.stats.settings_acks;
  }
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
  UpstreamStream* s = st.find(*c, frame->hd.stream_id);
  if (s == nullptr) return 0;
  if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) s->request_complete = true;
  const bool refuse_now =
      st.options.refuse_after_request
          ? (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0
          : frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST;
  if (refuse_now && s->fate == UpstreamStream::Fate::kOpen &&
      st.stats.refused < st.options.refuse_first) {
    st.refuse(ng, s->id);
    s->fate = UpstreamStream::Fate::kRefused;
    ++st.stats.refused;
  }
  return 0;
}

int RefusingUpstream::State::on_data_chunk(nghttp2_session*, uint8_t, int32_t stream_id,
                                           const uint8_t* data, size_t len, void* user) {
  auto* c = static_cast<Conn*>(user);
  if (UpstreamStream* s = c->state->find(*c, stream_id)) {
    s->body.append(reinterpret_cast<const char*>(data), len);
  }
  return 0;
}

int RefusingUpstream::State::on_stream_close(nghttp2_session*, int32_t stream_id,
                                             uint32_t error_code, void* user) {
  auto* c = static_cast<Conn*>(user);
  State& st = *c->state;
  c->responses.erase(stream_id);
  UpstreamStream* s = st.find(*c, stream_id);
  if (s == nullptr) return 0;
  s->close_code = error_code;
  if (s->fate == UpstreamStream::Fate::kOpen) {
    if (c->goaway_last_stream && stream_id > *c->goaway_last_stream &&
        error_code == NGHTTP2_REFUSED_STREAM) {
      s->fate = UpstreamStream::Fate::kRefusedByGoaway;
      ++st.stats.refused_by_goaway;
    } else {
      s->fate = UpstreamStream::Fate::kReset;
    }
  }
  return 0;
}

ssize_t RefusingUpstream::State::on_read_answer(nghttp2_session* ng, int32_t stream_id,
                                                uint8_t* buf, size_t length, uint32_t* flags,
                                                nghttp2_data_source*, void* user) {
  auto* c = static_cast<Conn*>(user);
  std::string& left = c->responses[stream_id];
  const size_t n = std::min(length, left.size());
  std::memcpy(buf, left.data(), n);
  left.erase(0, n);
  if (left.empty()) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    const RefusingUpstreamOptions& options = c->state->options;
    if (options.omit_trailers || options.http_status) return static_cast<ssize_t>(n);
    // The message is out: end the DATA without END_STREAM, the trailers end the stream.
    *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    nghttp2_nv trailers[] = {make_nv("grpc-status", "0")};
    if (nghttp2_submit_trailer(ng, stream_id, trailers, 1) != 0) {
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // resets the stream
    }
  }
  return static_cast<ssize_t>(n);
}

// ---------------------------------------------------------------------------------------------
// RefusingUpstream

RefusingUpstream::RefusingUpstream(RefusingUpstreamOptions options)
    : state_(std::make_unique<State>(std::move(options))) {
  if (!state_->start()) {
    state_->port = 0;
    return;
  }
  state_->thread = std::thread([s = state_.get()] { s->loop(); });
}

RefusingUpstream::~RefusingUpstream() {
  stop();
  for (int fd : state_->stop_pipe) {
    if (fd >= 0) ::close(fd);
  }
}

int RefusingUpstream::port() const { return state_->port; }
const std::string& RefusingUpstream::error() const { return state_->error; }

void RefusingUpstream::stop() {
  if (state_->thread.joinable()) {
    char byte = 1;
    while (::write(state_->stop_pipe[1], &byte, 1) < 0 && errno == EINTR) {
    }
    state_->thread.join();
  }
  std::lock_guard lock(state_->mu);
  state_->conns.clear();
  if (state_->listen_fd >= 0) {
    ::close(state_->listen_fd);
    state_->listen_fd = -1;
  }
}

void RefusingUpstream::release_answers() {
  std::lock_guard lock(state_->mu);
  state_->released = true;
}

RefusingUpstreamStats RefusingUpstream::stats() const {
  std::lock_guard lock(state_->mu);
  return state_->stats;
}

std::vector<UpstreamStream> RefusingUpstream::streams() const {
  std::lock_guard lock(state_->mu);
  return state_->streams;
}

bool RefusingUpstream::wait_until(const std::function<bool(const RefusingUpstreamStats&)>& pred,
                                  Millis timeout) const {
  std::unique_lock lock(state_->mu);
  return state_->changed.wait_for(lock, timeout, [&] { return pred(state_->stats); });
}

std::string RefusingUpstream::describe() const {
  std::lock_guard lock(state_->mu);
  std::ostringstream os;
  const RefusingUpstreamStats& st = state_->stats;
  os << st.connections << " connection(s), " << st.seen << " stream(s) seen, " << st.refused
     << " refused, " << st.answered << " answered, " << st.refused_by_goaway << " refused by GOAWAY"
     << (st.goaway_sent ? " (GOAWAY sent)" : "");
  for (const UpstreamStream& s : state_->streams) {
    // The headers skiff sets per attempt; the rest are the client's, the same on every stream.
    HeaderList shown;
    for (const Header& h : s.headers) {
      if (h.name == ":path" || h.name == "grpc-timeout" || h.name == "grpc-previous-rpc-attempts") {
        shown.push_back(h);
      }
    }
    os << "\n  conn " << s.connection << " stream " << s.id << " " << to_string(s.fate) << " {"
       << to_string(shown) << "} " << s.body.size() << " bytes"
       << (s.request_complete ? " END_STREAM" : "");
    if (s.close_code) os << " closed(" << nghttp2_http2_strerror(*s.close_code) << ")";
  }
  return os.str();
}

}  // namespace skiff::it::h2
