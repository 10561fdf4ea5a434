// ServerSession: the downstream side — an nghttp2 server session on an accepted connection.
// Each request stream gets a StreamHandler from the CallFactory once its headers are complete.
#pragma once

#include <cstdint>
#include <memory>

#include "base/block_cache.h"
#include "h2/session.h"
#include "h2/stream_map.h"
#include "net/timer.h"

namespace skiff::h2 {

class ServerSession;

// Implemented by proxy::Call: events of one downstream stream. Handlers (one per request) are
// allocated through the worker's block cache.
class StreamHandler : public base::CacheAllocated {
 public:
  virtual ~StreamHandler() = default;
  virtual void on_request_data(const uint8_t* data, size_t len) = 0;
  virtual void on_request_end() = 0;
  // The stream is closed (finished, reset by the peer, or the connection went away). No call
  // into the session for this stream is allowed afterwards.
  virtual void on_stream_close(uint32_t error_code) = 0;
  // Where the response DATA comes from, once submit_response(with_body=true) was called.
  virtual Body* response_body() = 0;
};

// One downstream request stream, owned by its ServerSession (allocated through the block cache).
class ServerStream : public net::Deletable, public base::CacheAllocated {
 public:
  ServerStream(ServerSession& session, int32_t id) : session_(session), id_(id) {}

  int32_t id() const { return id_; }
  ServerSession& session() { return session_; }
  const HeaderList& request_headers() const { return headers_; }
  // The request headers went over max_header_list_bytes or max_header_count; only the first
  // fields were kept.
  bool headers_too_large() const { return headers_too_large_; }

 private:
  friend class ServerSession;
  ServerSession& session_;
  int32_t id_;
  HeaderList headers_;
  size_t header_bytes_ = 0;
  bool headers_too_large_ = false;
  bool request_ended_ = false;
  // The flush check (ServerSession::check_stream_flush).
  bool response_has_body_ = false;   // submit_response(with_body=true) done
  bool body_finished_seen_ = false;  // a check saw the upstream done: only finishing counts now
  bool flush_reset_ = false;         // reset for it; nghttp2 closes it once the RST is out
  bool reset_by_skiff_ = false;      // Session::reset_stream: no glitch when the RST goes out
  uint64_t flush_mark_ = 0;          // the response body's taken() at the last check
  uint64_t flush_since_ms_ = 0;      // uv_now of the last check that saw it move (or not wait)
  std::unique_ptr<StreamHandler> handler_;
};

class CallFactory {
 public:
  virtual ~CallFactory() = default;
  // Called when a request's headers are complete. Returns the stream's handler (never null).
  virtual std::unique_ptr<StreamHandler> on_request(ServerStream& stream) = 0;
};

class ServerSession final : public Session {
 public:
  ServerSession(net::Worker& worker, const Limits& limits,
                std::unique_ptr<net::Transport> transport, CallFactory& factory);
  ~ServerSession() override;

  // Accepts the pending connection and starts the session (sends SETTINGS) — at once, or
  // once the transport reports on_connect (TLS handshake done).
  bool start(uv_stream_t* server);

  // net::TransportHandler
  void on_connect(int status) override;

  // Responses. |headers| include ":status". Without a body the HEADERS frame ends the stream
  // (a gRPC trailers-only response).
  void submit_response(int32_t stream_id, const HeaderList& headers, bool with_body);
  // Graceful drain, phase one: GOAWAY(2^31-1) and a PING; phase two (on the PING's ACK):
  // GOAWAY(last stream id). The session closes once its streams are done.
  void start_drain();
  size_t active_streams() const { return streams_.size(); }

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
  static int on_invalid_header(nghttp2_session*, const nghttp2_frame*, nghttp2_rcbuf* name,
                               nghttp2_rcbuf* value, uint8_t flags, void* user);

  // A RST_STREAM that nghttp2 sent on its own (not NO_ERROR or CANCEL) means the client broke a
  // rule on that stream (content-length, flow control, stream state): a glitch. skiff's own
  // resets (on_own_reset marks the stream) are its verdicts on the call, not the client's fault.
  void on_own_reset(int32_t stream_id) override;
  void on_frame_sent(const nghttp2_frame& frame) override;

  ServerStream* find(int32_t stream_id) { return streams_.find(stream_id); }
  // Counts a peer misbehaviour that costs us work without being fatal by itself (a stream
  // nghttp2 resets for a broken rule: invalid headers, content-length, flow control, stream
  // state, the "MadeYouReset" resets nghttp2 1.52 has no limiter for, CVE-2025-8671; DATA
  // frames with no payload, CVE-2019-9518). Past the budget the connection ends with
  // GOAWAY(ENHANCE_YOUR_CALM).
  void count_glitch();
  // Connection timers: until the client's SETTINGS arrive (preface), while a header block is
  // incomplete, and while no stream is open (idle). One uv timer serves all three.
  void arm_idle_timer();
  void begin_header_block(int32_t stream_id);
  void end_header_block(int32_t stream_id);
  // The flush check, every quarter of limits_.stream_flush_timeout while the connection has
  // streams or queued bytes: a stream whose response bytes wait and none of them is taken for
  // the timeout (the client's window stays shut), or that has not finished within the timeout
  // of its upstream finishing (a window opened a byte at a time), is reset with CANCEL, which
  // cancels its upstream call; a connection whose queued bytes the client does not read for
  // the timeout is closed (reliability.md §6, 16 and 17; nghttpx's stream write timeout).
  void arm_flush_check();
  void check_flush();
  void check_stream_flush(ServerStream& stream, uint64_t now_ms);
  void begin();
  void submit_drain();
  void finish_goaway();

  CallFactory& factory_;
  // Owns its streams (raw pointers: see StreamMap); they go to Worker::defer_delete.
  StreamMap<ServerStream> streams_;
  bool begun_ = false;  // SETTINGS submitted (after the TLS handshake, if any)
  bool draining_ = false;
  bool goaway_final_sent_ = false;
  bool preface_received_ = false;
  int32_t header_block_stream_ = 0;  // the stream whose header block is arriving (0: none)
  net::Timer drain_timer_;
  net::Timer idle_timer_;
  net::Timer flush_timer_;
  uint64_t write_mark_ = 0;         // writes_done() at the last flush check
  uint64_t write_progress_ms_ = 0;  // uv_now of the last check that saw the socket move
  // Glitch budget: a token bucket of kGlitchBurst refilled at kGlitchPerSecond (uv_now ms).
  double glitch_tokens_;
  uint64_t glitch_refilled_ms_ = 0;
};

}  // namespace skiff::h2
