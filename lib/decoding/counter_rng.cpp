#include "decoding/counter_rng.h"

#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <stdexcept>

namespace maskgit {
namespace {

constexpr int64_t kWord = 0xffffffffLL;
constexpr float kUniformScale = 1.0f / 8388608.0f;  // 2^-23

// pcg_hash on int64 tensors holding 32-bit words.
torch::Tensor pcg_hash_tensor(const torch::Tensor& x) {
  torch::Tensor state = x.mul(int64_t{747796405}).add_(int64_t{2891336453LL}).bitwise_and_(kWord);
  torch::Tensor shift = state.bitwise_right_shift(int64_t{28}).add_(int64_t{4});
  torch::Tensor word =
      state.bitwise_right_shift(shift).bitwise_xor_(state).mul_(int64_t{277803737}).bitwise_and_(kWord);
  return word.bitwise_right_shift(int64_t{22}).bitwise_xor_(word);
}

float uniform_of_bits(uint32_t bits) { return (static_cast<float>(bits >> 9) + 0.5f) * kUniformScale; }

}  // namespace

uint32_t pcg_hash(uint32_t x) {
  const uint32_t state = x * 747796405u + 2891336453u;
  const uint32_t word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

CounterRng::CounterRng(const std::vector<uint64_t>& seeds, int64_t steps, int64_t streams,
                       const torch::Device& device)
    : batch_(static_cast<int64_t>(seeds.size())), steps_(steps), streams_(streams) {
  // The step key is 4·step + stream in 32 bits: at most 4 streams and 2^30 steps.
  if (steps < 1 || steps > (int64_t{1} << 30) || streams < 1 || streams > 4)
    throw std::invalid_argument("CounterRng: need 1 <= steps <= 2^30 and 1 <= streams <= 4");
  torch::Tensor host_keys = torch::empty({steps, streams, batch_, 2}, torch::kLong);
  auto keys = host_keys.accessor<int64_t, 4>();
  for (int64_t b = 0; b < batch_; ++b) {
    const uint64_t mixed = splitmix64(seeds[static_cast<size_t>(b)]);
    const auto k0 = static_cast<uint32_t>(mixed), k1 = static_cast<uint32_t>(mixed >> 32);
    for (int64_t step = 0; step < steps; ++step)
      for (int64_t stream = 0; stream < streams; ++stream) {
        const uint32_t h = pcg_hash(static_cast<uint32_t>(step * 4 + stream));
        const uint32_t a = pcg_hash(k0 ^ h);
        keys[step][stream][b][0] = a;
        keys[step][stream][b][1] = pcg_hash(k1 ^ pcg_hash(a));
      }
  }
  keys_ = device.is_cpu() ? host_keys : host_keys.to(device);
}

torch::Tensor CounterRng::stream_keys(int64_t step, int64_t stream) const {
  if (step < 0 || step >= steps_ || stream < 0 || stream >= streams_)
    throw std::invalid_argument(fmt::format("CounterRng: step {} / stream {} out of range", step, stream));
  return keys_[step][stream];
}

torch::Tensor CounterRng::uniform_with_tensor_ops(int64_t step, int64_t stream, int64_t count) const {
  if (count < 0 || count > kWord + 1) throw std::invalid_argument("CounterRng: count exceeds 2^32");
  const torch::Tensor keys = stream_keys(step, stream);
  const torch::Tensor a = keys.select(1, 0).unsqueeze(1), c = keys.select(1, 1).unsqueeze(1);
  const torch::Tensor index = torch::arange(count, keys.options()).unsqueeze(0);
  const torch::Tensor bits = pcg_hash_tensor(pcg_hash_tensor(a.add(index).bitwise_and_(kWord)).bitwise_xor_(c));
  return bits.bitwise_right_shift(int64_t{9}).to(torch::kFloat32).add_(0.5f).mul_(kUniformScale);
}

torch::Tensor CounterRng::uniform(int64_t step, int64_t stream, int64_t count) const {
  if (!keys_.is_cpu()) return uniform_with_tensor_ops(step, stream, count);
  if (count < 0 || count > kWord + 1) throw std::invalid_argument("CounterRng: count exceeds 2^32");
  const torch::Tensor keys = stream_keys(step, stream).contiguous();
  torch::Tensor out = torch::empty({batch_, count}, torch::kFloat32);
  const int64_t* key = keys.data_ptr<int64_t>();
  float* values = out.data_ptr<float>();
  const int64_t total = batch_ * count;
  at::parallel_for(0, total, 1 << 14, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end;) {
      const int64_t b = j / count, row_end = std::min(end, (b + 1) * count);
      const auto a = static_cast<uint32_t>(key[2 * b]), c = static_cast<uint32_t>(key[2 * b + 1]);
      for (auto i = static_cast<uint32_t>(j - b * count); j < row_end; ++j, ++i)
        values[j] = uniform_of_bits(pcg_hash(pcg_hash(a + i) ^ c));
    }
  });
  return out;
}

}  // namespace maskgit
