// Tests for grpc/status: names, grpc-status parsing, percent-encoding, content-type, mappings.
#include "grpc/status.h"

#include <gtest/gtest.h>

#include <string>

namespace skiff::grpc {
namespace {

TEST(StatusName, EveryCode) {
  EXPECT_EQ(status_name(StatusCode::kOk), "OK");
  EXPECT_EQ(status_name(StatusCode::kCancelled), "CANCELLED");
  EXPECT_EQ(status_name(StatusCode::kUnknown), "UNKNOWN");
  EXPECT_EQ(status_name(StatusCode::kInvalidArgument), "INVALID_ARGUMENT");
  EXPECT_EQ(status_name(StatusCode::kDeadlineExceeded), "DEADLINE_EXCEEDED");
  EXPECT_EQ(status_name(StatusCode::kNotFound), "NOT_FOUND");
  EXPECT_EQ(status_name(StatusCode::kAlreadyExists), "ALREADY_EXISTS");
  EXPECT_EQ(status_name(StatusCode::kPermissionDenied), "PERMISSION_DENIED");
  EXPECT_EQ(status_name(StatusCode::kResourceExhausted), "RESOURCE_EXHAUSTED");
  EXPECT_EQ(status_name(StatusCode::kFailedPrecondition), "FAILED_PRECONDITION");
  EXPECT_EQ(status_name(StatusCode::kAborted), "ABORTED");
  EXPECT_EQ(status_name(StatusCode::kOutOfRange), "OUT_OF_RANGE");
  EXPECT_EQ(status_name(StatusCode::kUnimplemented), "UNIMPLEMENTED");
  EXPECT_EQ(status_name(StatusCode::kInternal), "INTERNAL");
  EXPECT_EQ(status_name(StatusCode::kUnavailable), "UNAVAILABLE");
  EXPECT_EQ(status_name(StatusCode::kDataLoss), "DATA_LOSS");
  EXPECT_EQ(status_name(StatusCode::kUnauthenticated), "UNAUTHENTICATED");
}

TEST(StatusName, OutOfRangeIsUnknown) {
  EXPECT_EQ(status_name(static_cast<StatusCode>(17)), "UNKNOWN");
  EXPECT_EQ(status_name(static_cast<StatusCode>(255)), "UNKNOWN");
}

TEST(ParseStatus, ValidCodes) {
  for (unsigned code = 0; code <= kMaxStatusCode; ++code) {
    auto parsed = parse_status(std::to_string(code));
    ASSERT_TRUE(parsed.has_value()) << code;
    EXPECT_EQ(static_cast<unsigned>(*parsed), code);
  }
  EXPECT_EQ(parse_status("014"), StatusCode::kUnavailable);
}

TEST(ParseStatus, UnknownCodeIsUnknown) {
  EXPECT_EQ(parse_status("17"), StatusCode::kUnknown);
  EXPECT_EQ(parse_status("999"), StatusCode::kUnknown);
}

TEST(ParseStatus, Malformed) {
  EXPECT_FALSE(parse_status(""));
  EXPECT_FALSE(parse_status("-1"));
  EXPECT_FALSE(parse_status("+1"));
  EXPECT_FALSE(parse_status(" 1"));
  EXPECT_FALSE(parse_status("1 "));
  EXPECT_FALSE(parse_status("1.0"));
  EXPECT_FALSE(parse_status("0x1"));
  EXPECT_FALSE(parse_status("1000"));
  EXPECT_FALSE(parse_status("OK"));
}

TEST(PercentEncode, PrintableAsciiUnchanged) {
  EXPECT_EQ(percent_encode(""), "");
  EXPECT_EQ(percent_encode("no route for user.UserService/GetUser"),
            "no route for user.UserService/GetUser");
  std::string all;
  for (int c = 0x20; c <= 0x7e; ++c) {
    if (c != '%') all.push_back(static_cast<char>(c));
  }
  EXPECT_EQ(percent_encode(all), all);
}

TEST(PercentEncode, PercentIsEncoded) {
  EXPECT_EQ(percent_encode("%"), "%25");
  EXPECT_EQ(percent_encode("100% done"), "100%25 done");
  EXPECT_EQ(percent_encode("%25"), "%2525");
}

TEST(PercentEncode, ControlBytesAreEncoded) {
  EXPECT_EQ(percent_encode("a\nb"), "a%0Ab");
  EXPECT_EQ(percent_encode("\r\t"), "%0D%09");
  EXPECT_EQ(percent_encode(std::string("\0", 1)), "%00");
  EXPECT_EQ(percent_encode("\x1f"), "%1F");
  EXPECT_EQ(percent_encode("\x7f"), "%7F");
}

TEST(PercentEncode, Utf8IsEncodedBytewiseUppercase) {
  // The example in PROTOCOL-HTTP2.md, and a 4-byte sequence.
  EXPECT_EQ(percent_encode("\xc3\xa9"), "%C3%A9");  // é
  EXPECT_EQ(percent_encode("caf\xc3\xa9!"), "caf%C3%A9!");
  EXPECT_EQ(percent_encode("\xf0\x9f\x98\x80"), "%F0%9F%98%80");  // U+1F600
  EXPECT_EQ(percent_encode("\xff\xfe"), "%FF%FE");
}

TEST(ContentType, Accepted) {
  EXPECT_TRUE(is_grpc_content_type("application/grpc"));
  EXPECT_TRUE(is_grpc_content_type("application/grpc+proto"));
  EXPECT_TRUE(is_grpc_content_type("application/grpc+json"));
  EXPECT_TRUE(is_grpc_content_type("application/grpc;charset=utf-8"));
  EXPECT_TRUE(is_grpc_content_type("application/grpc+"));
  EXPECT_TRUE(is_grpc_content_type("Application/GRPC"));
  EXPECT_TRUE(is_grpc_content_type("APPLICATION/GRPC+proto"));
}

TEST(ContentType, Rejected) {
  EXPECT_FALSE(is_grpc_content_type(""));
  EXPECT_FALSE(is_grpc_content_type("application/json"));
  EXPECT_FALSE(is_grpc_content_type("application/grp"));
  EXPECT_FALSE(is_grpc_content_type("application/grpcx"));
  EXPECT_FALSE(is_grpc_content_type("application/grpc-web"));
  EXPECT_FALSE(is_grpc_content_type("application/grpc-web+proto"));
  EXPECT_FALSE(is_grpc_content_type("application/grpc proto"));
  EXPECT_FALSE(is_grpc_content_type(" application/grpc"));
  EXPECT_FALSE(is_grpc_content_type("text/plain"));
  EXPECT_FALSE(is_grpc_content_type("application/grpc/"));
}

TEST(StatusFromH2Error, SpecTable) {
  EXPECT_EQ(status_from_h2_error(0x0), StatusCode::kInternal);           // NO_ERROR
  EXPECT_EQ(status_from_h2_error(0x1), StatusCode::kInternal);           // PROTOCOL_ERROR
  EXPECT_EQ(status_from_h2_error(0x2), StatusCode::kInternal);           // INTERNAL_ERROR
  EXPECT_EQ(status_from_h2_error(0x3), StatusCode::kInternal);           // FLOW_CONTROL_ERROR
  EXPECT_EQ(status_from_h2_error(0x4), StatusCode::kInternal);           // SETTINGS_TIMEOUT
  EXPECT_EQ(status_from_h2_error(0x5), StatusCode::kInternal);           // STREAM_CLOSED
  EXPECT_EQ(status_from_h2_error(0x6), StatusCode::kInternal);           // FRAME_SIZE_ERROR
  EXPECT_EQ(status_from_h2_error(0x7), StatusCode::kUnavailable);        // REFUSED_STREAM
  EXPECT_EQ(status_from_h2_error(0x8), StatusCode::kCancelled);          // CANCEL
  EXPECT_EQ(status_from_h2_error(0x9), StatusCode::kInternal);           // COMPRESSION_ERROR
  EXPECT_EQ(status_from_h2_error(0xa), StatusCode::kInternal);           // CONNECT_ERROR
  EXPECT_EQ(status_from_h2_error(0xb), StatusCode::kResourceExhausted);  // ENHANCE_YOUR_CALM
  EXPECT_EQ(status_from_h2_error(0xc), StatusCode::kPermissionDenied);   // INADEQUATE_SECURITY
  EXPECT_EQ(status_from_h2_error(0xd), StatusCode::kInternal);           // HTTP_1_1_REQUIRED
  EXPECT_EQ(status_from_h2_error(0xdeadbeef), StatusCode::kInternal);
}

TEST(StatusFromHttp, SpecTable) {
  EXPECT_EQ(status_from_http(400), StatusCode::kInternal);
  EXPECT_EQ(status_from_http(401), StatusCode::kUnauthenticated);
  EXPECT_EQ(status_from_http(403), StatusCode::kPermissionDenied);
  EXPECT_EQ(status_from_http(404), StatusCode::kUnimplemented);
  EXPECT_EQ(status_from_http(429), StatusCode::kUnavailable);
  EXPECT_EQ(status_from_http(502), StatusCode::kUnavailable);
  EXPECT_EQ(status_from_http(503), StatusCode::kUnavailable);
  EXPECT_EQ(status_from_http(504), StatusCode::kUnavailable);
  EXPECT_EQ(status_from_http(200), StatusCode::kUnknown);
  EXPECT_EQ(status_from_http(500), StatusCode::kUnknown);
}

}  // namespace
}  // namespace skiff::grpc
