#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <map>
#include <numeric>
#include <set>
#include <stdexcept>
#include <vector>

#include "data/batcher.h"

using maskgit::Batcher;

namespace {

bool is_permutation_of_range(std::vector<int64_t> order, int64_t size) {
  std::sort(order.begin(), order.end());
  std::vector<int64_t> expected(static_cast<size_t>(size));
  std::iota(expected.begin(), expected.end(), int64_t{0});
  return order == expected;
}

}  // namespace

TEST_CASE("splitmix64 matches the reference sequence", "[batcher]") {
  // First outputs of the reference splitmix64 seeded with 0.
  uint64_t state = 0;
  CHECK(maskgit::splitmix64(state) == 0xE220A8397B1DCDAFULL);
  CHECK(maskgit::splitmix64(state) == 0x6E789E6AA1B965F4ULL);
  CHECK(maskgit::splitmix64(state) == 0x06C45D188009454FULL);
  CHECK(state == 3 * 0x9E3779B97F4A7C15ULL);
}

TEST_CASE("mix_seed separates nearby inputs", "[batcher]") {
  std::set<uint64_t> seen;
  for (uint64_t a = 0; a < 32; ++a)
    for (uint64_t b = 0; b < 32; ++b) seen.insert(maskgit::mix_seed(a, b));
  CHECK(seen.size() == 32 * 32);
  CHECK(maskgit::mix_seed(1, 2) == maskgit::mix_seed(1, 2));
  CHECK(maskgit::mix_seed(1, 2) != maskgit::mix_seed(2, 1));
}

TEST_CASE("epoch orders are deterministic permutations", "[batcher]") {
  const Batcher batcher(100, 10, 42);
  const std::vector<int64_t> first = batcher.epoch_order(0);
  CHECK(is_permutation_of_range(first, 100));
  CHECK(first == batcher.epoch_order(0));
  CHECK(first == Batcher(100, 10, 42).epoch_order(0));
  CHECK(first == Batcher(100, 7, 42, false).epoch_order(0));  // the batch size does not change the order

  std::set<std::vector<int64_t>> orders;
  for (int64_t epoch = 0; epoch < 20; ++epoch) {
    const std::vector<int64_t> order = batcher.epoch_order(epoch);
    CHECK(is_permutation_of_range(order, 100));
    orders.insert(order);
  }
  CHECK(orders.size() == 20);
  CHECK(first != Batcher(100, 10, 43).epoch_order(0));

  std::vector<int64_t> identity(100);
  std::iota(identity.begin(), identity.end(), int64_t{0});
  CHECK(first != identity);

  CHECK(Batcher(1, 1, 5).epoch_order(3) == std::vector<int64_t>{0});
}

TEST_CASE("batches tile the epoch order", "[batcher]") {
  SECTION("drop_last drops the partial batch") {
    const Batcher batcher(23, 5, 7);
    REQUIRE(batcher.batches_per_epoch() == 4);
    for (const int64_t epoch : {int64_t{0}, int64_t{3}, int64_t{1}}) {
      const std::vector<int64_t> order = batcher.epoch_order(epoch);
      std::vector<int64_t> joined;
      for (int64_t b = 0; b < batcher.batches_per_epoch(); ++b) {
        const std::vector<int64_t> batch = batcher.batch_indices(epoch, b);
        CHECK(batch.size() == 5);
        joined.insert(joined.end(), batch.begin(), batch.end());
      }
      CHECK(std::equal(joined.begin(), joined.end(), order.begin()));
    }
    CHECK_THROWS_AS(batcher.batch_indices(0, 4), std::out_of_range);
    CHECK_THROWS_AS(batcher.batch_indices(0, -1), std::out_of_range);
  }
  SECTION("without drop_last the last batch is short") {
    const Batcher batcher(23, 5, 7, /*drop_last=*/false);
    REQUIRE(batcher.batches_per_epoch() == 5);
    std::vector<int64_t> joined;
    for (int64_t b = 0; b < 5; ++b) {
      const std::vector<int64_t> batch = batcher.batch_indices(2, b);
      CHECK(batch.size() == (b < 4 ? 5u : 3u));
      joined.insert(joined.end(), batch.begin(), batch.end());
    }
    CHECK(joined == batcher.epoch_order(2));
  }
  SECTION("exact multiples and oversized batches") {
    CHECK(Batcher(20, 5, 1).batches_per_epoch() == 4);
    CHECK(Batcher(20, 5, 1, false).batches_per_epoch() == 4);
    CHECK(Batcher(4, 5, 1).batches_per_epoch() == 0);
    CHECK(Batcher(4, 5, 1, false).batches_per_epoch() == 1);
    CHECK(Batcher(4, 5, 1, false).batch_indices(0, 0).size() == 4);
  }
  SECTION("bad sizes") {
    CHECK_THROWS_AS(Batcher(0, 1, 1), std::invalid_argument);
    CHECK_THROWS_AS(Batcher(10, 0, 1), std::invalid_argument);
  }
}

TEST_CASE("shuffles are uniform over permutations", "[batcher]") {
  // 6000 epochs of 3 items: each of the 6 orders should appear about 1000 times (sd ~ 29).
  const Batcher batcher(3, 1, 2024);
  std::map<std::vector<int64_t>, int> counts;
  for (int64_t epoch = 0; epoch < 6000; ++epoch) ++counts[batcher.epoch_order(epoch)];
  CHECK(counts.size() == 6);
  for (const auto& [order, count] : counts) {
    CAPTURE(order, count);
    CHECK(count > 850);
    CHECK(count < 1150);
  }
}
