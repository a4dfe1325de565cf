// The repetition detector on crafted token sequences.
#include <gtest/gtest.h>

#include "eval/repetition.h"

using namespace dsalign;

namespace {
std::vector<int32_t> repeat(const std::vector<int32_t>& prefix, const std::vector<int32_t>& unit, int times) {
  std::vector<int32_t> out = prefix;
  for (int i = 0; i < times; ++i) out.insert(out.end(), unit.begin(), unit.end());
  return out;
}
std::vector<int32_t> distinct(int n, int32_t start = 1000) {
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) out.push_back(start + i);
  return out;
}
}  // namespace

TEST(Repetition, ShortUnit) {
  auto r = find_repetition(repeat(distinct(10), {7}, 50), false);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->unit_length, 1);
  EXPECT_EQ(r->periodic_tokens, 50);
}

TEST(Repetition, LongUnitFindsTheSmallestPeriod) {
  auto unit = distinct(50, 5000);
  auto r = find_repetition(repeat(distinct(20), unit, 5), false);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->unit_length, 50);
  EXPECT_EQ(r->periodic_tokens, 250);
  // "a b a b ..." is period 2, not 4.
  EXPECT_EQ(find_repetition(repeat({}, {1, 2}, 20), false)->unit_length, 2);
}

TEST(Repetition, TerminatedIsNeverRepetitive) {
  EXPECT_FALSE(find_repetition(repeat({}, {3, 4, 5}, 30), true));
}

TEST(Repetition, LongNonRepeatingIsNot) {
  EXPECT_FALSE(find_repetition(distinct(500), false));
}

TEST(Repetition, AlmostPeriodicAndShortTailsAreNot) {
  // The period breaks in the last unit: the model left the loop.
  auto broken = repeat(distinct(10), {1, 2, 3}, 20);
  broken.back() = 99;
  EXPECT_FALSE(find_repetition(broken, false));
  // Only two repeats of a unit: not enough.
  EXPECT_FALSE(find_repetition(repeat(distinct(10), distinct(8, 1), 2), false));
  // A periodic tail that covers too little of a long response.
  EXPECT_FALSE(find_repetition(repeat(distinct(400), {9}, 20), false));
  // A unit longer than max_unit.
  RepetitionRule rule;
  rule.max_unit = 16;
  EXPECT_FALSE(find_repetition(repeat({}, distinct(20), 5), false, rule));
}
