// Session: nghttp2 I/O plumbing shared by server and client sessions.
#include "h2/session.h"

#include <algorithm>

#include "base/check.h"
#include "base/log.h"

namespace skiff::h2 {
namespace {

// Output is produced in batches of about this size; production stops while the socket's
// unwritten backlog is above kWriteHighWater, and reading stops too (nghttpx's 2019 fix).
constexpr size_t kOutBatch = 64 * 1024;
constexpr size_t kWriteHighWater = 256 * 1024;
// DATA payloads from this size on go to the socket straight from their Body (a gather write)
// instead of being copied into out_; smaller ones are cheaper to copy than to add an iovec for.
constexpr size_t kSendInPlace = 4096;
// A batch with payloads sent in place may reach this size (out_ itself still stops at
// kOutBatch): bulk transfers then take one gather write per flush instead of four writes, and
// each write may wake the reader (in a VM an IPI): -15% CPU per 64 KiB call in a local test.
constexpr size_t kInPlaceBatch = 256 * 1024;

bool batch_full(size_t copied, size_t in_place) {
  return copied >= kOutBatch || copied + in_place >= kInPlaceBatch;
}

// The output buffer, lent to whichever session of this thread is flushing: a flush hands all it
// produced to the transport before it returns, so one buffer (up to about 2 x kOutBatch) serves
// every connection of a worker instead of each keeping its own (100 busy connections kept 9 MB).
thread_local std::string lent_out;

// What a session keeps of a buffer it grew outside a lent one (a flush nested in another's
// callbacks, or a send on a fatal receive error).
constexpr size_t kKeptOut = 4096;

}  // namespace

Session::Session(net::Worker& worker, const Limits& limits,
                 std::unique_ptr<net::Transport> transport)
    : worker_(worker), limits_(limits), transport_(std::move(transport)) {
  transport_->set_handler(this);
}

Session::~Session() {
  release_sliced();
  worker_.cancel_flush(this);
  if (ng_ != nullptr) nghttp2_session_del(ng_);
}

void Session::set_common_callbacks(nghttp2_session_callbacks* cbs) {
  nghttp2_session_callbacks_set_send_callback(cbs, &Session::on_send);
  nghttp2_session_callbacks_set_send_data_callback(cbs, &Session::on_send_data);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, &Session::on_frame_send);
}

void Session::set_stats(net::ConnectionStats* stats) {
  stats_ = stats;
  if (stats_ != nullptr) stats_->connections.inc();
}

void Session::count_protocol_error() {
  if (stats_ == nullptr || protocol_error_counted_) return;
  protocol_error_counted_ = true;
  stats_->protocol_errors.add();
}

void Session::count_frame_recv(const nghttp2_frame* frame) {
  if (stats_ == nullptr || frame->hd.type != NGHTTP2_GOAWAY) return;
  stats_->goaways_received.add();
  if (frame->goaway.error_code != NGHTTP2_NO_ERROR) count_protocol_error();
}

int Session::on_frame_send(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<Session*>(user);
  if (self->stats_ != nullptr && frame->hd.type == NGHTTP2_GOAWAY) {
    self->stats_->goaways_sent.add();
    if (frame->goaway.error_code != NGHTTP2_NO_ERROR) self->count_protocol_error();
  }
  self->on_frame_sent(*frame);
  return 0;
}

nghttp2_data_provider Session::data_provider() {
  nghttp2_data_provider provider{};
  provider.read_callback = &Session::on_read_data;
  return provider;
}

void Session::schedule_flush() {
  if (flush_scheduled_ || closed_) return;
  flush_scheduled_ = true;
  worker_.request_flush(this);
}

void Session::resume_data(int32_t stream_id) {
  if (closed_) return;
  nghttp2_session_resume_data(ng_, stream_id);
  schedule_flush();
}

void Session::consume(int32_t stream_id, size_t n) {
  if (closed_ || n == 0) return;
  if (nghttp2_session_consume(ng_, stream_id, n) != 0) {
    // The stream is gone: the connection-level window still needs the credit.
    nghttp2_session_consume_connection(ng_, n);
  }
  schedule_flush();
}

void Session::reset_stream(int32_t stream_id, uint32_t error_code) {
  if (closed_) return;
  on_own_reset(stream_id);
  nghttp2_submit_rst_stream(ng_, NGHTTP2_FLAG_NONE, stream_id, error_code);
  schedule_flush();
}

void Session::flush() {
  flush_scheduled_ = false;
  if (closed_) return;
  // out_ is empty between flushes; swapping back returns the buffer (a flush nested in this
  // one's callbacks borrows the empty placeholder instead, and grows its own).
  out_.swap(lent_out);
  struct GiveBack {
    std::string& out;
    ~GiveBack() {
      out.swap(lent_out);
      if (out.capacity() > kKeptOut) std::string().swap(out);
    }
  } give_back{out_};
  while (transport_->write_backlog() < kWriteHighWater) {
    int rv = nghttp2_session_send(ng_);
    if (rv != 0) {
      close(nghttp2_strerror(rv));
      return;
    }
    if (out_.empty() && sliced_.empty()) break;
    write_out();
  }
  if (reading_paused_ && transport_->write_backlog() < kWriteHighWater) {
    reading_paused_ = false;
    transport_->read_start();
  }
  if (nghttp2_session_want_read(ng_) == 0 && nghttp2_session_want_write(ng_) == 0 &&
      transport_->write_backlog() == 0) {
    close("session finished");
  }
}

void Session::close(const char* reason) {
  if (closed_) return;
  closed_ = true;
  if (stats_ != nullptr) stats_->connections.dec();
  SKIFF_LOG(kDebug) << "h2 session closed: " << reason;
  worker_.cancel_flush(this);
  flush_scheduled_ = false;
  release_sliced();
  out_.clear();
  on_session_closed(reason);
  // Destroying the stream closes the socket; queued writes are dropped.
  transport_.reset();
  if (on_closed_) on_closed_(this);
}

void Session::write_out() {
  if (sliced_.empty()) {
    if (!out_.empty()) transport_->write(out_);
    out_.clear();  // keeps its capacity: steady state allocates nothing here
    return;
  }
  thread_local std::vector<uv_buf_t> iov;
  iov.clear();
  size_t from = 0;
  for (const SlicedData& d : sliced_) {
    if (d.at > from) iov.push_back(uv_buf_init(out_.data() + from, d.at - from));
    iov.push_back(uv_buf_init(const_cast<char*>(d.slice.data()), d.slice.size()));
    from = d.at;
  }
  if (out_.size() > from) iov.push_back(uv_buf_init(out_.data() + from, out_.size() - from));
  // The transport writes what the kernel takes and copies the rest: the slices are free after.
  transport_->writev(iov);
  release_sliced();
  out_.clear();
}

void Session::release_sliced() {
  for (SlicedData& d : sliced_) d.slice.release();
  sliced_.clear();
  sliced_bytes_ = 0;
}

void Session::on_connect(int) {}

void Session::on_read(const char* data, size_t len) {
  if (closed_) return;
  ssize_t rv = nghttp2_session_mem_recv(ng_, reinterpret_cast<const uint8_t*>(data), len);
  if (rv < 0) {
    // Fatal for the connection (bad preface, flood, too many CONTINUATIONs, ...): nghttp2 may
    // have queued a GOAWAY; try to send it, then close.
    SKIFF_LOG(kDebug) << "h2 receive error: " << nghttp2_strerror(static_cast<int>(rv));
    count_protocol_error();
    nghttp2_session_send(ng_);
    write_out();
    close(nghttp2_strerror(static_cast<int>(rv)));
    return;
  }
  if (transport_->write_backlog() >= kWriteHighWater && !reading_paused_) {
    reading_paused_ = true;
    transport_->read_stop();
  }
  schedule_flush();
  // Under light load the first read of a loop iteration sends what it produced (this session's
  // and its peers' output) at once, not after every other ready socket was read: -15 us p50
  // and -35 us p99 at 4,000 req/s (bursts of 4 requests); saturation keeps one write per turn.
  worker_.flush_first_now();
}

void Session::on_read_end(int status) {
  close(status == UV_EOF ? "peer closed the connection" : uv_strerror(status));
}

void Session::on_write_done(int status) {
  if (status < 0) {
    close(uv_strerror(status));
    return;
  }
  ++writes_done_;
  if (transport_->write_backlog() < kWriteHighWater) schedule_flush();
}

ssize_t Session::on_send(nghttp2_session*, const uint8_t* data, size_t len, int, void* user) {
  auto* self = static_cast<Session*>(user);
  if (batch_full(self->out_.size(), self->sliced_bytes_)) return NGHTTP2_ERR_WOULDBLOCK;
  self->out_.append(reinterpret_cast<const char*>(data), len);
  return static_cast<ssize_t>(len);
}

int Session::on_send_data(nghttp2_session*, nghttp2_frame* frame, const uint8_t* framehd,
                          size_t length, nghttp2_data_source*, void* user) {
  auto* self = static_cast<Session*>(user);
  if (batch_full(self->out_.size(), self->sliced_bytes_)) return NGHTTP2_ERR_WOULDBLOCK;
  Body* body = self->send_body(frame->hd.stream_id);
  if (body == nullptr || body->size() < length) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  self->out_.append(reinterpret_cast<const char*>(framehd), 9);
  // No padding: skiff never sets a select_padding callback, so frame->data.padlen is 0.
  if (length < kSendInPlace) {
    body->take(length, self->out_);
    return 0;
  }
  body->take_slices(length, [self](const Body::Slice& s) {
    self->sliced_.push_back({self->out_.size(), s});
    self->sliced_bytes_ += s.size();
  });
  return 0;
}

ssize_t Session::on_read_data(nghttp2_session* ng, int32_t stream_id, uint8_t*, size_t length,
                              uint32_t* flags, nghttp2_data_source*, void* user) {
  auto* self = static_cast<Session*>(user);
  Body* body = self->send_body(stream_id);
  if (body == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  size_t n = std::min(length, body->size());
  if (n == 0 && !body->finished()) return NGHTTP2_ERR_DEFERRED;
  *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
  if (body->finished() && n == body->size()) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (body->has_trailers()) {
      HeaderList trailers = body->take_trailers();
      std::span<const nghttp2_nv> nva = to_nv(trailers);
      if (nghttp2_submit_trailer(ng, stream_id, nva.data(), nva.size()) == 0) {
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      }
    }
  }
  return static_cast<ssize_t>(n);
}

}  // namespace skiff::h2
