// RefusingUpstream: a raw HTTP/2 upstream on nghttp2's server session, for what grpc++ servers
// never do: refuse streams with RST_STREAM(REFUSED_STREAM), and send a GOAWAY whose
// last-stream-id leaves the client's later streams unprocessed (nghttp2 closes those with
// REFUSED_STREAM on the client side). Every other stream gets a valid gRPC unary answer:
// HEADERS :status 200, one gRPC message, trailers grpc-status 0.
//
// It listens on 127.0.0.1:0 and serves every connection from one thread (a poll() loop with a
// stop pipe); it records each request stream it sees, so a test can check what a retry replayed.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "raw_h2_client.h"

namespace skiff::it::h2 {

struct RefusingUpstreamOptions {
  // The first |refuse_first| request streams seen, across all connections, are refused with
  // RST_STREAM(REFUSED_STREAM) once their request headers have arrived.
  int refuse_first = 0;
  // Refuse only once the whole request (END_STREAM) has arrived, instead of on its headers: the
  // client has then sent the entire body on the refused stream, so a retry must replay it.
  bool refuse_after_request = false;
  // Refuse with a gRPC trailers-only answer (HEADERS :status 200, content-type, this
  // grpc-status, END_STREAM) instead of RST_STREAM(REFUSED_STREAM): a failure the route's
  // `retry` policy decides on. With refuse_pushback_ms, the answer also carries
  // grpc-retry-pushback-ms, which sets the wait before the retry exactly.
  std::optional<int> refuse_with_status;
  std::optional<int> refuse_pushback_ms;
  std::string refuse_skiff_rejected;  // non-empty: also sent as skiff-rejected (a peer skiff's)
  // After answering the stream with this id (on the first connection that has one), send
  // GOAWAY(last_stream_id = this id, NO_ERROR) and keep serving streams up to it. Once only.
  std::optional<int32_t> goaway_after_stream;
  // Answers are held until at least this many request streams have been seen in total, so a
  // test can have several streams in flight when the first answer (and its GOAWAY) goes out.
  int hold_answers_until_seen = 0;
  // Answers are also held until the test calls release_answers().
  bool hold_answers = false;
  // SETTINGS_MAX_CONCURRENT_STREAMS in the server SETTINGS of every connection.
  uint32_t max_concurrent_streams = 100;
  // After accepting this many connections the listener closes, so later connects are refused
  // (0: no limit).
  int max_accepts = 0;
  // Close every accepted connection at once, before sending SETTINGS: a port that accepts TCP
  // but is no HTTP/2 server (a dying process, an L4 balancer without backends).
  bool close_on_accept = false;
  // The gRPC message payload of every answer; empty is a valid empty protobuf message.
  std::string response_message;
  // The length the answer's message prefix declares, when it is not the payload's: more than
  // the payload makes a truncated message that the grpc-status 0 trailers still follow.
  std::optional<uint32_t> declared_message_bytes;
  // End the answer with END_STREAM on its DATA, without trailers (a broken gRPC server).
  bool omit_trailers = false;
  // Before the answer, an interim response with this :status (e.g. "103").
  std::string interim_status;
  // Instead of the gRPC answer, a non-gRPC one: this :status and content-type (none when
  // empty), then |http_body| as DATA if non-empty, else nothing (a headers-only answer).
  std::optional<int> http_status;
  std::string http_content_type;
  std::string http_body;
};

// One request stream as the upstream saw it.
struct UpstreamStream {
  enum class Fate {
    kOpen,             // not answered, refused or closed yet
    kRefused,          // refused by refuse_first (RST_STREAM, or refuse_with_status)
    kAnswered,         // the unary answer was submitted
    kRefusedByGoaway,  // above our GOAWAY's last-stream-id: closed by nghttp2, unprocessed
    kReset,            // closed otherwise before an answer (the client reset it, conn lost)
  };
  int connection = 0;  // accept order, from 0
  int32_t id = 0;
  HeaderList headers;             // the request header block
  std::string body;               // every DATA payload byte received
  bool request_complete = false;  // END_STREAM received
  Fate fate = Fate::kOpen;
  std::optional<uint32_t> close_code;  // nghttp2's on_stream_close code, once closed
};
std::string_view to_string(UpstreamStream::Fate fate);

struct RefusingUpstreamStats {
  int connections = 0;        // accepted
  int closed = 0;             // of those, closed by the client (or on an error)
  int seen = 0;               // request streams whose headers began to arrive
  int refused = 0;            // refused by refuse_first
  int answered = 0;           // answers submitted
  int refused_by_goaway = 0;  // closed by our GOAWAY
  bool goaway_sent = false;   // submitted
  int settings_acks = 0;      // SETTINGS ACKs received: the client applied our SETTINGS
};

class RefusingUpstream {
 public:
  // Starts listening and serving at once; on failure error() says why and port() is 0.
  explicit RefusingUpstream(RefusingUpstreamOptions options = {});
  ~RefusingUpstream();  // stop()
  RefusingUpstream(const RefusingUpstream&) = delete;
  RefusingUpstream& operator=(const RefusingUpstream&) = delete;

  int port() const;
  std::string address() const { return "127.0.0.1:" + std::to_string(port()); }
  const std::string& error() const;

  // Closes every connection and the listener and joins the thread. Idempotent.
  void stop();

  // Ends hold_answers: the held answers go out on the loop's next turn (within 100 ms).
  void release_answers();

  RefusingUpstreamStats stats() const;
  // Every request stream seen, in the order their headers arrived.
  std::vector<UpstreamStream> streams() const;
  // Waits up to |timeout| until |pred| holds for the stats; returns whether it did.
  bool wait_until(const std::function<bool(const RefusingUpstreamStats&)>& pred,
                  Millis timeout = kWaitTimeout) const;
  // "conn 0 stream 1 refused {grpc-timeout: ...} 10245 bytes END_STREAM ...", one line per
  // stream, for assertion messages.
  std::string describe() const;

  struct State;  // the server thread's state (refusing_upstream.cc)

 private:
  std::unique_ptr<State> state_;
};

}  // namespace skiff::it::h2
