// Session: what server and client HTTP/2 sessions share — the nghttp2 session over a TcpStream,
// output batched once per loop turn (C8), NO_COPY DATA taken straight out of a Body, read
// backpressure while the socket's write backlog is high, and a close protocol.
#pragma once

#include <nghttp2/nghttp2.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "h2/body.h"
#include "h2/header.h"
#include "net/connection_stats.h"
#include "net/transport.h"
#include "net/worker.h"

namespace skiff::h2 {

class Session : public net::TransportHandler, public net::Flushable, public net::Deletable {
 public:
  // |transport| is not connected yet (the subclass accepts or dials through it).
  Session(net::Worker& worker, const Limits& limits, std::unique_ptr<net::Transport> transport);
  ~Session() override;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Called once when the session has closed (connection lost, protocol error, or finished);
  // the owner then hands the session to Worker::defer_delete.
  void set_on_closed(std::function<void(Session*)> fn) { on_closed_ = std::move(fn); }

  // Where this connection is counted (its listener's or endpoint's, on this worker); counts it
  // as open until it closes. Optional: sessions without stats count nothing.
  void set_stats(net::ConnectionStats* stats);

  bool closed() const { return closed_; }
  // The peer's verified identity (TLS client certificate's SPIFFE ID); empty if none.
  std::string_view peer_identity() const {
    return transport_ ? transport_->peer_identity() : std::string_view();
  }
  net::Worker& worker() { return worker_; }
  // The peer's "ip:port" (empty once closed).
  std::string peer_address() const { return transport_ ? transport_->peer_address() : ""; }

  // Queue output for this loop turn's flush.
  void schedule_flush();
  // Wake the data provider of |stream_id| (its Body got data or ended).
  void resume_data(int32_t stream_id);
  // Return |n| bytes of receive window for |stream_id| (the next hop took them). Works for
  // streams that are gone too: the connection window still gets the credit.
  void consume(int32_t stream_id, size_t n);
  // Resets |stream_id|: skiff's own verdict on the stream (on_own_reset tells the subclass).
  void reset_stream(int32_t stream_id, uint32_t error_code);
  // Closes the connection now; every live stream is told (on_session_closed).
  void close(const char* reason);

  // net::Flushable
  void flush() override;

  // net::TransportHandler
  void on_connect(int status) override;
  void on_read(const char* data, size_t len) override;
  void on_read_end(int status) override;
  void on_write_done(int status) override;

 protected:
  // The Body whose bytes are sent as DATA on |stream_id|, or null if the stream is gone.
  virtual Body* send_body(int32_t stream_id) = 0;
  // The connection is closing: tell every stream's handler.
  virtual void on_session_closed(const char* reason) = 0;
  // reset_stream(|stream_id|) was called; the RST_STREAM goes out with the next flush.
  virtual void on_own_reset(int32_t /*stream_id*/) {}
  // A frame went out (nghttp2's on_frame_send), after it was counted.
  virtual void on_frame_sent(const nghttp2_frame& /*frame*/) {}

  // Fills the callbacks every session uses; subclasses add their own.
  static void set_common_callbacks(nghttp2_session_callbacks* cbs);
  // Data provider reading from send_body(stream_id).
  static nghttp2_data_provider data_provider();
  // Counting, for the subclasses' nghttp2 callbacks.
  void count_frame_recv(const nghttp2_frame* frame);
  void count_stream_opened() {
    if (stats_ != nullptr) stats_->streams.inc();
  }
  void count_stream_closed() {
    if (stats_ != nullptr) stats_->streams.dec();
  }
  void count_flush_timeout() {
    if (stats_ != nullptr) stats_->flush_timeouts.add();
  }
  // Queued writes the transport has finished since the session began: while bytes are queued,
  // a count that stands still means the peer is not reading.
  uint64_t writes_done() const { return writes_done_; }

  net::Worker& worker_;
  Limits limits_;
  nghttp2_session* ng_ = nullptr;
  std::unique_ptr<net::Transport> transport_;

 private:
  static ssize_t on_send(nghttp2_session*, const uint8_t* data, size_t len, int, void* user);
  static int on_send_data(nghttp2_session*, nghttp2_frame* frame, const uint8_t* framehd,
                          size_t length, nghttp2_data_source*, void* user);
  static int on_frame_send(nghttp2_session*, const nghttp2_frame* frame, void* user);
  // At most once per connection, whichever side's error ended it.
  void count_protocol_error();
  static ssize_t on_read_data(nghttp2_session*, int32_t stream_id, uint8_t*, size_t length,
                              uint32_t* flags, nghttp2_data_source*, void* user);

  // Hands out_ (and the DATA payloads sent in place) to the transport; empties both.
  void write_out();
  void release_sliced();

  std::string out_;  // frames produced by this flush, but large DATA payloads (sliced_)
  // Large DATA payloads sent in place from their Body: each goes after out_'s first |at| bytes.
  struct SlicedData {
    size_t at;
    Body::Slice slice;
  };
  std::vector<SlicedData> sliced_;
  size_t sliced_bytes_ = 0;
  uint64_t writes_done_ = 0;
  bool flush_scheduled_ = false;
  bool reading_paused_ = false;
  bool closed_ = false;
  bool protocol_error_counted_ = false;
  net::ConnectionStats* stats_ = nullptr;
  std::function<void(Session*)> on_closed_;
};

}  // namespace skiff::h2
