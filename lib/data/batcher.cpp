#include "data/batcher.h"

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <stdexcept>
#include <utility>

namespace maskgit {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

uint64_t mix_seed(uint64_t a, uint64_t b) {
  // The odd multiplier spreads b over all bits first, so nearby (a, b) pairs land far apart.
  uint64_t state = a ^ (b * 0xD1B54A32D192ED03ULL);
  splitmix64(state);
  return splitmix64(state);
}

namespace {

// Uniform integer in [0, bound): draws at or above the largest multiple of `bound` are
// rejected, since `value % bound` over the full 64-bit range would favour small results.
uint64_t bounded(uint64_t& state, uint64_t bound) {
  const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
  uint64_t value = 0;
  do value = splitmix64(state);
  while (value >= limit);
  return value % bound;
}

}  // namespace

Batcher::Batcher(int64_t dataset_size, int64_t batch_size, uint64_t seed, bool drop_last)
    : dataset_size_(dataset_size), batch_size_(batch_size), seed_(seed), drop_last_(drop_last) {
  if (dataset_size <= 0 || batch_size <= 0) throw std::invalid_argument("Batcher: sizes must be positive");
}

int64_t Batcher::batches_per_epoch() const {
  return drop_last_ ? dataset_size_ / batch_size_ : (dataset_size_ + batch_size_ - 1) / batch_size_;
}

std::vector<int64_t> Batcher::epoch_order(int64_t epoch) const {
  std::vector<int64_t> order(static_cast<size_t>(dataset_size_));
  std::iota(order.begin(), order.end(), int64_t{0});
  uint64_t state = mix_seed(seed_, static_cast<uint64_t>(epoch));
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[bounded(state, i)]);
  return order;
}

std::vector<int64_t> Batcher::batch_indices(int64_t epoch, int64_t batch) const {
  if (batch < 0 || batch >= batches_per_epoch()) throw std::out_of_range("Batcher: batch index out of range");
  // The trainer asks for consecutive batches of one epoch; shuffling once per epoch is enough.
  if (cached_order_.empty() || cached_epoch_ != epoch) {
    cached_order_ = epoch_order(epoch);
    cached_epoch_ = epoch;
  }
  const auto begin = cached_order_.begin() + batch * batch_size_;
  const auto end = cached_order_.begin() + std::min(dataset_size_, (batch + 1) * batch_size_);
  return std::vector<int64_t>(begin, end);
}

}  // namespace maskgit
