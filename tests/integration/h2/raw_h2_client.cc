// Blocking HTTP/2 test clients: poll()-bounded socket I/O, a raw frame codec, and a thin
// driver around nghttp2's client session (Debian 1.52: the ssize_t callback API).
#include "raw_h2_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sstream>

namespace skiff::it::h2 {
namespace {

// Milliseconds left until |deadline|, rounded up, never negative (poll's timeout).
int ms_until(Clock::time_point deadline) {
  auto left = std::chrono::ceil<Millis>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 60'000));
}

// HPACK integer with an |prefix|-bit prefix (RFC 7541 §5.1); |first| holds the pattern bits.
void put_int(std::string& out, uint8_t first, int prefix, size_t value) {
  const size_t max = (size_t{1} << prefix) - 1;
  if (value < max) {
    out.push_back(static_cast<char>(first | value));
    return;
  }
  out.push_back(static_cast<char>(first | max));
  value -= max;
  while (value >= 128) {
    out.push_back(static_cast<char>((value % 128) | 128));
    value /= 128;
  }
  out.push_back(static_cast<char>(value));
}

void put_u32(std::string& out, uint32_t v) {
  out.push_back(static_cast<char>(v >> 24));
  out.push_back(static_cast<char>(v >> 16));
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v));
}

uint32_t get_u32(std::string_view s, size_t at) {
  auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(s[at + i])); };
  return (b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3);
}

std::string_view frame_type_name(uint8_t type) {
  switch (type) {
    case NGHTTP2_DATA:
      return "DATA";
    case NGHTTP2_HEADERS:
      return "HEADERS";
    case NGHTTP2_PRIORITY:
      return "PRIORITY";
    case NGHTTP2_RST_STREAM:
      return "RST_STREAM";
    case NGHTTP2_SETTINGS:
      return "SETTINGS";
    case NGHTTP2_PUSH_PROMISE:
      return "PUSH_PROMISE";
    case NGHTTP2_PING:
      return "PING";
    case NGHTTP2_GOAWAY:
      return "GOAWAY";
    case NGHTTP2_WINDOW_UPDATE:
      return "WINDOW_UPDATE";
    case NGHTTP2_CONTINUATION:
      return "CONTINUATION";
  }
  return "UNKNOWN";
}

// Decodes one complete header block; nullopt if HPACK decoding fails.
std::optional<HeaderList> inflate(nghttp2_hd_inflater* inflater, std::string_view block) {
  HeaderList out;
  auto* in = reinterpret_cast<uint8_t*>(const_cast<char*>(block.data()));
  size_t left = block.size();
  for (;;) {
    nghttp2_nv nv;
    int flags = 0;
    ssize_t rv = nghttp2_hd_inflate_hd2(inflater, &nv, &flags, in, left, /*in_final=*/1);
    if (rv < 0) return std::nullopt;
    in += rv;
    left -= static_cast<size_t>(rv);
    if (flags & NGHTTP2_HD_INFLATE_EMIT) {
      out.push_back(Header{std::string(reinterpret_cast<char*>(nv.name), nv.namelen),
                           std::string(reinterpret_cast<char*>(nv.value), nv.valuelen)});
    }
    if (flags & NGHTTP2_HD_INFLATE_FINAL) {
      nghttp2_hd_inflate_end_headers(inflater);
      return out;
    }
    if ((flags & NGHTTP2_HD_INFLATE_EMIT) == 0 && left == 0) return std::nullopt;
  }
}

}  // namespace

std::optional<std::string> find_header(const HeaderList& headers, std::string_view name) {
  for (const Header& h : headers) {
    if (h.name == name) return h.value;
  }
  return std::nullopt;
}

std::string to_string(const HeaderList& headers) {
  std::string out;
  for (const Header& h : headers) {
    if (!out.empty()) out += ", ";
    out += h.name + ": " + (h.value.size() > 80 ? h.value.substr(0, 80) + "..." : h.value);
  }
  return out;
}

HeaderList grpc_request_headers(std::string_view path, const HeaderList& extra) {
  HeaderList h = {{":method", "POST"},
                  {":scheme", "http"},
                  {":authority", "skiff.test"},
                  {":path", std::string(path)},
                  {"content-type", "application/grpc"},
                  {"te", "trailers"}};
  h.insert(h.end(), extra.begin(), extra.end());
  return h;
}

std::string grpc_message(std::string_view message, uint8_t flag) {
  std::string out;
  out.push_back(static_cast<char>(flag));
  put_u32(out, static_cast<uint32_t>(message.size()));
  out.append(message);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Socket

Socket::Socket(int port, int rcvbuf) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error_ = std::string("socket: ") + std::strerror(errno);
    return;
  }
  if (rcvbuf > 0) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // Loopback connect completes (or is refused) at once; only then go non-blocking.
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    error_ = "connect to 127.0.0.1:" + std::to_string(port) + ": " + std::strerror(errno);
    ::close(fd);
    return;
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  fd_ = fd;
}

Socket::~Socket() {
  if (fd_ >= 0) ::close(fd_);
}

std::string_view to_string(Socket::Io io) {
  switch (io) {
    case Socket::Io::kOk:
      return "ok";
    case Socket::Io::kTimeout:
      return "timeout";
    case Socket::Io::kClosed:
      return "closed";
  }
  return "?";
}

Socket::Io Socket::read_available(std::string& into) {
  char buf[64 * 1024];
  ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
  if (n > 0) {
    into.append(buf, static_cast<size_t>(n));
    return Io::kOk;
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return Io::kOk;
  if (n < 0) error_ = std::string("recv: ") + std::strerror(errno);
  eof_ = true;
  return Io::kClosed;
}

Socket::Io Socket::write_all(std::string_view bytes, Clock::time_point deadline,
                             std::string* inbound) {
  if (fd_ < 0) return Io::kClosed;
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      error_ = std::string("send: ") + std::strerror(errno);
      return Io::kClosed;  // EPIPE, ECONNRESET: the peer is gone
    }
    pollfd p{fd_, static_cast<short>(POLLOUT | (inbound != nullptr && !eof_ ? POLLIN : 0)), 0};
    int rv = ::poll(&p, 1, ms_until(deadline));
    if (rv < 0 && errno == EINTR) continue;
    if (rv == 0) return Io::kTimeout;
    if ((p.revents & POLLIN) && inbound != nullptr) (void)read_available(*inbound);
    if (p.revents & (POLLERR | POLLHUP)) {
      // Try the send once more: it reports the precise error.
      continue;
    }
  }
  return Io::kOk;
}

Socket::Io Socket::read_some(std::string& into, Clock::time_point deadline) {
  if (fd_ < 0 || eof_) return Io::kClosed;
  for (;;) {
    pollfd p{fd_, POLLIN, 0};
    int rv = ::poll(&p, 1, ms_until(deadline));
    if (rv < 0 && errno == EINTR) continue;
    if (rv == 0) return Io::kTimeout;
    size_t before = into.size();
    Io io = read_available(into);
    if (io != Io::kOk || into.size() > before) return io;
    if (Clock::now() >= deadline) return Io::kTimeout;
  }
}

// ---------------------------------------------------------------------------------------------
// Frames

uint32_t Frame::error_code() const {
  if (type == NGHTTP2_RST_STREAM && payload.size() >= 4) return get_u32(payload, 0);
  if (type == NGHTTP2_GOAWAY && payload.size() >= 8) return get_u32(payload, 4);
  return 0;
}

int32_t Frame::last_stream_id() const {
  if (type != NGHTTP2_GOAWAY || payload.size() < 8) return -1;
  return static_cast<int32_t>(get_u32(payload, 0) & 0x7fffffff);
}

std::string describe(const Frame& f) {
  std::ostringstream os;
  os << frame_type_name(f.type) << "[" << f.stream_id << "]";
  switch (f.type) {
    case NGHTTP2_RST_STREAM:
      os << "(" << nghttp2_http2_strerror(f.error_code()) << ")";
      break;
    case NGHTTP2_GOAWAY:
      os << "(last_stream_id=" << f.last_stream_id() << ", "
         << nghttp2_http2_strerror(f.error_code());
      if (f.payload.size() > 8) os << ", \"" << f.payload.substr(8) << "\"";
      os << ")";
      break;
    case NGHTTP2_HEADERS:
      os << " {" << to_string(f.headers) << "}";
      break;
    case NGHTTP2_DATA:
      os << " " << f.payload.size() << " bytes";
      break;
    default:
      break;
  }
  if (f.type == NGHTTP2_SETTINGS || f.type == NGHTTP2_PING) {
    if (f.has(NGHTTP2_FLAG_ACK)) os << " ACK";
  } else if (f.has(NGHTTP2_FLAG_END_STREAM)) {
    os << " END_STREAM";
  }
  return os.str();
}

std::string frame_bytes(uint8_t type, uint8_t flags, int32_t stream_id, std::string_view payload) {
  std::string f;
  f.reserve(9 + payload.size());
  const size_t n = payload.size();
  f.push_back(static_cast<char>(n >> 16));
  f.push_back(static_cast<char>(n >> 8));
  f.push_back(static_cast<char>(n));
  f.push_back(static_cast<char>(type));
  f.push_back(static_cast<char>(flags));
  put_u32(f, static_cast<uint32_t>(stream_id) & 0x7fffffff);
  f.append(payload);
  return f;
}

std::string hpack_literals(const HeaderList& headers) {
  std::string out;
  for (const Header& h : headers) {
    // 0001 0000: literal never indexed, new name (RFC 7541 §6.2.3); strings without Huffman.
    put_int(out, 0x10, 4, 0);
    put_int(out, 0x00, 7, h.name.size());
    out += h.name;
    put_int(out, 0x00, 7, h.value.size());
    out += h.value;
  }
  return out;
}

std::string hpack_indexed(size_t index) {
  std::string out;
  put_int(out, 0x80, 7, index);
  return out;
}

std::string hpack_literal_indexed(const Header& h) {
  std::string out;
  put_int(out, 0x40, 6, 0);  // 01 000000: literal with incremental indexing, new name
  put_int(out, 0x00, 7, h.name.size());
  out += h.name;
  put_int(out, 0x00, 7, h.value.size());
  out += h.value;
  return out;
}

std::string settings_frame(const std::vector<std::pair<uint16_t, uint32_t>>& entries) {
  std::string payload;
  for (auto [id, value] : entries) {
    payload.push_back(static_cast<char>(id >> 8));
    payload.push_back(static_cast<char>(id));
    put_u32(payload, value);
  }
  return frame_bytes(NGHTTP2_SETTINGS, NGHTTP2_FLAG_NONE, 0, payload);
}

std::string settings_ack_frame() { return frame_bytes(NGHTTP2_SETTINGS, NGHTTP2_FLAG_ACK, 0, ""); }

std::string headers_frame(int32_t stream_id, const HeaderList& headers, uint8_t flags) {
  return frame_bytes(NGHTTP2_HEADERS, flags, stream_id, hpack_literals(headers));
}

std::string continuation_frame(int32_t stream_id, std::string_view fragment, uint8_t flags) {
  return frame_bytes(NGHTTP2_CONTINUATION, flags, stream_id, fragment);
}

std::string data_frame(int32_t stream_id, std::string_view data, uint8_t flags) {
  return frame_bytes(NGHTTP2_DATA, flags, stream_id, data);
}

std::string rst_stream_frame(int32_t stream_id, uint32_t error_code) {
  std::string payload;
  put_u32(payload, error_code);
  return frame_bytes(NGHTTP2_RST_STREAM, NGHTTP2_FLAG_NONE, stream_id, payload);
}

std::string ping_frame(uint64_t opaque, bool ack) {
  std::string payload;
  put_u32(payload, static_cast<uint32_t>(opaque >> 32));
  put_u32(payload, static_cast<uint32_t>(opaque));
  return frame_bytes(NGHTTP2_PING, ack ? NGHTTP2_FLAG_ACK : NGHTTP2_FLAG_NONE, 0, payload);
}

std::string window_update_frame(int32_t stream_id, uint32_t increment) {
  std::string payload;
  put_u32(payload, increment & 0x7fffffff);
  return frame_bytes(NGHTTP2_WINDOW_UPDATE, NGHTTP2_FLAG_NONE, stream_id, payload);
}

// ---------------------------------------------------------------------------------------------
// RawH2Client

RawH2Client::RawH2Client(int port, int rcvbuf) : socket_(port, rcvbuf) {
  if (!socket_.connected()) error_ = socket_.error();
  nghttp2_hd_inflate_new(&inflater_);
}

RawH2Client::~RawH2Client() { nghttp2_hd_inflate_del(inflater_); }

Socket::Io RawH2Client::send(std::string_view bytes, Millis timeout, bool drain_input) {
  if (bytes.starts_with(kClientPreface)) preface_sent_ = true;
  return socket_.write_all(bytes, Clock::now() + timeout, drain_input ? &in_ : nullptr);
}

std::string RawH2Client::handshake(Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  std::string hello = std::string(kClientPreface) + settings_frame();
  preface_sent_ = true;
  if (Socket::Io io = socket_.write_all(hello, deadline, &in_); io != Socket::Io::kOk) {
    return "writing the preface: " + std::string(to_string(io)) + " " + socket_.error();
  }
  bool got_settings = false;
  bool got_ack = false;
  while (!(got_settings && got_ack)) {
    std::optional<Frame> f = next_frame(deadline);
    if (!f) {
      return std::string(closed() ? "connection closed" : "timeout") +
             " before the SETTINGS exchange finished " + error_;
    }
    if (f->type != NGHTTP2_SETTINGS) continue;
    (f->has(NGHTTP2_FLAG_ACK) ? got_ack : got_settings) = true;
  }
  return {};
}

bool RawH2Client::parse_one(Frame& out) {
  for (;;) {
    if (in_.size() < 9) return false;
    const size_t len = (size_t{static_cast<uint8_t>(in_[0])} << 16) |
                       (size_t{static_cast<uint8_t>(in_[1])} << 8) | static_cast<uint8_t>(in_[2]);
    if (in_.size() < 9 + len) return false;
    Frame f;
    f.type = static_cast<uint8_t>(in_[3]);
    f.flags = static_cast<uint8_t>(in_[4]);
    f.stream_id = static_cast<int32_t>(get_u32(in_, 5) & 0x7fffffff);
    f.payload = in_.substr(9, len);
    in_.erase(0, 9 + len);

    if (f.type == NGHTTP2_HEADERS) {
      // Strip padding and priority: only the header block fragment is kept.
      size_t start = 0;
      size_t end = f.payload.size();
      if (f.has(NGHTTP2_FLAG_PADDED) && !f.payload.empty()) {
        start = 1;
        end -= std::min<size_t>(end, static_cast<uint8_t>(f.payload[0]));
      }
      if (f.has(NGHTTP2_FLAG_PRIORITY)) start += 5;
      f.payload = start <= end ? f.payload.substr(start, end - start) : std::string();
      if (!f.has(NGHTTP2_FLAG_END_HEADERS)) {
        pending_headers_ = std::move(f);
        continue;
      }
    } else if (f.type == NGHTTP2_CONTINUATION && pending_headers_) {
      pending_headers_->payload += f.payload;
      if (!f.has(NGHTTP2_FLAG_END_HEADERS)) continue;
      f = std::move(*pending_headers_);
      pending_headers_.reset();
      f.flags |= NGHTTP2_FLAG_END_HEADERS;
    }
    if (f.type == NGHTTP2_HEADERS) {
      std::optional<HeaderList> headers = inflate(inflater_, f.payload);
      if (!headers) {
        error_ = "HPACK decoding failed on " + describe(f);
      } else {
        f.headers = std::move(*headers);
      }
    }
    out = std::move(f);
    return true;
  }
}

std::optional<Frame> RawH2Client::next_frame(Clock::time_point deadline) {
  Frame f;
  while (!parse_one(f)) {
    if (socket_.eof()) return std::nullopt;
    if (socket_.read_some(in_, deadline) == Socket::Io::kTimeout) return std::nullopt;
  }
  if (auto_ack_ && preface_sent_ && f.type == NGHTTP2_SETTINGS && !f.has(NGHTTP2_FLAG_ACK)) {
    (void)socket_.write_all(settings_ack_frame(), deadline, &in_);
  }
  frames_.push_back(f);
  return f;
}

std::optional<Frame> RawH2Client::wait_for(const std::function<bool(const Frame&)>& pred,
                                           Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  while (std::optional<Frame> f = next_frame(deadline)) {
    if (pred(*f)) return f;
  }
  return std::nullopt;
}

bool RawH2Client::wait_closed(Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  while (next_frame(deadline)) {
  }
  return socket_.eof();
}

std::optional<Frame> RawH2Client::goaway() const {
  for (const Frame& f : frames_) {
    if (f.type == NGHTTP2_GOAWAY) return f;
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// StreamResult

bool StreamResult::trailers_only() const {
  return header_blocks.size() == 1 && (header_block_flags[0] & NGHTTP2_FLAG_END_STREAM) &&
         data_frames == 0;
}

std::optional<std::string> StreamResult::header(std::string_view name) const {
  if (header_blocks.empty()) return std::nullopt;
  return find_header(header_blocks.front(), name);
}

std::optional<std::string> StreamResult::trailer(std::string_view name) const {
  if (header_blocks.empty()) return std::nullopt;
  if (header_blocks.size() == 1 && !trailers_only()) return std::nullopt;
  return find_header(header_blocks.back(), name);
}

std::optional<int> StreamResult::grpc_status() const {
  std::optional<std::string> s = trailer("grpc-status");
  if (!s || s->empty() || s->size() > 3) return std::nullopt;
  int v = 0;
  for (char c : *s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

std::string StreamResult::describe() const {
  std::ostringstream os;
  os << "stream " << id << ":";
  for (size_t i = 0; i < header_blocks.size(); ++i) {
    os << " HEADERS" << ((header_block_flags[i] & NGHTTP2_FLAG_END_STREAM) ? "+END_STREAM" : "")
       << " {" << to_string(header_blocks[i]) << "}";
  }
  if (data_frames > 0) os << " DATA x" << data_frames << " (" << body.size() << " bytes)";
  if (reset_code) os << " RST_STREAM(" << nghttp2_http2_strerror(*reset_code) << ")";
  os << (closed ? " closed(" + std::string(nghttp2_http2_strerror(close_code)) + ")"
                : " not closed");
  return os.str();
}

// ---------------------------------------------------------------------------------------------
// H2Client

H2Client::H2Client(int port) : socket_(port) {
  if (!socket_.connected()) {
    error_ = socket_.error();
    connection_closed_ = true;
  }
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_send_callback(cbs, &H2Client::on_send);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, &H2Client::on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, &H2Client::on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &H2Client::on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &H2Client::on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &H2Client::on_stream_close);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  // Oversized header lists are the point of some tests; nghttp2's default cap is 64 KiB.
  nghttp2_option_set_max_send_header_block_length(opt, 1 << 20);
  nghttp2_session_client_new2(&ng_, cbs, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  nghttp2_submit_settings(ng_, NGHTTP2_FLAG_NONE, nullptr, 0);
}

H2Client::~H2Client() { nghttp2_session_del(ng_); }

int32_t H2Client::submit(const HeaderList& headers, std::optional<std::string> body) {
  std::vector<nghttp2_nv> nva;
  for (const Header& h : headers) {
    nva.push_back(nghttp2_nv{const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(h.name.data())),
                             const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(h.value.data())),
                             h.name.size(), h.value.size(), NGHTTP2_NV_FLAG_NONE});
  }
  nghttp2_data_provider provider{};
  provider.read_callback = &H2Client::on_read_body;
  int32_t id = nghttp2_submit_request(ng_, nullptr, nva.data(), nva.size(),
                                      body ? &provider : nullptr, nullptr);
  if (id > 0) {
    streams_[id].id = id;
    if (body) bodies_[id].body = std::move(*body);
  }
  return id;
}

bool H2Client::wait_closed(int32_t stream_id, Millis timeout) {
  return pump([&] { return streams_[stream_id].closed; }, Clock::now() + timeout);
}

StreamResult H2Client::call(const HeaderList& headers, std::optional<std::string> body,
                            Millis timeout) {
  int32_t id = submit(headers, std::move(body));
  if (id < 0) {
    error_ = std::string("submit: ") + nghttp2_strerror(id);
    return StreamResult{};
  }
  wait_closed(id, timeout);
  return streams_[id];
}

bool H2Client::feed() {
  if (in_.empty()) return true;
  ssize_t rv =
      nghttp2_session_mem_recv(ng_, reinterpret_cast<const uint8_t*>(in_.data()), in_.size());
  in_.clear();
  if (rv < 0) {
    error_ = std::string("nghttp2_session_mem_recv: ") + nghttp2_strerror(static_cast<int>(rv));
    connection_closed_ = true;
    return false;
  }
  return true;
}

bool H2Client::pump(const std::function<bool()>& done, Clock::time_point deadline) {
  while (!done()) {
    if (connection_closed_) {
      if (error_.empty()) error_ = "connection closed";
      return false;
    }
    if (int rv = nghttp2_session_send(ng_); rv != 0) {
      error_ = std::string("nghttp2_session_send: ") + nghttp2_strerror(rv);
      return false;
    }
    if (!out_.empty()) {
      Socket::Io io = socket_.write_all(out_, deadline, &in_);
      out_.clear();
      if (io == Socket::Io::kTimeout) {
        error_ = "timeout writing";
        return false;
      }
      if (io == Socket::Io::kClosed) {
        // What skiff sent before closing (a GOAWAY, a reply) is still worth decoding.
        feed();
        connection_closed_ = true;
        error_ = "connection closed while writing: " + socket_.error();
        continue;
      }
    }
    if (!in_.empty()) {
      feed();
      continue;
    }
    if (done()) break;
    Socket::Io io = socket_.read_some(in_, deadline);
    if (io == Socket::Io::kTimeout) {
      error_ = "timeout";
      return false;
    }
    feed();
    if (io == Socket::Io::kClosed) {
      connection_closed_ = true;
      if (error_.empty()) error_ = "connection closed";
    }
  }
  return true;
}

ssize_t H2Client::on_send(nghttp2_session*, const uint8_t* data, size_t len, int, void* user) {
  static_cast<H2Client*>(user)->out_.append(reinterpret_cast<const char*>(data), len);
  return static_cast<ssize_t>(len);
}

int H2Client::on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<H2Client*>(user);
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  StreamResult& s = self->streams_[frame->hd.stream_id];
  s.id = frame->hd.stream_id;
  s.header_blocks.emplace_back();
  s.header_block_flags.push_back(frame->hd.flags);
  return 0;
}

int H2Client::on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                        size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                        void* user) {
  auto* self = static_cast<H2Client*>(user);
  StreamResult& s = self->streams_[frame->hd.stream_id];
  if (s.header_blocks.empty()) return 0;
  s.header_blocks.back().push_back(
      Header{std::string(reinterpret_cast<const char*>(name), namelen),
             std::string(reinterpret_cast<const char*>(value), valuelen)});
  return 0;
}

int H2Client::on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<H2Client*>(user);
  switch (frame->hd.type) {
    case NGHTTP2_HEADERS: {
      StreamResult& s = self->streams_[frame->hd.stream_id];
      if (!s.header_block_flags.empty()) s.header_block_flags.back() = frame->hd.flags;
      break;
    }
    case NGHTTP2_DATA:
      ++self->streams_[frame->hd.stream_id].data_frames;
      break;
    case NGHTTP2_RST_STREAM:
      self->streams_[frame->hd.stream_id].reset_code = frame->rst_stream.error_code;
      break;
    case NGHTTP2_GOAWAY:
      if (!self->goaway_error_) self->goaway_error_ = frame->goaway.error_code;
      break;
    default:
      break;
  }
  return 0;
}

int H2Client::on_data_chunk(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data,
                            size_t len, void* user) {
  auto* self = static_cast<H2Client*>(user);
  self->streams_[stream_id].body.append(reinterpret_cast<const char*>(data), len);
  return 0;
}

int H2Client::on_stream_close(nghttp2_session*, int32_t stream_id, uint32_t error_code,
                              void* user) {
  auto* self = static_cast<H2Client*>(user);
  StreamResult& s = self->streams_[stream_id];
  s.id = stream_id;
  s.closed = true;
  s.close_code = error_code;
  self->bodies_.erase(stream_id);
  return 0;
}

ssize_t H2Client::on_read_body(nghttp2_session*, int32_t stream_id, uint8_t* buf, size_t length,
                               uint32_t* flags, nghttp2_data_source*, void* user) {
  auto* self = static_cast<H2Client*>(user);
  auto it = self->bodies_.find(stream_id);
  if (it == self->bodies_.end()) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    return 0;
  }
  Pending& p = it->second;
  size_t n = std::min(length, p.body.size() - p.offset);
  std::memcpy(buf, p.body.data() + p.offset, n);
  p.offset += n;
  if (p.offset == p.body.size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
  return static_cast<ssize_t>(n);
}

}  // namespace skiff::it::h2
