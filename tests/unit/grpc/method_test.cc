// Tests for grpc/method: ":path" -> (service, method).
#include "grpc/method.h"

#include <gtest/gtest.h>

#include <string>

namespace skiff::grpc {
namespace {

TEST(ParsePath, Valid) {
  auto m = parse_path("/user.UserService/GetUser");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->service, "user.UserService");
  EXPECT_EQ(m->method, "GetUser");

  m = parse_path("/grpc.health.v1.Health/Check");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->service, "grpc.health.v1.Health");
  EXPECT_EQ(m->method, "Check");

  m = parse_path("/S/m");  // shortest
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->service, "S");
  EXPECT_EQ(m->method, "m");

  m = parse_path("/Service/Method.With_Odd-Chars");  // not validated beyond the slashes
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->method, "Method.With_Odd-Chars");
}

TEST(ParsePath, ViewsPointIntoInput) {
  const std::string path = "/a.B/C";
  auto m = parse_path(path);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->service.data(), path.data() + 1);
  EXPECT_EQ(m->method.data(), path.data() + 5);
}

TEST(ParsePath, Invalid) {
  EXPECT_FALSE(parse_path(""));
  EXPECT_FALSE(parse_path("/"));
  EXPECT_FALSE(parse_path("//"));
  EXPECT_FALSE(parse_path("/s/"));
  EXPECT_FALSE(parse_path("//m"));
  EXPECT_FALSE(parse_path("/Service"));
  EXPECT_FALSE(parse_path("Service/Method"));
  EXPECT_FALSE(parse_path("user.UserService/GetUser"));
  EXPECT_FALSE(parse_path("/a/b/c"));
  EXPECT_FALSE(parse_path("/a/b/"));
  EXPECT_FALSE(parse_path("/a//b"));
  EXPECT_FALSE(parse_path("*"));
  EXPECT_FALSE(parse_path("http://host/a/b"));
}

TEST(ParsePath, QueryStringRejected) {
  EXPECT_FALSE(parse_path("/a.B/C?x=1"));
  EXPECT_FALSE(parse_path("/a.B/C?"));
  EXPECT_FALSE(parse_path("/a?B/C"));
}

}  // namespace
}  // namespace skiff::grpc
