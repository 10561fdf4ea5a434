// ClientSession: the upstream side — an nghttp2 client session on a dialled connection, with
// streams opened by proxy attempts. The pool learns about readiness, capacity and closing
// through the callbacks.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>

#include "base/block_cache.h"
#include "h2/session.h"
#include "h2/stream_map.h"
#include "net/address.h"
#include "net/timer.h"

namespace skiff::h2 {

// error_code passed to on_upstream_close when the connection itself was lost.
constexpr uint32_t kConnectionLost = 0xffffffff;

// Implemented by proxy::Call: events of one upstream stream.
class ClientStreamHandler {
 public:
  virtual ~ClientStreamHandler() = default;
  virtual void on_response_headers(HeaderList headers, bool end_stream) = 0;
  virtual void on_response_data(const uint8_t* data, size_t len) = 0;
  virtual void on_response_trailers(HeaderList trailers) = 0;
  // The stream closed: normally (error_code 0 after the response ended), by RST_STREAM, by
  // GOAWAY (REFUSED_STREAM), or kConnectionLost. No call into the session for this stream
  // is allowed afterwards.
  virtual void on_upstream_close(uint32_t error_code) = 0;
  // Where request DATA comes from.
  virtual Body* request_body() = 0;
};

class ClientSession final : public Session {
 public:
  struct Callbacks {
    std::function<void(ClientSession*)> on_ready;  // connected, streams may open
    // The server's first SETTINGS arrived: an HTTP/2 server answered, not just a TCP (or TLS)
    // peer.
    std::function<void(ClientSession*)> on_established;
    // A stream slot freed up, or the session stopped taking streams (GOAWAY): waiters may
    // now be served here or need another connection.
    std::function<void(ClientSession*)> on_capacity;
  };

  ClientSession(net::Worker& worker, const Limits& limits,
                std::unique_ptr<net::Transport> transport, Callbacks callbacks);
  ~ClientSession() override;

  // Dials |address|; on_ready or (on failure/timeout) the closed callback follows.
  void connect(const net::SocketAddress& address, std::chrono::milliseconds timeout);

  // Client stream ids are the odd numbers below 2^31: a connection opens at most this many.
  static constexpr uint32_t kMaxStreams = 1u << 30;
  // Caps the streams this connection opens (never above kMaxStreams). After the last one it
  // takes no more, and once those are done it closes (GOAWAY). Set before connect().
  void set_max_streams(uint32_t n) { streams_left_ = std::min(n, kMaxStreams); }

  bool ready() const { return ready_; }
  // GOAWAY sent or received, or its streams used up: no new streams; it closes once its last
  // stream is done.
  bool going_away() const { return going_away_; }
  // Can take one more stream now (connected, not going away, under the peer's limit).
  bool has_capacity() const;
  size_t active_streams() const { return streams_.size(); }
  // Why the connection closed (for grpc-message), valid once closed().
  const std::string& close_reason() const { return close_reason_; }
  // The server's SETTINGS arrived. A connection closed before that failed to connect, even if
  // TCP and TLS came up (e.g. the server rejected our certificate after a TLS 1.3 handshake).
  bool established() const { return established_; }
  // Whether the connection came up or opened a stream since the last call (the pool's idle
  // check); clears the mark.
  bool take_activity() { return std::exchange(opened_since_check_, false); }

  // Submits a request; DATA is read from handler->request_body(). Returns the stream id, or a
  // negative nghttp2 error.
  int32_t open_stream(std::span<const HeaderView> headers, ClientStreamHandler* handler);
  // The handler is going away: forget it, and cancel the stream if it is still open.
  void detach(int32_t stream_id);
  // Send GOAWAY and close once idle (drain).
  void shutdown();

  // net::TransportHandler
  void on_connect(int status) override;

 protected:
  Body* send_body(int32_t stream_id) override;
  void on_session_closed(const char* reason) override;

 private:
  static int on_begin_headers(nghttp2_session*, const nghttp2_frame*, void* user);
  static int on_header(nghttp2_session*, const nghttp2_frame*, nghttp2_rcbuf* name,
                       nghttp2_rcbuf* value, uint8_t flags, void* user);
  static int on_frame_recv(nghttp2_session*, const nghttp2_frame*, void* user);
  static int on_data_chunk(nghttp2_session*, uint8_t flags, int32_t stream_id, const uint8_t* data,
                           size_t len, void* user);
  static int on_stream_close(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* user);

  struct Stream : base::CacheAllocated {
    ClientStreamHandler* handler = nullptr;
    HeaderList headers;  // being received
    size_t header_bytes = 0;
    bool too_large = false;
    bool response_started = false;
  };

  Stream* find(int32_t stream_id) { return streams_.find(stream_id); }

  Callbacks callbacks_;
  StreamMap<Stream> streams_;  // owns its Streams (deleted on close)
  net::Timer connect_timer_;
  bool ready_ = false;
  bool established_ = false;
  bool going_away_ = false;
  bool opened_since_check_ = false;
  uint32_t streams_left_ = kMaxStreams;
  std::string close_reason_;
};

}  // namespace skiff::h2
