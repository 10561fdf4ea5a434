// Tests for grpc/local_reply: the trailers-only header block and plain status trailers.
#include "grpc/local_reply.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace skiff::grpc {

void PrintTo(const Header& h, std::ostream* os) { *os << h.name << ": " << h.value; }

namespace {

TEST(TrailersOnlyHeaders, FullBlockInOrder) {
  const LocalReply reply{StatusCode::kUnavailable, "circuit open for cluster users", 200, false};
  const std::vector<Header> expected = {
      {":status", "200"},
      {"content-type", "application/grpc"},
      {"grpc-status", "14"},
      {"grpc-message", "circuit open for cluster users"},
  };
  EXPECT_EQ(trailers_only_headers(reply), expected);
}

TEST(TrailersOnlyHeaders, RejectionCarriesPushbackAndMarkLast) {
  LocalReply reply{StatusCode::kResourceExhausted, "rate limited"};
  reply.retry_pushback_ms = 250;
  reply.rejected = "rate-limit";
  const std::vector<Header> expected = {
      {":status", "200"},
      {"content-type", "application/grpc"},
      {"grpc-status", "8"},
      {"grpc-message", "rate limited"},
      {"grpc-retry-pushback-ms", "250"},
      {"skiff-rejected", "rate-limit"},
  };
  EXPECT_EQ(trailers_only_headers(reply), expected);
}

TEST(TrailersOnlyHeaders, EmptyMessageIsOmitted) {
  const LocalReply reply{StatusCode::kDeadlineExceeded, "", 200, false};
  const std::vector<Header> expected = {
      {":status", "200"},
      {"content-type", "application/grpc"},
      {"grpc-status", "4"},
  };
  EXPECT_EQ(trailers_only_headers(reply), expected);
}

TEST(TrailersOnlyHeaders, MessageIsPercentEncoded) {
  const LocalReply reply{StatusCode::kInternal, "bad\n100%", 200, false};
  const auto headers = trailers_only_headers(reply);
  ASSERT_EQ(headers.size(), 4u);
  EXPECT_EQ(headers[3], (Header{"grpc-message", "bad%0A100%25"}));
}

TEST(TrailersOnlyHeaders, NonGrpcHttpStatus) {
  const LocalReply reply{StatusCode::kInternal, "content-type is not application/grpc", 415, false};
  const auto headers = trailers_only_headers(reply);
  ASSERT_EQ(headers.size(), 4u);
  EXPECT_EQ(headers[0], (Header{":status", "415"}));
  EXPECT_EQ(headers[2], (Header{"grpc-status", "13"}));

  const LocalReply not_post{StatusCode::kInternal, "", 405, false};
  EXPECT_EQ(trailers_only_headers(not_post)[0], (Header{":status", "405"}));
}

TEST(TrailersOnlyHeaders, DefaultReplyIsUnknown) {
  const auto headers = trailers_only_headers(LocalReply{});
  ASSERT_EQ(headers.size(), 3u);
  EXPECT_EQ(headers[0], (Header{":status", "200"}));
  EXPECT_EQ(headers[2], (Header{"grpc-status", "2"}));
}

TEST(TrailersOnlyHeaders, EveryCodeIsDecimal) {
  for (unsigned code = 0; code <= kMaxStatusCode; ++code) {
    LocalReply reply;
    reply.code = static_cast<StatusCode>(code);
    EXPECT_EQ(trailers_only_headers(reply)[2].value, std::to_string(code));
  }
}

TEST(StatusTrailers, WithAndWithoutMessage) {
  const std::vector<Header> with_message = {{"grpc-status", "14"},
                                            {"grpc-message", "upstream reset: caf%C3%A9"}};
  EXPECT_EQ(status_trailers(StatusCode::kUnavailable, "upstream reset: caf\xc3\xa9"), with_message);
  const std::vector<Header> ok = {{"grpc-status", "0"}};
  EXPECT_EQ(status_trailers(StatusCode::kOk, ""), ok);
}

}  // namespace
}  // namespace skiff::grpc
