// http2.stream_flush_timeout (reliability.md §6, 16 and 17): a client that keeps its window
// shut, opens it a byte at a time after the upstream has finished, or stops reading its socket
// must not hold skiff's buffers, its upstream call and the upstream connection's window for
// ever. skiff resets such a stream with CANCEL (which cancels the upstream call) or closes such
// a connection, within 1.25 timeouts, and counts it; a client that reads slowly but steadily is
// left alone. The timeout here is 1 s.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "h2_fixture.h"
#include "metrics_scrape.h"

namespace skiff::it::h2 {
namespace {

constexpr Millis kFlushTimeout{1'000};
constexpr std::string_view kServerStreamPath = "/skiff.testing.TestService/ServerStream";

class FlushTimeout : public H2Test {
 protected:
  void SetUp() override {
    skiff_ = std::make_unique<SkiffProcess>(
        h2_test_config(upstream_.address(), "", "", ", stream_flush_timeout: 1s",
                       "admin:\n  address: 127.0.0.1:0\n"),
        SkiffOptions{.listeners = {"outbound", "admin"}});
  }

  // Request bytes for stream |id|: a call to |path| whose answer is |count| messages of |bytes|
  // each, |interval_ms| apart.
  static std::string request(int32_t id, std::string_view path, int count, int bytes,
                             int interval_ms = 0) {
    skiff::testing::Request req;
    req.set_response_count(count);
    req.set_response_bytes(bytes);
    req.set_interval_ms(interval_ms);
    return headers_frame(id, grpc_request_headers(path), NGHTTP2_FLAG_END_HEADERS) +
           data_frame(id, grpc_message(req.SerializeAsString()), NGHTTP2_FLAG_END_STREAM);
  }

  // Connects |client| and has skiff apply |window| as the initial window of every stream it
  // sends on (SETTINGS, ACKed). Empty on success, else why not.
  static std::string start_with_window(RawH2Client& client, uint32_t window) {
    if (!client.connected()) return "not connected: " + client.error();
    if (std::string failed = client.handshake(); !failed.empty()) return failed;
    if (client.send(settings_frame({{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, window}})) !=
        Socket::Io::kOk) {
      return "SETTINGS not sent";
    }
    const bool acked = client
                           .wait_for([](const Frame& f) {
                             return f.type == NGHTTP2_SETTINGS && f.has(NGHTTP2_FLAG_ACK);
                           })
                           .has_value();
    return acked ? "" : "SETTINGS not acknowledged";
  }

  // skiff_downstream_flush_timeouts_total reaches |n|.
  ::testing::AssertionResult flush_timeouts_reach(double n) {
    std::string last;
    if (metrics_until(
            *skiff_,
            [n](const std::string& m) {
              return metric_value(m, "skiff_downstream_flush_timeouts_total",
                                  {"listener=\"outbound\""}) >= n;
            },
            last)) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure()
           << "skiff_downstream_flush_timeouts_total never reached " << n << "; last scrape:\n"
           << last;
  }
};

bool is_reset(const Frame& f, int32_t id) {
  return f.type == NGHTTP2_RST_STREAM && f.stream_id == id;
}

size_t data_bytes(const RawH2Client& client, int32_t id) {
  size_t n = 0;
  for (const Frame& f : client.frames()) {
    if (f.type == NGHTTP2_DATA && f.stream_id == id) n += f.payload.size();
  }
  return n;
}

// 17: the client's stream window is 0 and stays 0. The response headers go out (HEADERS is not
// flow-controlled), the messages wait in skiff, and after the timeout the stream is reset and
// the upstream call cancelled; the connection itself stays up.
TEST_F(FlushTimeout, AStreamWhoseWindowStaysShutIsResetAndItsUpstreamCancelled) {
  RawH2Client client(port());
  ASSERT_EQ(start_with_window(client, 0), "");
  // 500 messages 20 ms apart: the upstream would stream for 10 s.
  const auto sent = Clock::now();
  ASSERT_EQ(client.send(request(1, kServerStreamPath, 500, 1024, 20)), Socket::Io::kOk);
  std::optional<Frame> reset =
      client.wait_for([](const Frame& f) { return is_reset(f, 1); }, Millis(10'000));
  ASSERT_TRUE(reset) << "no RST_STREAM on stream 1";
  EXPECT_EQ(reset->error_code(), NGHTTP2_CANCEL) << describe(*reset);
  // (uv_now has whole milliseconds)
  EXPECT_GE(Clock::now() - sent, kFlushTimeout - Millis(2)) << "reset before the timeout";
  EXPECT_EQ(data_bytes(client, 1), 0u) << "DATA past a zero window";
  // Ended well before its 10 s: cut off. (A handler inside Write when the stream is reset may
  // not see IsCancelled() yet, so cancellations() would race.)
  EXPECT_TRUE(upstream_.wait_for_finished(1, kWaitTimeout)) << "upstream call not cancelled";
  EXPECT_TRUE(flush_timeouts_reach(1));
  // The connection is still served.
  ASSERT_EQ(client.send(ping_frame(42)), Socket::Io::kOk);
  EXPECT_TRUE(client.wait_for([](const Frame& f) {
    return f.type == NGHTTP2_PING && f.has(NGHTTP2_FLAG_ACK);
  })) << "no PING ACK after the reset";
}

// 16: the upstream has finished a 64 KiB answer; the client opens its window 100 bytes at a
// time. Bytes do move, but once the upstream is done only finishing counts: the stream is reset
// about one timeout later.
TEST_F(FlushTimeout, AResponseDribbledOutAfterTheUpstreamFinishedIsReset) {
  RawH2Client client(port());
  ASSERT_EQ(start_with_window(client, 100), "");
  ASSERT_EQ(client.send(request(1, kServerStreamPath, 1, 64 * 1024)), Socket::Io::kOk);
  ASSERT_TRUE(upstream_.wait_for_finished(1, kWaitTimeout)) << "the upstream did not finish";
  // Each DATA frame (100 bytes) is answered with 100 more bytes of window, at most 200 times
  // (20 KB, far from the 64 KiB answer): a client that reads, but too slowly to ever finish.
  std::optional<Frame> reset;
  for (int i = 0; i < 200 && !reset; ++i) {
    std::optional<Frame> f = client.wait_for(
        [](const Frame& f) { return is_reset(f, 1) || (f.type == NGHTTP2_DATA); }, Millis(5'000));
    ASSERT_TRUE(f) << "neither DATA nor RST_STREAM on stream 1";
    if (is_reset(*f, 1)) {
      reset = f;
      break;
    }
    // Paced: the slowness is the behaviour under test.
    std::this_thread::sleep_for(Millis(50));
    ASSERT_EQ(client.send(window_update_frame(1, 100)), Socket::Io::kOk);
  }
  ASSERT_TRUE(reset) << "the stream was not reset; " << data_bytes(client, 1) << " bytes read";
  EXPECT_EQ(reset->error_code(), NGHTTP2_CANCEL) << describe(*reset);
  EXPECT_GT(data_bytes(client, 1), 100u) << "the window did move before the reset";
  EXPECT_LT(data_bytes(client, 1), 64u * 1024) << "the answer was delivered whole";
  EXPECT_TRUE(flush_timeouts_reach(1));
}

// 44: a slow consumer of a live stream is not cut off. The upstream sends 1,000-byte messages
// every 20 ms; the client opens 1,000 bytes of window per DATA frame it gets, 100 ms later, so
// skiff always holds bytes for it, and they move. For three and a half timeouts nothing is
// reset; then the client cancels, and the upstream call (20 s long) ends with it.
TEST_F(FlushTimeout, ASlowButSteadyReaderOfALiveStreamIsLeftAlone) {
  RawH2Client client(port());
  ASSERT_EQ(start_with_window(client, 1000), "");
  ASSERT_EQ(client.send(request(1, kServerStreamPath, 1000, 1000, 20)), Socket::Io::kOk);
  const auto until = Clock::now() + 7 * kFlushTimeout / 2;
  int frames = 0;
  for (; Clock::now() < until && frames < 100; ++frames) {
    std::optional<Frame> f = client.wait_for(
        [](const Frame& f) {
          return f.stream_id == 1 && (f.type == NGHTTP2_DATA || f.type == NGHTTP2_RST_STREAM);
        },
        Millis(5'000));
    ASSERT_TRUE(f) << "stream 1 stalled; " << data_bytes(client, 1) << " bytes read";
    ASSERT_NE(f->type, NGHTTP2_RST_STREAM) << "a steady reader was reset: " << describe(*f);
    std::this_thread::sleep_for(Millis(100));  // paced: the slow reader under test
    ASSERT_EQ(client.send(window_update_frame(1, static_cast<uint32_t>(f->payload.size()))),
              Socket::Io::kOk);
  }
  EXPECT_GE(frames, 10) << "the reader was not steady";
  ASSERT_EQ(client.send(rst_stream_frame(1, NGHTTP2_CANCEL)), Socket::Io::kOk);
  EXPECT_TRUE(upstream_.wait_for_finished(1, kWaitTimeout)) << "upstream call not cancelled";
  const HttpResponse metrics = http_get("http://" + skiff_->address("admin") + "/metrics");
  ASSERT_EQ(metrics.status, 200) << metrics;
  EXPECT_EQ(metric_value(metrics.body, "skiff_downstream_flush_timeouts_total"), 0) << metrics;
}

// 9517-style: the client opens every window but stops reading its socket. skiff's queued bytes
// then do not move, and after the timeout skiff closes the connection, which cancels the
// upstream calls.
TEST_F(FlushTimeout, AConnectionThatReadsNothingIsClosed) {
  RawH2Client client(port(), /*rcvbuf=*/4096);
  ASSERT_TRUE(client.connected()) << client.error();
  ASSERT_EQ(client.handshake(), "");
  std::string burst = settings_frame({{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 0x7fffffff}}) +
                      window_update_frame(0, 0x7fffffff - 65535);
  // Four streams of 64 x 64 KiB: 16 MiB, more than any socket buffer holds.
  constexpr int kStreams = 4;
  for (int i = 0; i < kStreams; ++i) {
    burst += request(1 + 2 * i, kServerStreamPath, 64, 64 * 1024);
  }
  ASSERT_EQ(client.send(burst, kWaitTimeout, /*drain_input=*/false), Socket::Io::kOk);
  // The upstream calls can only end by being cut off: the client has read next to nothing of
  // their 16 MiB.
  ASSERT_TRUE(upstream_.wait_for_finished(kStreams, Millis(10'000)))
      << "upstream calls still running: the connection was not closed";
  EXPECT_TRUE(flush_timeouts_reach(1));
  EXPECT_TRUE(client.wait_closed(Millis(10'000))) << "the socket is still open";
}

}  // namespace
}  // namespace skiff::it::h2
