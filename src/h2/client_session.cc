// ClientSession: dial, nghttp2 client callbacks -> ClientStreamHandler (proxy::Call).
#include "h2/client_session.h"

#include "base/check.h"
#include "base/log.h"
#include "h2/options.h"

namespace skiff::h2 {

ClientSession::ClientSession(net::Worker& worker, const Limits& limits,
                             std::unique_ptr<net::Transport> transport, Callbacks callbacks)
    : Session(worker, limits, std::move(transport)),
      callbacks_(std::move(callbacks)),
      connect_timer_(worker.loop(), [this] {
        close_reason_ = "connect timeout";
        close("connect timeout");
      }) {
  nghttp2_session_callbacks* cbs = nullptr;
  SKIFF_CHECK(nghttp2_session_callbacks_new(&cbs) == 0);
  set_common_callbacks(cbs);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, &ClientSession::on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback2(cbs, &ClientSession::on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &ClientSession::on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &ClientSession::on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &ClientSession::on_stream_close);
  nghttp2_option* opt = make_options(/*server=*/false);
  SKIFF_CHECK(nghttp2_session_client_new3(&ng_, cbs, this, opt, session_mem()) == 0);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
}

ClientSession::~ClientSession() {
  streams_.for_each([](int32_t, Stream* s) { delete s; });
}

void ClientSession::connect(const net::SocketAddress& address, std::chrono::milliseconds timeout) {
  int rc = transport_->connect(address);
  if (rc != 0) {
    // Report on a later loop turn (C8): the timer fires at once.
    close_reason_ = std::string("connect failed: ") + uv_strerror(rc);
    connect_timer_.start(std::chrono::milliseconds(0));
    return;
  }
  connect_timer_.start(timeout);
}

void ClientSession::on_connect(int status) {
  if (closed()) return;
  connect_timer_.stop();
  if (status != 0) {
    // A TLS transport says exactly what failed (alert, chain, identity mismatch).
    std::string detail = transport_->error_detail();
    close_reason_ =
        detail.empty() ? std::string("connect failed: ") + uv_strerror(status) : std::move(detail);
    close(close_reason_.c_str());
    return;
  }
  std::vector<nghttp2_settings_entry> settings = make_settings(limits_, /*server=*/false);
  nghttp2_submit_settings(ng_, NGHTTP2_FLAG_NONE, settings.data(), settings.size());
  nghttp2_session_set_local_window_size(ng_, NGHTTP2_FLAG_NONE, 0,
                                        static_cast<int32_t>(limits_.initial_connection_window));
  transport_->read_start();
  ready_ = true;
  opened_since_check_ = true;  // a new connection gets a whole idle period before it may close
  schedule_flush();
  if (callbacks_.on_ready) callbacks_.on_ready(this);
}

bool ClientSession::has_capacity() const {
  if (!ready_ || going_away_ || closed()) return false;
  return streams_.size() <
         nghttp2_session_get_remote_settings(ng_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

int32_t ClientSession::open_stream(std::span<const HeaderView> headers,
                                   ClientStreamHandler* handler) {
  SKIFF_CHECK(has_capacity());  // the pool only hands out sessions with capacity
  std::span<const nghttp2_nv> nva = to_nv(headers);
  nghttp2_data_provider provider = data_provider();
  int32_t id = nghttp2_submit_request(ng_, nullptr, nva.data(), nva.size(), &provider, nullptr);
  if (id < 0) return id;
  auto* stream = new Stream;
  stream->handler = handler;
  streams_.insert(id, stream);  // a new id: nghttp2 hands out increasing ids
  count_stream_opened();
  opened_since_check_ = true;
  if (--streams_left_ == 0) going_away_ = true;  // on_stream_close closes it after the last
  schedule_flush();
  return id;
}

void ClientSession::detach(int32_t stream_id) {
  Stream* s = find(stream_id);
  if (s == nullptr) return;
  s->handler = nullptr;
  reset_stream(stream_id, NGHTTP2_CANCEL);
}

void ClientSession::shutdown() {
  if (closed()) return;
  going_away_ = true;
  if (!ready_) {
    close("shutdown");
    return;
  }
  nghttp2_session_terminate_session(ng_, NGHTTP2_NO_ERROR);
  schedule_flush();
}

Body* ClientSession::send_body(int32_t stream_id) {
  Stream* s = find(stream_id);
  if (s == nullptr || s->handler == nullptr) return nullptr;
  return s->handler->request_body();
}

void ClientSession::on_session_closed(const char* reason) {
  connect_timer_.stop();
  ready_ = false;
  if (close_reason_.empty()) close_reason_ = reason;
  StreamMap<Stream> streams = streams_.take();
  streams.for_each([this](int32_t, Stream* stream) {
    count_stream_closed();
    ClientStreamHandler* handler = stream->handler;
    delete stream;
    if (handler != nullptr) handler->on_upstream_close(kConnectionLost);
  });
}

int ClientSession::on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<ClientSession*>(user);
  Stream* s = self->find(frame->hd.stream_id);
  if (s == nullptr) return 0;
  s->headers.clear();
  s->header_bytes = 0;
  s->too_large = false;
  return 0;
}

int ClientSession::on_header(nghttp2_session*, const nghttp2_frame* frame, nghttp2_rcbuf* name,
                             nghttp2_rcbuf* value, uint8_t, void* user) {
  auto* self = static_cast<ClientSession*>(user);
  Stream* s = self->find(frame->hd.stream_id);
  if (s == nullptr) return 0;
  if (!s->too_large &&
      !collect_header(s->headers, s->header_bytes, self->limits_, name, value, kResponseFields)) {
    s->too_large = true;
  }
  return 0;
}

int ClientSession::on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<ClientSession*>(user);
  self->count_frame_recv(frame);
  switch (frame->hd.type) {
    case NGHTTP2_GOAWAY:
      // No new streams here; streams above last_stream_id are closed with REFUSED_STREAM. The
      // pool may now dial a replacement for calls waiting on this endpoint.
      self->going_away_ = true;
      if (self->callbacks_.on_capacity) self->callbacks_.on_capacity(self);
      return 0;
    case NGHTTP2_SETTINGS:
      if (!self->established_ && (frame->hd.flags & NGHTTP2_FLAG_ACK) == 0) {
        self->established_ = true;
        if (self->callbacks_.on_established) self->callbacks_.on_established(self);
      }
      if (self->callbacks_.on_capacity) self->callbacks_.on_capacity(self);
      return 0;
    case NGHTTP2_HEADERS:
      break;
    case NGHTTP2_DATA:
      if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) {
        Stream* s = self->find(frame->hd.stream_id);
        // END_STREAM on DATA: the response ended without trailers (a broken gRPC server).
        if (s != nullptr && s->handler != nullptr) s->handler->on_response_trailers({});
      }
      return 0;
    default:
      return 0;
  }
  Stream* found = self->find(frame->hd.stream_id);
  if (found == nullptr || found->handler == nullptr) return 0;
  Stream& s = *found;
  if (s.too_large) {
    self->reset_stream(frame->hd.stream_id, NGHTTP2_INTERNAL_ERROR);
    return 0;
  }
  bool end_stream = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
  // The handler may detach (erasing |s|): take what we need first and don't touch |s| after.
  HeaderList headers = std::move(s.headers);
  s.headers.clear();
  ClientStreamHandler* handler = s.handler;
  if (frame->headers.cat != NGHTTP2_HCAT_RESPONSE && frame->headers.cat != NGHTTP2_HCAT_HEADERS) {
    return 0;
  }
  if (!s.response_started) {
    // An interim 1xx response (e.g. 103 Early Hints) is not the response: nghttp2 delivers the
    // final one next, as a plain header block.
    if (find_header(headers, ":status").starts_with('1')) return 0;
    s.response_started = true;
    handler->on_response_headers(std::move(headers), end_stream);
  } else {
    // Trailers (END_STREAM is required for them by nghttp2's HTTP messaging checks).
    handler->on_response_trailers(std::move(headers));
  }
  return 0;
}

int ClientSession::on_data_chunk(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data,
                                 size_t len, void* user) {
  auto* self = static_cast<ClientSession*>(user);
  Stream* s = self->find(stream_id);
  if (s == nullptr || s->handler == nullptr) {
    nghttp2_session_consume(self->ng_, stream_id, len);
    return 0;
  }
  s->handler->on_response_data(data, len);
  return 0;
}

int ClientSession::on_stream_close(nghttp2_session*, int32_t stream_id, uint32_t error_code,
                                   void* user) {
  // Never fails (CVE-2023-35945).
  auto* self = static_cast<ClientSession*>(user);
  Stream* stream = self->streams_.erase(stream_id);
  if (stream == nullptr) return 0;
  ClientStreamHandler* handler = stream->handler;
  delete stream;
  self->count_stream_closed();
  if (handler != nullptr) handler->on_upstream_close(error_code);
  if (self->streams_left_ == 0 && self->streams_.empty()) self->shutdown();
  if (self->callbacks_.on_capacity) self->callbacks_.on_capacity(self);
  return 0;
}

}  // namespace skiff::h2
