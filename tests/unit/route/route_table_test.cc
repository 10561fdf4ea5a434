// Tests for route/route_table: first-match precedence, service/method matching, authority rules.
#include "route/route_table.h"

#include <gtest/gtest.h>

#include <chrono>

namespace skiff::route {
namespace {

Route make(std::string service, std::string method, std::string authority, uint32_t cluster) {
  Route r;
  r.match = Match{std::move(service), std::move(method), std::move(authority)};
  r.cluster = cluster;
  return r;
}

// The shape of the example config: exact method, then the service, then everything.
RouteTable example_table() {
  RouteTable table;
  Route exact = make("user.UserService", "GetUser", "", 1);
  exact.timeout = std::chrono::milliseconds(2000);
  table.add(std::move(exact));
  table.add(make("user.UserService", "", "", 2));
  table.add(make("", "", "", 3));
  return table;
}

uint32_t cluster_of(const RouteTable& table, std::string_view authority, std::string_view service,
                    std::string_view method) {
  const Route* route = table.find(authority, service, method);
  return route == nullptr ? 0 : route->cluster;
}

TEST(RouteTable, EmptyTableMatchesNothing) {
  RouteTable table;
  EXPECT_EQ(table.size(), 0u);
  EXPECT_EQ(table.find("a", "s", "m"), nullptr);
}

TEST(RouteTable, ExactMethodThenServiceThenCatchAll) {
  const RouteTable table = example_table();
  EXPECT_EQ(table.size(), 3u);
  const Route* exact = table.find("users:15001", "user.UserService", "GetUser");
  ASSERT_NE(exact, nullptr);
  EXPECT_EQ(exact->cluster, 1u);
  ASSERT_TRUE(exact->timeout.has_value());
  EXPECT_EQ(*exact->timeout, std::chrono::milliseconds(2000));

  const Route* service = table.find("users:15001", "user.UserService", "CreateUser");
  ASSERT_NE(service, nullptr);
  EXPECT_EQ(service->cluster, 2u);
  EXPECT_FALSE(service->timeout.has_value());

  EXPECT_EQ(cluster_of(table, "users:15001", "other.Service", "GetUser"), 3u);
  EXPECT_EQ(cluster_of(table, "", "", ""), 3u);
}

TEST(RouteTable, WrittenOrderWinsOverSpecificity) {
  RouteTable table;
  table.add(make("", "", "", 3));  // catch-all first shadows everything after it
  table.add(make("user.UserService", "GetUser", "", 1));
  EXPECT_EQ(cluster_of(table, "a", "user.UserService", "GetUser"), 3u);

  RouteTable service_first;
  service_first.add(make("user.UserService", "", "", 2));
  service_first.add(make("user.UserService", "GetUser", "", 1));
  EXPECT_EQ(cluster_of(service_first, "a", "user.UserService", "GetUser"), 2u);
}

TEST(RouteTable, FirstOfEqualRoutesWins) {
  RouteTable table;
  table.add(make("s.S", "", "", 7));
  table.add(make("s.S", "", "", 8));
  EXPECT_EQ(cluster_of(table, "", "s.S", "M"), 7u);
}

TEST(RouteTable, ServiceAndMethodAreExactAndCaseSensitive) {
  const RouteTable table = example_table();
  EXPECT_EQ(cluster_of(table, "", "user.userservice", "GetUser"), 3u);
  EXPECT_EQ(cluster_of(table, "", "user.UserService", "getuser"), 2u);
  EXPECT_EQ(cluster_of(table, "", "user.UserServic", "GetUser"), 3u);
  EXPECT_EQ(cluster_of(table, "", "user.UserService2", "GetUser"), 3u);
  EXPECT_EQ(cluster_of(table, "", "user.UserService", "GetUsers"), 2u);
  EXPECT_EQ(cluster_of(table, "", "", "GetUser"), 3u);
}

TEST(RouteTable, NoCatchAllMeansNoMatch) {
  RouteTable table;
  table.add(make("user.UserService", "GetUser", "", 1));
  EXPECT_EQ(table.find("", "user.UserService", "CreateUser"), nullptr);
  EXPECT_EQ(table.find("", "other.Service", "GetUser"), nullptr);
}

TEST(RouteTable, AuthorityWithoutPortMatchesAnyPort) {
  RouteTable table;
  table.add(make("", "", "users.mesh.local", 1));
  EXPECT_EQ(cluster_of(table, "users.mesh.local", "s", "m"), 1u);
  EXPECT_EQ(cluster_of(table, "users.mesh.local:15443", "s", "m"), 1u);
  EXPECT_EQ(cluster_of(table, "users.mesh.local:80", "s", "m"), 1u);
  EXPECT_EQ(cluster_of(table, "orders.mesh.local:15443", "s", "m"), 0u);
  EXPECT_EQ(cluster_of(table, "users.mesh.local.evil:80", "s", "m"), 0u);
  EXPECT_EQ(cluster_of(table, "xusers.mesh.local", "s", "m"), 0u);
  EXPECT_EQ(cluster_of(table, "users.mesh", "s", "m"), 0u);
  EXPECT_EQ(cluster_of(table, "", "s", "m"), 0u);
}

TEST(RouteTable, AuthorityWithPortMatchesOnlyThatPort) {
  RouteTable table;
  table.add(make("", "", "users:15443", 1));
  EXPECT_EQ(cluster_of(table, "users:15443", "s", "m"), 1u);
  EXPECT_EQ(cluster_of(table, "USERS:15443", "s", "m"), 1u);
  EXPECT_EQ(cluster_of(table, "users:15444", "s", "m"), 0u);
  EXPECT_EQ(cluster_of(table, "users:154430", "s", "m"), 0u);
  EXPECT_EQ(cluster_of(table, "users", "s", "m"), 0u);  // no port given: not assumed
}

TEST(RouteTable, AuthorityIsCaseInsensitive) {
  RouteTable table;
  table.add(make("", "", "Users.Mesh.Local", 1));
  EXPECT_EQ(cluster_of(table, "users.mesh.local", "s", "m"), 1u);
  EXPECT_EQ(cluster_of(table, "USERS.MESH.LOCAL:8080", "s", "m"), 1u);
  EXPECT_EQ(cluster_of(table, "uSeRs.MeSh.LoCaL", "s", "m"), 1u);
}

TEST(RouteTable, Ipv6Authority) {
  RouteTable any_port;
  any_port.add(make("", "", "[::1]", 1));
  EXPECT_EQ(cluster_of(any_port, "[::1]", "s", "m"), 1u);
  EXPECT_EQ(cluster_of(any_port, "[::1]:8080", "s", "m"), 1u);
  EXPECT_EQ(cluster_of(any_port, "[::2]:8080", "s", "m"), 0u);

  RouteTable one_port;
  one_port.add(make("", "", "[FE80::1]:8080", 2));
  EXPECT_EQ(cluster_of(one_port, "[fe80::1]:8080", "s", "m"), 2u);
  EXPECT_EQ(cluster_of(one_port, "[fe80::1]:8081", "s", "m"), 0u);
  EXPECT_EQ(cluster_of(one_port, "[fe80::1]", "s", "m"), 0u);
}

TEST(RouteTable, AuthorityCombinedWithServiceAndMethod) {
  RouteTable table;
  table.add(make("user.UserService", "GetUser", "users", 1));
  table.add(make("user.UserService", "", "users", 2));
  table.add(make("user.UserService", "", "", 3));
  table.add(make("", "", "users", 4));
  EXPECT_EQ(cluster_of(table, "users:1", "user.UserService", "GetUser"), 1u);
  EXPECT_EQ(cluster_of(table, "users:1", "user.UserService", "Create"), 2u);
  EXPECT_EQ(cluster_of(table, "orders:1", "user.UserService", "GetUser"), 3u);
  EXPECT_EQ(cluster_of(table, "users:1", "other.S", "M"), 4u);
  EXPECT_EQ(table.find("orders:1", "other.S", "M"), nullptr);
}

TEST(RouteTable, FindReturnsStableStoredRoute) {
  const RouteTable table = example_table();
  EXPECT_EQ(table.find("a", "user.UserService", "GetUser"),
            table.find("b", "user.UserService", "GetUser"));
}

TEST(AuthorityHost, Splits) {
  EXPECT_EQ(authority_host("a.b:80"), "a.b");
  EXPECT_EQ(authority_host("a.b"), "a.b");
  EXPECT_EQ(authority_host("a.b:"), "a.b");
  EXPECT_EQ(authority_host("[::1]:80"), "[::1]");
  EXPECT_EQ(authority_host("[::1]"), "[::1]");
  EXPECT_EQ(authority_host(""), "");
}

TEST(RouteTableDeathTest, MethodWithoutServiceIsABug) {
  RouteTable table;
  EXPECT_DEATH(table.add(make("", "GetUser", "", 1)), "SKIFF_CHECK");
}

}  // namespace
}  // namespace skiff::route
