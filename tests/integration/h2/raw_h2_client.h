// Blocking, deadline-bounded HTTP/2 clients for frame-level tests of skiff over loopback TCP:
// H2Client drives nghttp2's client session (well-formed framing, any header values), and
// RawH2Client writes and reads frames byte by byte for what nghttp2 refuses to send (invalid
// frames, floods), after nghttpx's integration-tests/server_tester.go.
#pragma once

#include <nghttp2/nghttp2.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace skiff::it::h2 {

using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

// How long any single wait may take: "eventually" on a loaded 2-core box. Passing waits return
// as soon as what they wait for is observed, so this bounds only failures.
inline constexpr Millis kWaitTimeout{5'000};

struct Header {
  std::string name;
  std::string value;
};
using HeaderList = std::vector<Header>;

// The first value of |name|, if any.
std::optional<std::string> find_header(const HeaderList& headers, std::string_view name);
// "name: value, name: value", for assertion messages.
std::string to_string(const HeaderList& headers);

// The request headers of a gRPC call to |path| (POST, http, content-type application/grpc,
// te: trailers), then |extra| in order.
HeaderList grpc_request_headers(std::string_view path, const HeaderList& extra = {});
// One gRPC length-prefixed message: |flag|, 4-byte big-endian length, |message|.
std::string grpc_message(std::string_view message, uint8_t flag = 0);

// A loopback TCP connection; non-blocking, and every operation waits in poll() with a deadline.
class Socket {
 public:
  enum class Io { kOk, kTimeout, kClosed };  // kClosed: EOF, ECONNRESET or EPIPE

  // Connects to 127.0.0.1:|port|. |rcvbuf| > 0 sets SO_RCVBUF first (a peer that reads slowly).
  explicit Socket(int port, int rcvbuf = 0);
  ~Socket();
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  bool connected() const { return fd_ >= 0; }
  const std::string& error() const { return error_; }
  bool eof() const { return eof_; }

  // Writes all of |bytes|. While the socket is not writable, bytes that arrive are appended to
  // |inbound| when it is non-null (so neither side can block the other); with null, nothing is
  // read (a peer that does not read its responses).
  Io write_all(std::string_view bytes, Clock::time_point deadline, std::string* inbound);
  // Appends whatever arrives (at least one byte) to |into|.
  Io read_some(std::string& into, Clock::time_point deadline);

 private:
  Io read_available(std::string& into);

  int fd_ = -1;
  bool eof_ = false;
  std::string error_;
};

std::string_view to_string(Socket::Io io);

// ---------------------------------------------------------------------------------------------
// Frame level.

// One received frame. A HEADERS frame followed by CONTINUATIONs is returned as one HEADERS
// frame with END_HEADERS set and the whole block decoded into |headers|.
struct Frame {
  uint8_t type = 0;
  uint8_t flags = 0;
  int32_t stream_id = 0;
  std::string payload;  // raw payload (HEADERS: the concatenated header block fragments)
  HeaderList headers;   // HEADERS only

  bool has(uint8_t flag) const { return (flags & flag) != 0; }
  // RST_STREAM and GOAWAY: the error code. GOAWAY: the last stream id.
  uint32_t error_code() const;
  int32_t last_stream_id() const;
};
// "GOAWAY(last_stream_id=5, PROTOCOL_ERROR)", "HEADERS[1] END_STREAM {...}", ...
std::string describe(const Frame& frame);

// Frame builders: bytes ready for RawH2Client::send, so a test can concatenate thousands and
// write them at once.
inline constexpr std::string_view kClientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
std::string frame_bytes(uint8_t type, uint8_t flags, int32_t stream_id, std::string_view payload);
// An HPACK block of literal, never-indexed fields with literal names: it neither reads nor
// changes the peer's dynamic table, so blocks can be sent in any order or count.
std::string hpack_literals(const HeaderList& headers);
// HPACK representations that do use the dynamic table (RFC 7541 §6.1, §6.2.1): an indexed field
// and a literal with incremental indexing. For table-size abuse such as the HPACK bomb.
std::string hpack_indexed(size_t index);
std::string hpack_literal_indexed(const Header& header);
std::string settings_frame(const std::vector<std::pair<uint16_t, uint32_t>>& entries = {});
std::string settings_ack_frame();
std::string headers_frame(int32_t stream_id, const HeaderList& headers, uint8_t flags);
std::string continuation_frame(int32_t stream_id, std::string_view fragment, uint8_t flags);
std::string data_frame(int32_t stream_id, std::string_view data, uint8_t flags);
std::string rst_stream_frame(int32_t stream_id, uint32_t error_code);
std::string ping_frame(uint64_t opaque, bool ack = false);
std::string window_update_frame(int32_t stream_id, uint32_t increment);

// Frame-level client: writes exactly the bytes it is given and parses what comes back.
class RawH2Client {
 public:
  explicit RawH2Client(int port, int rcvbuf = 0);
  ~RawH2Client();
  RawH2Client(const RawH2Client&) = delete;
  RawH2Client& operator=(const RawH2Client&) = delete;

  bool connected() const { return socket_.connected(); }
  const std::string& error() const { return error_; }

  // Writes |bytes| verbatim. See Socket::write_all for |drain_input|.
  Socket::Io send(std::string_view bytes, Millis timeout = kWaitTimeout, bool drain_input = true);
  // Preface and an empty SETTINGS; then reads until skiff's SETTINGS (ACKed at once) and the ACK
  // of ours have arrived, so skiff's advertised limits are in force. Empty on success, else why.
  std::string handshake(Millis timeout = kWaitTimeout);

  // The next frame, or nullopt on timeout / once the connection is closed (see closed()).
  // Skiff's SETTINGS are ACKed as they arrive (once the preface has been sent) unless
  // set_auto_ack(false).
  std::optional<Frame> next_frame(Clock::time_point deadline);
  // Reads until a frame matches |pred| (returned) or |timeout|, or the connection closes.
  std::optional<Frame> wait_for(const std::function<bool(const Frame&)>& pred,
                                Millis timeout = kWaitTimeout);
  // Reads (keeping every frame) until skiff closes the connection; false on |timeout|.
  bool wait_closed(Millis timeout = kWaitTimeout);

  bool closed() const { return socket_.eof() && in_.size() < 9; }
  // Every frame received so far, in order.
  const std::vector<Frame>& frames() const { return frames_; }
  // The first GOAWAY received, if any.
  std::optional<Frame> goaway() const;
  void set_auto_ack(bool on) { auto_ack_ = on; }

 private:
  // Parses one frame out of in_ into |out|; false if in_ holds no complete frame yet.
  bool parse_one(Frame& out);

  Socket socket_;
  nghttp2_hd_inflater* inflater_ = nullptr;
  std::string in_;
  std::optional<Frame> pending_headers_;  // HEADERS waiting for its END_HEADERS CONTINUATION
  std::vector<Frame> frames_;
  bool auto_ack_ = true;
  bool preface_sent_ = false;  // an ACK before the preface would itself be a bad preface
  std::string error_;
};

// ---------------------------------------------------------------------------------------------
// nghttp2 client session.

// What one stream received.
struct StreamResult {
  int32_t id = 0;
  std::vector<HeaderList> header_blocks;    // response headers, then trailers
  std::vector<uint8_t> header_block_flags;  // flags of the HEADERS frame of each block
  std::string body;                         // all DATA payload bytes
  int data_frames = 0;
  std::optional<uint32_t> reset_code;  // RST_STREAM received
  bool closed = false;
  uint32_t close_code = 0;  // nghttp2's on_stream_close error code

  // One HEADERS frame with END_STREAM and nothing else (gRPC trailers-only).
  bool trailers_only() const;
  // From the first block (:status, content-type, ...).
  std::optional<std::string> header(std::string_view name) const;
  // From the last block (the trailers, or the trailers-only block); nullopt without one.
  std::optional<std::string> trailer(std::string_view name) const;
  std::optional<int> grpc_status() const;
  // For assertion messages.
  std::string describe() const;
};

class H2Client {
 public:
  // Connects and queues the preface and SETTINGS (sent by the first wait).
  explicit H2Client(int port);
  ~H2Client();
  H2Client(const H2Client&) = delete;
  H2Client& operator=(const H2Client&) = delete;

  bool connected() const { return socket_.connected(); }

  // Submits a request with |headers| as given (no validation: nghttp2 sends whatever the
  // application submits); |body|, if any, follows as DATA. END_STREAM ends the request.
  // Returns the stream id, or a negative nghttp2 error.
  int32_t submit(const HeaderList& headers, std::optional<std::string> body = std::nullopt);
  // Runs I/O until stream |stream_id| is closed; false on timeout or connection loss.
  bool wait_closed(int32_t stream_id, Millis timeout = kWaitTimeout);
  const StreamResult& stream(int32_t stream_id) { return streams_[stream_id]; }
  // submit + wait_closed. On failure the result's |closed| is false.
  StreamResult call(const HeaderList& headers, std::optional<std::string> body = std::nullopt,
                    Millis timeout = kWaitTimeout);

  // The connection is gone (EOF, reset, or a fatal nghttp2 error).
  bool connection_closed() const { return connection_closed_; }
  std::optional<uint32_t> goaway_error() const { return goaway_error_; }
  // Why the last wait failed, for assertion messages.
  const std::string& error() const { return error_; }

 private:
  struct Pending {
    std::string body;
    size_t offset = 0;
  };

  bool pump(const std::function<bool()>& done, Clock::time_point deadline);
  bool feed();

  static ssize_t on_send(nghttp2_session*, const uint8_t* data, size_t len, int, void* user);
  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                       size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* user);
  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int on_data_chunk(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data,
                           size_t len, void* user);
  static int on_stream_close(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* user);
  static ssize_t on_read_body(nghttp2_session*, int32_t stream_id, uint8_t* buf, size_t length,
                              uint32_t* flags, nghttp2_data_source*, void* user);

  Socket socket_;
  nghttp2_session* ng_ = nullptr;
  std::string out_;
  std::string in_;
  std::map<int32_t, StreamResult> streams_;
  std::map<int32_t, Pending> bodies_;
  bool connection_closed_ = false;
  std::optional<uint32_t> goaway_error_;
  std::string error_;
};

}  // namespace skiff::it::h2
