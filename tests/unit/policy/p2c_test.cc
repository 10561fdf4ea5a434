// Tests for policy::pick_least_request and the shared two-choices core: injected randomness,
// least-loaded wins, skipping backed-off/ejected/avoided endpoints.
#include "policy/p2c.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <vector>

#include "base/clock.h"
#include "policy/outlier_detector.h"

namespace skiff::policy {
namespace {

using std::chrono::seconds;

// random whose low half picks the |a|-th eligible endpoint and whose high half picks the |b|-th
// of the remaining ones (b indexes the list without the first choice).
constexpr uint64_t choose(uint32_t a, uint32_t b) { return uint64_t{b} << 32 | a; }

class P2cTest : public ::testing::Test {
 protected:
  P2cTest() { clock_.advance(seconds(100)); }
  base::FakeClock clock_;
};

TEST_F(P2cTest, EmptyOrAllUnavailableGivesNothing) {
  std::vector<EndpointLoad> none;
  EXPECT_EQ(pick_least_request(none, {}, 0, clock_.now()), std::nullopt);
  std::vector<EndpointLoad> backing_off(3, EndpointLoad{0, clock_.now() + seconds(1)});
  EXPECT_EQ(pick_least_request(backing_off, {}, 0, clock_.now()), std::nullopt);
}

TEST_F(P2cTest, SingleEligibleEndpointIsPicked) {
  std::vector<EndpointLoad> eps = {
      {5, clock_.now() + seconds(1)}, {9, {}}, {0, clock_.now() + seconds(1)}};
  for (uint64_t r : {uint64_t{0}, uint64_t{1}, choose(7, 3), ~uint64_t{0}}) {
    EXPECT_EQ(pick_least_request(eps, {}, r, clock_.now()), 1u);
  }
}

TEST_F(P2cTest, TheLessLoadedOfTheTwoChoicesWins) {
  std::vector<EndpointLoad> eps = {{3, {}}, {1, {}}, {7, {}}, {2, {}}};
  EXPECT_EQ(pick_least_request(eps, {}, choose(0, 0), clock_.now()), 1u);  // 0 vs 1
  EXPECT_EQ(pick_least_request(eps, {}, choose(2, 2), clock_.now()), 3u);  // 2 vs 3
  EXPECT_EQ(pick_least_request(eps, {}, choose(2, 0), clock_.now()), 0u);  // 2 vs 0
  // The second choice skips the first: index 1 of [0, 2, 3] when the first is 1.
  EXPECT_EQ(pick_least_request(eps, {}, choose(1, 1), clock_.now()), 1u);  // 1 vs 2
}

TEST_F(P2cTest, TiesGoToTheFirstChoice) {
  std::vector<EndpointLoad> eps = {{2, {}}, {2, {}}, {2, {}}};
  EXPECT_EQ(pick_least_request(eps, {}, choose(2, 0), clock_.now()), 2u);
  EXPECT_EQ(pick_least_request(eps, {}, choose(0, 1), clock_.now()), 0u);
}

TEST_F(P2cTest, ChoicesAreAlwaysDistinct) {
  // With two endpoints, P2C always compares both, so the less loaded one always wins.
  std::vector<EndpointLoad> eps = {{4, {}}, {1, {}}};
  for (uint64_t r = 0; r < 64; ++r) {
    EXPECT_EQ(pick_least_request(eps, {}, r * 0x9e3779b97f4a7c15ULL, clock_.now()), 1u);
  }
}

TEST_F(P2cTest, SkipsBackedOffAndEjectedEndpoints) {
  std::vector<EndpointLoad> eps = {{0, {}}, {0, clock_.now() + seconds(5)}, {9, {}}, {9, {}}};
  OutlierDetectorParams op;
  op.consecutive_failures = 1;
  op.max_ejection_percent = 100;
  OutlierDetector ejections(op, eps.size());
  ejections.on_result(0, true, clock_.now());
  PickOptions opts{&ejections, {}};
  std::map<size_t, int> picks;
  for (uint64_t r = 0; r < 200; ++r) {
    auto p = pick_least_request(eps, opts, r * 0x9e3779b97f4a7c15ULL, clock_.now());
    ASSERT_TRUE(p.has_value());
    ++picks[*p];
  }
  EXPECT_EQ(picks.count(0), 0u);
  EXPECT_EQ(picks.count(1), 0u);
  EXPECT_EQ(picks[2] + picks[3], 200);
  // When the backoff and the ejection end, they are eligible (and the least loaded) again.
  clock_.advance(seconds(31));
  EXPECT_TRUE(is_eligible(eps, 0, opts, clock_.now()));
  EXPECT_TRUE(is_eligible(eps, 1, opts, clock_.now()));
}

TEST_F(P2cTest, AvoidsEndpointsThisCallAlreadyUsedUnlessNothingElseIsLeft) {
  std::vector<EndpointLoad> eps = {{0, {}}, {5, {}}, {6, {}}};
  std::vector<size_t> used = {0};
  PickOptions opts{nullptr, used};
  for (uint64_t r = 0; r < 50; ++r) {
    auto p = pick_least_request(eps, opts, r * 0x9e3779b97f4a7c15ULL, clock_.now());
    ASSERT_TRUE(p.has_value());
    EXPECT_NE(*p, 0u);
  }
  std::vector<size_t> all = {0, 1, 2};
  EXPECT_EQ(pick_least_request(eps, {nullptr, all}, choose(0, 0), clock_.now()), 0u);
}

TEST_F(P2cTest, SpreadsLoadTowardTheIdleEndpoint) {
  // Statistical shape with a seeded RNG: an endpoint with far fewer active requests is picked
  // whenever it is one of the two choices (2/n of the time for n endpoints and more).
  std::vector<EndpointLoad> eps = {{10, {}}, {10, {}}, {0, {}}, {10, {}}};
  std::mt19937_64 rng(1);
  int idle = 0;
  for (int i = 0; i < 10000; ++i) {
    if (pick_least_request(eps, {}, rng(), clock_.now()) == 2u) ++idle;
  }
  EXPECT_NEAR(idle / 10000.0, 0.5, 0.03);  // P(2 among two distinct of 4) = 1/2
}

}  // namespace
}  // namespace skiff::policy
