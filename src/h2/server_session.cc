// ServerSession: nghttp2 server callbacks -> ServerStream -> StreamHandler (proxy::Call).
#include "h2/server_session.h"

#include <algorithm>

#include "base/check.h"
#include "base/log.h"
#include "h2/options.h"

namespace skiff::h2 {
namespace {

// The drain's second GOAWAY waits one round trip (the PING's ACK), at most this long.
constexpr std::chrono::milliseconds kDrainPingTimeout{1000};
constexpr uint8_t kDrainPingPayload[8] = {'s', 'k', 'i', 'f', 'f', 'd', 'r', 'n'};
// reliability.md §1.3: TLS + preface within 10 s; a connection without streams for 1 h is closed.
constexpr std::chrono::milliseconds kPrefaceTimeout{10'000};
// A header block (HEADERS and its CONTINUATIONs) must arrive whole within this: nothing else
// can move on the connection meanwhile, and no stream handler exists yet to time it out
// (reliability.md §6, 5: the CONTINUATION drip).
constexpr std::chrono::milliseconds kHeaderBlockTimeout{10'000};
constexpr std::chrono::milliseconds kIdleTimeout{3'600'000};
// Same shape as the rapid-reset limit nghttp2 applies to received RST_STREAMs.
constexpr double kGlitchBurst = 1000;
constexpr double kGlitchPerSecond = 33;

// The flush check runs four times per timeout: a stall is acted on within 1.25 timeouts.
std::chrono::milliseconds flush_check_interval(const Limits& limits) {
  return std::max(limits.stream_flush_timeout / 4, std::chrono::milliseconds(1));
}

}  // namespace

ServerSession::ServerSession(net::Worker& worker, const Limits& limits,
                             std::unique_ptr<net::Transport> transport, CallFactory& factory)
    : Session(worker, limits, std::move(transport)),
      factory_(factory),
      drain_timer_(worker.loop(), [this] { finish_goaway(); }),
      idle_timer_(worker.loop(),
                  [this] {
                    close(!preface_received_          ? "preface timeout"
                          : header_block_stream_ != 0 ? "header block timeout"
                                                      : "idle timeout");
                  }),
      flush_timer_(worker.loop(), [this] { check_flush(); }),
      glitch_tokens_(kGlitchBurst) {
  nghttp2_session_callbacks* cbs = nullptr;
  SKIFF_CHECK(nghttp2_session_callbacks_new(&cbs) == 0);
  set_common_callbacks(cbs);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, &ServerSession::on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback2(cbs, &ServerSession::on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &ServerSession::on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &ServerSession::on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &ServerSession::on_stream_close);
  nghttp2_session_callbacks_set_on_invalid_header_callback2(cbs, &ServerSession::on_invalid_header);
  nghttp2_option* opt = make_options(/*server=*/true);
  SKIFF_CHECK(nghttp2_session_server_new3(&ng_, cbs, this, opt, session_mem()) == 0);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
}

ServerSession::~ServerSession() {
  // Streams must not outlive the session; their handlers were told in on_session_closed.
  streams_.for_each([this](int32_t, ServerStream* stream) {
    worker_.defer_delete(std::unique_ptr<ServerStream>(stream));
  });
}

bool ServerSession::start(uv_stream_t* server) {
  if (transport_->accept_from(server) != 0) return false;
  glitch_refilled_ms_ = uv_now(worker_.loop());
  idle_timer_.start(kPrefaceTimeout);  // covers a TLS handshake too
  if (!transport_->connects_after_accept()) begin();
  return true;
}

void ServerSession::on_connect(int status) {
  if (closed()) return;
  if (status != 0) {
    close("handshake failed");
    return;
  }
  begin();
}

void ServerSession::begin() {
  std::vector<nghttp2_settings_entry> settings = make_settings(limits_, /*server=*/true);
  nghttp2_submit_settings(ng_, NGHTTP2_FLAG_NONE, settings.data(), settings.size());
  // Our connection window: the default 64 KiB would throttle every stream together.
  nghttp2_session_set_local_window_size(ng_, NGHTTP2_FLAG_NONE, 0,
                                        static_cast<int32_t>(limits_.initial_connection_window));
  transport_->read_start();
  begun_ = true;
  schedule_flush();
}

void ServerSession::submit_response(int32_t stream_id, const HeaderList& headers, bool with_body) {
  if (closed()) return;
  std::span<const nghttp2_nv> nva = to_nv(headers);
  nghttp2_data_provider provider = data_provider();
  int rv = nghttp2_submit_response(ng_, stream_id, nva.data(), nva.size(),
                                   with_body ? &provider : nullptr);
  if (rv != 0) {
    SKIFF_LOG(kDebug) << "submit_response on stream " << stream_id << ": " << nghttp2_strerror(rv);
    nghttp2_submit_rst_stream(ng_, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_INTERNAL_ERROR);
  } else if (ServerStream* stream = find(stream_id); stream != nullptr && with_body) {
    stream->response_has_body_ = true;
    stream->flush_since_ms_ = uv_now(worker_.loop());
  }
  arm_flush_check();
  schedule_flush();
}

void ServerSession::arm_flush_check() {
  if (flush_timer_.active()) return;
  write_mark_ = writes_done();
  write_progress_ms_ = uv_now(worker_.loop());
  flush_timer_.start(flush_check_interval(limits_));
}

void ServerSession::check_flush() {
  if (closed()) return;
  const uint64_t now = uv_now(worker_.loop());
  const bool backlog = transport_->write_backlog() > 0;
  if (!backlog || writes_done() != write_mark_) write_progress_ms_ = now;
  write_mark_ = writes_done();
  if (now - write_progress_ms_ >= static_cast<uint64_t>(limits_.stream_flush_timeout.count())) {
    count_flush_timeout();
    SKIFF_LOG(kInfo) << "closing connection from " << transport_->peer_address()
                     << ": it has read nothing for " << limits_.stream_flush_timeout.count()
                     << " ms (http2.stream_flush_timeout)";
    close("flush timeout");
    return;
  }
  // Resetting only submits RST_STREAM: no stream leaves the map during the walk.
  streams_.for_each([&](int32_t, ServerStream* stream) { check_stream_flush(*stream, now); });
  if (backlog || !streams_.empty()) flush_timer_.start(flush_check_interval(limits_));
}

void ServerSession::check_stream_flush(ServerStream& stream, uint64_t now_ms) {
  if (!stream.response_has_body_ || stream.flush_reset_ || !stream.handler_) return;
  const Body* body = stream.handler_->response_body();
  if (body == nullptr) return;
  const bool moved = body->taken() != stream.flush_mark_;
  stream.flush_mark_ = body->taken();
  const bool waiting = (body->size() > 0 || body->finished()) &&
                       nghttp2_session_get_stream_local_close(ng_, stream.id_) == 0;
  if (!waiting || (moved && !stream.body_finished_seen_)) stream.flush_since_ms_ = now_ms;
  if (body->finished()) stream.body_finished_seen_ = true;
  if (now_ms - stream.flush_since_ms_ <
      static_cast<uint64_t>(limits_.stream_flush_timeout.count())) {
    return;
  }
  stream.flush_reset_ = true;
  count_flush_timeout();
  SKIFF_LOG(kDebug) << "resetting stream " << stream.id_ << " from " << transport_->peer_address()
                    << ": its response has not been read for "
                    << limits_.stream_flush_timeout.count() << " ms (http2.stream_flush_timeout)";
  nghttp2_submit_rst_stream(ng_, NGHTTP2_FLAG_NONE, stream.id_, NGHTTP2_CANCEL);
  schedule_flush();
}

void ServerSession::start_drain() {
  if (draining_ || closed()) return;
  draining_ = true;
  // Mid-handshake nothing is in flight, and the 10 s handshake timeout would hold the drain:
  // the client connects again, elsewhere.
  if (!begun_) return close("draining during the TLS handshake");
  submit_drain();
}

void ServerSession::submit_drain() {
  nghttp2_submit_shutdown_notice(ng_);
  nghttp2_submit_ping(ng_, NGHTTP2_FLAG_NONE, kDrainPingPayload);
  drain_timer_.start(kDrainPingTimeout);
  schedule_flush();
}

void ServerSession::finish_goaway() {
  if (goaway_final_sent_ || closed()) return;
  goaway_final_sent_ = true;
  drain_timer_.stop();
  nghttp2_submit_goaway(ng_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(ng_),
                        NGHTTP2_NO_ERROR, nullptr, 0);
  schedule_flush();
}

Body* ServerSession::send_body(int32_t stream_id) {
  ServerStream* stream = find(stream_id);
  if (stream == nullptr || !stream->handler_) return nullptr;
  return stream->handler_->response_body();
}

void ServerSession::arm_idle_timer() {
  if (preface_received_ && header_block_stream_ == 0 && streams_.empty()) {
    idle_timer_.start(kIdleTimeout);
  }
}

void ServerSession::begin_header_block(int32_t stream_id) {
  header_block_stream_ = stream_id;
  idle_timer_.start(kHeaderBlockTimeout);
}

void ServerSession::end_header_block(int32_t stream_id) {
  if (header_block_stream_ != stream_id) return;
  header_block_stream_ = 0;
  idle_timer_.stop();
  arm_idle_timer();
}

void ServerSession::count_glitch() {
  uint64_t now = uv_now(worker_.loop());
  glitch_tokens_ = std::min(
      kGlitchBurst, glitch_tokens_ + (now - glitch_refilled_ms_) * kGlitchPerSecond / 1000.0);
  glitch_refilled_ms_ = now;
  glitch_tokens_ -= 1;
  if (glitch_tokens_ >= 0 || closed()) return;
  SKIFF_LOG(kInfo) << "closing connection from " << transport_->peer_address()
                   << ": too many protocol errors";
  // Sends GOAWAY(ENHANCE_YOUR_CALM); the session then wants nothing more and flush() closes it.
  nghttp2_session_terminate_session(ng_, NGHTTP2_ENHANCE_YOUR_CALM);
  schedule_flush();
}

void ServerSession::on_own_reset(int32_t stream_id) {
  if (ServerStream* stream = find(stream_id)) stream->reset_by_skiff_ = true;
}

void ServerSession::on_frame_sent(const nghttp2_frame& frame) {
  if (frame.hd.type != NGHTTP2_RST_STREAM) return;
  const uint32_t code = frame.rst_stream.error_code;
  if (code == NGHTTP2_NO_ERROR || code == NGHTTP2_CANCEL) return;
  // Sent before nghttp2 closes the stream: a stream skiff knows is still in the map.
  const ServerStream* stream = find(frame.hd.stream_id);
  if (stream != nullptr && stream->reset_by_skiff_) return;
  count_glitch();
}

int ServerSession::on_invalid_header(nghttp2_session*, const nghttp2_frame*, nghttp2_rcbuf*,
                                     nghttp2_rcbuf*, uint8_t, void*) {
  // Reset the stream (PROTOCOL_ERROR), as nghttp2 does without this callback; the RST_STREAM
  // counts as a glitch when it goes out (on_frame_sent).
  return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
}

void ServerSession::on_session_closed(const char*) {
  drain_timer_.stop();
  idle_timer_.stop();
  flush_timer_.stop();
  StreamMap<ServerStream> streams = streams_.take();
  streams.for_each([this](int32_t, ServerStream* stream) {
    count_stream_closed();
    if (stream->handler_) stream->handler_->on_stream_close(NGHTTP2_CANCEL);
    worker_.defer_delete(std::unique_ptr<ServerStream>(stream));
  });
}

int ServerSession::on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<ServerSession*>(user);
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  int32_t id = frame->hd.stream_id;
  // Request headers or trailers: the block ends in on_frame_recv, or with its stream.
  self->begin_header_block(id);
  if (frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  if (self->streams_.find(id) != nullptr) return 0;  // nghttp2 opens each id once
  self->streams_.insert(id, new ServerStream(*self, id));
  self->count_stream_opened();
  return 0;
}

int ServerSession::on_header(nghttp2_session*, const nghttp2_frame* frame, nghttp2_rcbuf* name,
                             nghttp2_rcbuf* value, uint8_t, void* user) {
  auto* self = static_cast<ServerSession*>(user);
  ServerStream* stream = self->find(frame->hd.stream_id);
  if (stream == nullptr || stream->handler_) return 0;  // request trailers: gRPC has none; drop
  if (!stream->headers_too_large_ && !collect_header(stream->headers_, stream->header_bytes_,
                                                     self->limits_, name, value, kRequestFields)) {
    stream->headers_too_large_ = true;
  }
  return 0;
}

int ServerSession::on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<ServerSession*>(user);
  self->count_frame_recv(frame);
  switch (frame->hd.type) {
    case NGHTTP2_PING:
      if ((frame->hd.flags & NGHTTP2_FLAG_ACK) && self->draining_) self->finish_goaway();
      return 0;
    case NGHTTP2_SETTINGS:
      if (!self->preface_received_) {
        self->preface_received_ = true;
        self->idle_timer_.stop();
        self->arm_idle_timer();
      }
      return 0;
    case NGHTTP2_DATA:
      // A DATA frame with no payload (padding alone is none) that doesn't end the stream does
      // nothing but cost us work. padlen counts the Pad Length byte too.
      if (frame->hd.length == frame->data.padlen && !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        self->count_glitch();
      }
      break;
    case NGHTTP2_HEADERS:
      self->end_header_block(frame->hd.stream_id);
      break;
    default:
      return 0;
  }
  ServerStream* stream = self->find(frame->hd.stream_id);
  if (stream == nullptr) return 0;
  if (frame->hd.type == NGHTTP2_HEADERS && !stream->handler_) {
    stream->handler_ = self->factory_.on_request(*stream);
    SKIFF_CHECK(stream->handler_ != nullptr);  // CallFactory contract
  }
  if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && stream->handler_ && !stream->request_ended_) {
    stream->request_ended_ = true;
    stream->handler_->on_request_end();
  }
  return 0;
}

int ServerSession::on_data_chunk(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data,
                                 size_t len, void* user) {
  auto* self = static_cast<ServerSession*>(user);
  ServerStream* stream = self->find(stream_id);
  if (stream == nullptr || !stream->handler_) {
    // Nobody will forward these bytes: give the window back now.
    nghttp2_session_consume(self->ng_, stream_id, len);
    return 0;
  }
  stream->handler_->on_request_data(data, len);
  return 0;
}

int ServerSession::on_stream_close(nghttp2_session*, int32_t stream_id, uint32_t error_code,
                                   void* user) {
  // Never fails (CVE-2023-35945: an error here leaks in Debian's nghttp2).
  auto* self = static_cast<ServerSession*>(user);
  self->end_header_block(stream_id);  // a block nghttp2 rejected ends with its stream
  std::unique_ptr<ServerStream> stream(self->streams_.erase(stream_id));
  if (stream == nullptr) return 0;
  self->count_stream_closed();
  if (stream->handler_) stream->handler_->on_stream_close(error_code);
  self->worker_.defer_delete(std::move(stream));
  self->arm_idle_timer();
  return 0;
}

}  // namespace skiff::h2
