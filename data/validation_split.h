// The held-out split SFT examples and preference pairs share: a seeded choice of items, taken
// before any per-epoch weighting or shuffling, at least one item when the fraction is > 0.
#pragma once
#include <algorithm>
#include <random>
#include <vector>

#include "util/error.h"

namespace dsalign {

template <typename T>
void split_validation(std::vector<T>&& items, double fraction, int64_t seed, std::vector<T>& train, std::vector<T>& validation) {
  std::mt19937_64 rng(static_cast<uint64_t>(seed));
  std::vector<size_t> order(items.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  size_t n_validation = static_cast<size_t>(fraction * static_cast<double>(items.size()));
  if (fraction > 0 && n_validation == 0) n_validation = 1;
  if (n_validation >= items.size()) fail("data.validation_fraction ", fraction, " leaves nothing to train on (", items.size(), " items)");
  std::vector<bool> is_validation(items.size(), false);
  for (size_t i = 0; i < n_validation; ++i) is_validation[order[i]] = true;
  for (size_t i = 0; i < items.size(); ++i) (is_validation[i] ? validation : train).push_back(std::move(items[i]));
}

}  // namespace dsalign
