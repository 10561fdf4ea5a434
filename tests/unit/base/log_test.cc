// Tests for base/log.h: the level a SKIFF_LOG line needs, as set_log_level sets it.
#include "base/log.h"

#include <gtest/gtest.h>

namespace skiff::base {
namespace {

// Restores the level the other tests in this binary run with.
class LogLevelTest : public ::testing::Test {
 protected:
  void TearDown() override { set_log_level(LogLevel::kInfo); }
};

TEST_F(LogLevelTest, LinesAtOrAboveTheSetLevelAreEnabled) {
  set_log_level(LogLevel::kWarn);
  EXPECT_FALSE(log_enabled(LogLevel::kTrace));
  EXPECT_FALSE(log_enabled(LogLevel::kDebug));
  EXPECT_FALSE(log_enabled(LogLevel::kInfo));
  EXPECT_TRUE(log_enabled(LogLevel::kWarn));
  EXPECT_TRUE(log_enabled(LogLevel::kError));
  EXPECT_TRUE(spdlog::should_log(spdlog::level::warn));  // spdlog was set too
  EXPECT_FALSE(spdlog::should_log(spdlog::level::info));

  set_log_level(LogLevel::kTrace);
  EXPECT_TRUE(log_enabled(LogLevel::kTrace));
  EXPECT_TRUE(log_enabled(LogLevel::kError));
}

TEST_F(LogLevelTest, OffDisablesEveryLine) {
  set_log_level(LogLevel::kOff);
  EXPECT_FALSE(log_enabled(LogLevel::kError));
  EXPECT_FALSE(spdlog::should_log(spdlog::level::err));
}

TEST_F(LogLevelTest, ADisabledLineIsNotFormatted) {
  set_log_level(LogLevel::kError);
  int formatted = 0;
  auto count = [&] { return ++formatted; };
  SKIFF_LOG(kDebug) << count();
  EXPECT_EQ(formatted, 0);
  set_log_level(LogLevel::kOff);
  SKIFF_LOG(kError) << count();
  EXPECT_EQ(formatted, 0);
}

}  // namespace
}  // namespace skiff::base
