// Hostile HTTP/2 connections written frame by frame (reliability.md §1): floods, rapid reset,
// bad prefaces, stream-limit abuse. skiff must end the offending connection within a deadline,
// with a GOAWAY where nghttp2 queues one, and keep serving everyone else.
#include <gtest/gtest.h>

#include <iostream>

#include "h2_fixture.h"

namespace skiff::it::h2 {
namespace {

using HostileConnection = H2Test;

// Closing the connection is the expected outcome, so these waits pass as soon as EOF arrives.
::testing::AssertionResult closes(RawH2Client& client, Millis timeout = kWaitTimeout) {
  if (client.wait_closed(timeout)) return ::testing::AssertionSuccess();
  ::testing::AssertionResult failure = ::testing::AssertionFailure();
  failure << "connection still open after " << timeout.count() << " ms; frames received:";
  size_t n = 0;
  for (const Frame& f : client.frames()) {
    if (++n > 20) {
      failure << " ... (" << client.frames().size() << " in all)";
      break;
    }
    failure << " " << describe(f);
  }
  return failure;
}

std::string describe_goaway(const RawH2Client& client) {
  std::optional<Frame> g = client.goaway();
  return g ? describe(*g) : std::string("no GOAWAY");
}

// 10: CVE-2023-44487. nghttp2's limiter (burst 1000, 33/s) answers with GOAWAY; skiff must then
// close the connection instead of serving it on.
TEST_F(HostileConnection, H2_RapidResetGetsGoaway) {
  RawH2Client client(port());
  ASSERT_TRUE(client.connected()) << client.error();
  ASSERT_EQ(client.handshake(), "");
  constexpr int kStreams = 2000;
  const HeaderList headers = grpc_request_headers(kUnaryPath);
  std::string burst;
  for (int i = 0; i < kStreams; ++i) {
    const int32_t id = 1 + 2 * i;
    burst += headers_frame(id, headers, NGHTTP2_FLAG_END_HEADERS);
    burst += rst_stream_frame(id, NGHTTP2_CANCEL);
  }
  // skiff may close mid-write: any outcome but a timeout is fine here.
  Socket::Io io = client.send(burst);
  EXPECT_NE(io, Socket::Io::kTimeout);
  EXPECT_TRUE(closes(client));
  std::optional<Frame> goaway = client.goaway();
  ASSERT_TRUE(goaway) << "closed without GOAWAY after " << kStreams << " resets";
  EXPECT_TRUE(goaway->error_code() == NGHTTP2_INTERNAL_ERROR ||
              goaway->error_code() == NGHTTP2_ENHANCE_YOUR_CALM)
      << describe(*goaway);
  EXPECT_LT(goaway->last_stream_id(), 2 * kStreams) << "GOAWAY only after the whole burst";
  std::cerr << "[ rapid reset ] " << describe(*goaway) << ", upstream calls " << upstream_.calls()
            << "\n";
}

// 11
TEST_F(HostileConnection, H2_GarbagePrefaceIsClosed) {
  const std::string http1 = "GET / HTTP/1.1\r\nHost: skiff\r\nConnection: Upgrade\r\n\r\n";
  const std::string binary(64, '\xff');
  const std::string almost = "PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n";  // one field wrong
  for (const std::string& garbage : {http1, binary, almost}) {
    SCOPED_TRACE(::testing::PrintToString(garbage));
    RawH2Client client(port());
    ASSERT_TRUE(client.connected()) << client.error();
    client.send(garbage);
    EXPECT_TRUE(closes(client));
    for (const Frame& f : client.frames()) {
      EXPECT_TRUE(f.type == NGHTTP2_SETTINGS || f.type == NGHTTP2_GOAWAY ||
                  f.type == NGHTTP2_WINDOW_UPDATE)
          << describe(f);
    }
  }
}

// A valid preface followed by frames that are connection errors (RFC 9113): GOAWAY with the
// stated code, then close.
TEST_F(HostileConnection, H2_InvalidFrameGetsGoaway) {
  struct Case {
    const char* name;
    std::string bytes;
    uint32_t code;
  };
  const Case cases[] = {
      {"DATA on stream 0", data_frame(0, "x", NGHTTP2_FLAG_NONE), NGHTTP2_PROTOCOL_ERROR},
      {"HEADERS on an even stream",
       headers_frame(2, grpc_request_headers(kUnaryPath), NGHTTP2_FLAG_END_HEADERS),
       NGHTTP2_PROTOCOL_ERROR},
      {"connection WINDOW_UPDATE of 0", window_update_frame(0, 0), NGHTTP2_PROTOCOL_ERROR},
      {"SETTINGS_INITIAL_WINDOW_SIZE 2^31",
       settings_frame({{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 0x80000000u}}),
       NGHTTP2_FLOW_CONTROL_ERROR},
      {"PING of 7 bytes", frame_bytes(NGHTTP2_PING, 0, 0, "1234567"), NGHTTP2_FRAME_SIZE_ERROR},
      {"frame over SETTINGS_MAX_FRAME_SIZE",
       frame_bytes(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, 1, std::string(20000, 'a')),
       NGHTTP2_FRAME_SIZE_ERROR},
      {"SETTINGS with 40 entries (max_settings 32)",
       settings_frame(std::vector<std::pair<uint16_t, uint32_t>>(
           40, {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, 4096})),
       NGHTTP2_ENHANCE_YOUR_CALM},
      {"connection window over 2^31-1", window_update_frame(0, 0x7fffffff),
       NGHTTP2_FLOW_CONTROL_ERROR},
      {"CONTINUATION without HEADERS", continuation_frame(1, "", NGHTTP2_FLAG_END_HEADERS),
       NGHTTP2_PROTOCOL_ERROR},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    RawH2Client client(port());
    ASSERT_TRUE(client.connected()) << client.error();
    ASSERT_EQ(client.handshake(), "");
    client.send(c.bytes);
    EXPECT_TRUE(closes(client));
    std::optional<Frame> goaway = client.goaway();
    ASSERT_TRUE(goaway) << "closed without GOAWAY";
    EXPECT_EQ(goaway->error_code(), c.code) << describe(*goaway);
  }
}

// 12: 101 open streams against MAX_CONCURRENT_STREAMS 100, after the SETTINGS ACK. nghttp2 1.52
// treats that as a connection error (reliability.md §1.2); REFUSED_STREAM would also do.
TEST_F(HostileConnection, H2_TooManyConcurrentStreamsRefused) {
  RawH2Client client(port());
  ASSERT_TRUE(client.connected()) << client.error();
  ASSERT_EQ(client.handshake(), "");
  constexpr int kStreams = 101;
  const HeaderList headers = grpc_request_headers(kUnaryPath);
  std::string burst;
  for (int i = 0; i < kStreams; ++i) {
    burst += headers_frame(1 + 2 * i, headers, NGHTTP2_FLAG_END_HEADERS);  // no END_STREAM
  }
  ASSERT_EQ(client.send(burst), Socket::Io::kOk);
  const int32_t excess = 1 + 2 * (kStreams - 1);
  std::optional<Frame> verdict = client.wait_for([&](const Frame& f) {
    return f.type == NGHTTP2_GOAWAY || (f.type == NGHTTP2_RST_STREAM && f.stream_id == excess);
  });
  ASSERT_TRUE(verdict) << "neither REFUSED_STREAM nor GOAWAY; closed=" << client.closed();
  if (verdict->type == NGHTTP2_RST_STREAM) {
    EXPECT_EQ(verdict->error_code(), NGHTTP2_REFUSED_STREAM) << describe(*verdict);
  } else {
    EXPECT_EQ(verdict->error_code(), NGHTTP2_PROTOCOL_ERROR) << describe(*verdict);
    EXPECT_LT(verdict->last_stream_id(), excess) << describe(*verdict);
    EXPECT_TRUE(closes(client));
  }
  // No stream below the limit was refused.
  for (const Frame& f : client.frames()) {
    if (f.type == NGHTTP2_RST_STREAM) {
      EXPECT_EQ(f.stream_id, excess) << describe(f);
    }
  }
}

// 12, before the SETTINGS ACK: the limit is still pending, so nghttp2 refuses only the excess
// stream (REFUSED_STREAM: "no processing occurred, can be retried") and keeps the connection.
TEST_F(HostileConnection, H2_StreamsOverUnackedLimitRefused) {
  RawH2Client client(port());
  ASSERT_TRUE(client.connected()) << client.error();
  client.set_auto_ack(false);
  constexpr int kStreams = 101;
  std::string burst = std::string(kClientPreface) + settings_frame();
  for (int i = 0; i < kStreams; ++i) {
    burst += headers_frame(1 + 2 * i, grpc_request_headers(kUnaryPath), NGHTTP2_FLAG_END_HEADERS);
  }
  ASSERT_EQ(client.send(burst), Socket::Io::kOk);
  const int32_t excess = 1 + 2 * (kStreams - 1);
  std::optional<Frame> verdict = client.wait_for([&](const Frame& f) {
    return f.type == NGHTTP2_GOAWAY || (f.type == NGHTTP2_RST_STREAM && f.stream_id == excess);
  });
  ASSERT_TRUE(verdict) << "the excess stream was not refused; closed=" << client.closed();
  ASSERT_EQ(verdict->type, NGHTTP2_RST_STREAM) << describe(*verdict);
  EXPECT_EQ(verdict->error_code(), NGHTTP2_REFUSED_STREAM) << describe(*verdict);
  // The first stream still works: finish it and get its answer.
  ASSERT_EQ(client.send(settings_ack_frame() +
                        data_frame(1, unary_request_body("first"), NGHTTP2_FLAG_END_STREAM)),
            Socket::Io::kOk);
  std::optional<Frame> end = client.wait_for([](const Frame& f) {
    return f.stream_id == 1 && (f.type == NGHTTP2_RST_STREAM || f.has(NGHTTP2_FLAG_END_STREAM));
  });
  ASSERT_TRUE(end) << "stream 1 never ended; closed=" << client.closed();
  EXPECT_EQ(find_header(end->headers, "grpc-status"), "0") << describe(*end);
  for (const Frame& f : client.frames()) {
    if (f.type == NGHTTP2_RST_STREAM) {
      EXPECT_EQ(f.stream_id, excess) << describe(f);
    }
  }
}

// MadeYouReset (CVE-2025-8671) primitive: a valid call, then a frame that makes skiff itself
// reset the stream (stream WINDOW_UPDATE overflow -> FLOW_CONTROL_ERROR). The upstream attempt
// must be cancelled at once, or the reset stream keeps the backend busy outside the limit.
TEST_F(HostileConnection, H2_ServerResetCancelsUpstream) {
  RawH2Client client(port());
  ASSERT_TRUE(client.connected()) << client.error();
  ASSERT_EQ(client.handshake(), "");
  skiff::testing::Request slow;
  slow.set_payload("slow");
  slow.set_delay_ms(30'000);  // ends early when cancelled
  ASSERT_EQ(
      client.send(headers_frame(1, grpc_request_headers(kUnaryPath), NGHTTP2_FLAG_END_HEADERS) +
                  data_frame(1, grpc_message(slow.SerializeAsString()), NGHTTP2_FLAG_END_STREAM)),
      Socket::Io::kOk);
  ASSERT_TRUE(upstream_.wait_for_calls(1, kWaitTimeout)) << "the call never reached upstream";
  ASSERT_EQ(client.send(window_update_frame(1, 0x7fffffff)), Socket::Io::kOk);
  std::optional<Frame> reset = client.wait_for([](const Frame& f) { return f.stream_id == 1; });
  ASSERT_TRUE(reset) << "no answer on stream 1; closed=" << client.closed();
  EXPECT_EQ(reset->type, NGHTTP2_RST_STREAM) << describe(*reset);
  EXPECT_EQ(reset->error_code(), NGHTTP2_FLOW_CONTROL_ERROR) << describe(*reset);
  EXPECT_TRUE(upstream_.wait_for_cancellations(1, kWaitTimeout))
      << "the upstream attempt outlived the downstream stream";
}

// 13: CVE-2019-9515. SETTINGS frames from a client that does not read: nghttp2's
// max_outbound_ack (1000 queued ACKs) makes the session fatal and skiff closes.
TEST_F(HostileConnection, H2_SettingsFloodIsClosed) {
  RawH2Client client(port(), /*rcvbuf=*/4096);
  ASSERT_TRUE(client.connected()) << client.error();
  ASSERT_EQ(client.handshake(), "");
  std::string flood;
  for (int i = 0; i < 20'000; ++i) flood += settings_frame();
  Socket::Io io = client.send(flood, kWaitTimeout, /*drain_input=*/false);
  EXPECT_NE(io, Socket::Io::kTimeout) << "skiff neither read the flood nor closed";
  EXPECT_TRUE(closes(client));
  std::cerr << "[ settings flood ] write " << to_string(io) << ", " << client.frames().size()
            << " frames read, " << describe_goaway(client) << "\n";
}

// 13: CVE-2019-9512, the same with PINGs.
TEST_F(HostileConnection, H2_PingFloodIsClosed) {
  RawH2Client client(port(), /*rcvbuf=*/4096);
  ASSERT_TRUE(client.connected()) << client.error();
  ASSERT_EQ(client.handshake(), "");
  std::string flood;
  for (uint64_t i = 0; i < 20'000; ++i) flood += ping_frame(i);
  Socket::Io io = client.send(flood, kWaitTimeout, /*drain_input=*/false);
  EXPECT_NE(io, Socket::Io::kTimeout) << "skiff neither read the flood nor closed";
  EXPECT_TRUE(closes(client));
  std::cerr << "[ ping flood ] write " << to_string(io) << ", " << client.frames().size()
            << " frames read, " << describe_goaway(client) << "\n";
}

// 15: CVE-2024-27316 family. HEADERS without END_HEADERS, then CONTINUATIONs without end:
// max_continuations (8) is fatal at the 9th.
TEST_F(HostileConnection, H2_ContinuationFloodIsClosed) {
  RawH2Client client(port());
  ASSERT_TRUE(client.connected()) << client.error();
  ASSERT_EQ(client.handshake(), "");
  std::string flood = headers_frame(1, grpc_request_headers(kUnaryPath), NGHTTP2_FLAG_NONE);
  for (int i = 0; i < 200; ++i) {
    flood += continuation_frame(
        1, hpack_literals({{"x-c-" + std::to_string(i), std::string(1000, 'c')}}),
        NGHTTP2_FLAG_NONE);
  }
  Socket::Io io = client.send(flood);
  EXPECT_NE(io, Socket::Io::kTimeout);
  EXPECT_TRUE(closes(client));
  for (const Frame& f : client.frames()) {
    EXPECT_NE(f.type, NGHTTP2_HEADERS)
        << "a response to an unfinished header block: " << describe(f);
  }
  EXPECT_EQ(upstream_.calls(), 0);
}

// 5: the CONTINUATION drip. A header block that never ends (here a HEADERS without END_HEADERS,
// then one byte of a CONTINUATION) holds its connection, where nothing else can move, until the
// 10 s header block timeout closes it. A connection with a complete, open stream is untouched.
TEST_F(HostileConnection, H2_UnfinishedHeaderBlockIsClosedByTheHeaderTimeout) {
  RawH2Client busy(port());
  ASSERT_TRUE(busy.connected()) << busy.error();
  ASSERT_EQ(busy.handshake(), "");
  ASSERT_EQ(busy.send(headers_frame(1, grpc_request_headers(kBidiPath), NGHTTP2_FLAG_END_HEADERS)),
            Socket::Io::kOk);

  RawH2Client drip(port());
  ASSERT_TRUE(drip.connected()) << drip.error();
  ASSERT_EQ(drip.handshake(), "");
  const auto sent = Clock::now();
  const std::string continuation = continuation_frame(
      1, hpack_literals({{"x-drip", std::string(100, 'd')}}), NGHTTP2_FLAG_END_HEADERS);
  ASSERT_EQ(drip.send(headers_frame(1, grpc_request_headers(kUnaryPath), NGHTTP2_FLAG_NONE) +
                      continuation.substr(0, 10)),
            Socket::Io::kOk);
  EXPECT_TRUE(closes(drip, Millis(20'000)));
  // Not before the timeout (uv timers never fire early; 1 s for when skiff read the frame).
  EXPECT_GE(Clock::now() - sent, Millis(9'000));
  EXPECT_EQ(upstream_.calls(), 1) << "only the complete stream may reach the upstream";

  ASSERT_EQ(busy.send(ping_frame(42)), Socket::Io::kOk);
  EXPECT_TRUE(busy.wait_for([](const Frame& f) {
                    return f.type == NGHTTP2_PING && f.has(NGHTTP2_FLAG_ACK);
                  })
                  .has_value())
      << "the connection with a complete stream was closed too";
}

// "MadeYouReset" (CVE-2025-8671): requests that nghttp2 1.52 resets itself cost a stream (and an
// upstream call) each and are not counted by its rapid-reset limiter. skiff counts every reset
// nghttp2 sends on its own as a glitch: the budget (burst 1000, 33/s) must end the connection
// with GOAWAY(ENHANCE_YOUR_CALM).
struct InducedReset {
  const char* name;
  std::string (*request)(int32_t stream_id);  // the bytes of one request that nghttp2 resets
};

std::ostream& operator<<(std::ostream& os, const InducedReset& c) { return os << c.name; }

class InducedResetFlood : public H2Test, public ::testing::WithParamInterface<InducedReset> {};

TEST_P(InducedResetFlood, GetsEnhanceYourCalm) {
  RawH2Client client(port());
  ASSERT_TRUE(client.connected()) << client.error();
  ASSERT_EQ(client.handshake(), "");
  constexpr int kStreams = 3000;
  for (int batch = 0; batch < kStreams / 50 && !client.closed(); ++batch) {
    std::string bytes;
    for (int i = 0; i < 50; ++i) bytes += GetParam().request(1 + 2 * (batch * 50 + i));
    if (client.send(bytes) != Socket::Io::kOk) break;
    // Wait for this batch's resets: unsent resets still count against MAX_CONCURRENT_STREAMS,
    // and that limit (a different defence) must not be what ends the connection here.
    int resets = 0;
    const auto deadline = Clock::now() + kWaitTimeout;
    while (resets < 50 && !client.closed()) {
      std::optional<Frame> f = client.next_frame(deadline);
      if (!f) break;
      if (f->type == NGHTTP2_RST_STREAM) ++resets;
    }
  }
  EXPECT_TRUE(closes(client));
  std::optional<Frame> goaway = client.goaway();
  ASSERT_TRUE(goaway) << "closed without GOAWAY";
  EXPECT_EQ(goaway->error_code(), NGHTTP2_ENHANCE_YOUR_CALM) << describe(*goaway);
}

INSTANTIATE_TEST_SUITE_P(
    H2, InducedResetFlood,
    ::testing::Values(
        // A connection-specific header: reset as the headers arrive.
        InducedReset{"TeGzip",
                     [](int32_t id) {
                       HeaderList headers = grpc_request_headers(kUnaryPath);
                       headers.push_back({"te", "gzip"});
                       return headers_frame(id, headers,
                                            NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM);
                     }},
        // A body shorter than its content-length: valid headers (the call has started), reset
        // when END_STREAM arrives.
        InducedReset{"ContentLengthMismatch",
                     [](int32_t id) {
                       const HeaderList headers =
                           grpc_request_headers(kUnaryPath, {{"content-length", "100"}});
                       return headers_frame(id, headers, NGHTTP2_FLAG_END_HEADERS) +
                              data_frame(id, grpc_message("hello"), NGHTTP2_FLAG_END_STREAM);
                     }}),
    [](const ::testing::TestParamInfo<InducedReset>& info) { return info.param.name; });

// CVE-2019-9518: DATA frames with no payload and without END_STREAM make the server work for
// nothing; padding alone is no payload.
class EmptyDataFlood : public H2Test, public ::testing::WithParamInterface<bool> {};

TEST_P(EmptyDataFlood, GetsEnhanceYourCalm) {
  const bool padded = GetParam();
  RawH2Client client(port());
  ASSERT_TRUE(client.connected()) << client.error();
  ASSERT_EQ(client.handshake(), "");
  client.send(headers_frame(1, grpc_request_headers(kBidiPath), NGHTTP2_FLAG_END_HEADERS));
  // Padded: the Pad Length byte (5), then 5 bytes of padding.
  const std::string empty = padded ? frame_bytes(NGHTTP2_DATA, NGHTTP2_FLAG_PADDED, 1,
                                                 std::string("\x05") + std::string(5, '\0'))
                                   : data_frame(1, "", NGHTTP2_FLAG_NONE);
  std::string empties;
  for (int i = 0; i < 200; ++i) empties += empty;
  for (int round = 0; round < 25 && !client.closed(); ++round) {
    if (client.send(empties) != Socket::Io::kOk) break;
  }
  EXPECT_TRUE(closes(client));
  std::optional<Frame> goaway = client.goaway();
  ASSERT_TRUE(goaway) << "closed without GOAWAY";
  EXPECT_EQ(goaway->error_code(), NGHTTP2_ENHANCE_YOUR_CALM) << describe(*goaway);
}

INSTANTIATE_TEST_SUITE_P(H2, EmptyDataFlood, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "PaddingOnly" : "NoPayload";
                         });

}  // namespace
}  // namespace skiff::it::h2
