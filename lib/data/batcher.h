#pragma once
// Deterministic shuffled batching: the order of epoch e is a pure function of (seed, e),
// computed with our own Fisher-Yates over a splitmix64 stream so that it is the same on every
// standard library (std::shuffle's algorithm is unspecified).
#include <cstdint>
#include <vector>

namespace maskgit {

class Batcher {
 public:
  Batcher(int64_t dataset_size, int64_t batch_size, uint64_t seed, bool drop_last = true);

  int64_t batches_per_epoch() const;
  // Indices of batch `batch` (0-based, within the epoch) of epoch `epoch`.
  std::vector<int64_t> batch_indices(int64_t epoch, int64_t batch) const;
  // The whole permutation of an epoch.
  std::vector<int64_t> epoch_order(int64_t epoch) const;

 private:
  int64_t dataset_size_;
  int64_t batch_size_;
  uint64_t seed_;
  bool drop_last_;
  mutable int64_t cached_epoch_ = -1;
  mutable std::vector<int64_t> cached_order_;
};

// splitmix64: a tiny, well-mixed, fully specified generator step.
uint64_t splitmix64(uint64_t& state);
// Mixes several values into one seed (for per-step / per-image RNG streams).
uint64_t mix_seed(uint64_t a, uint64_t b);

}  // namespace maskgit
