#include <torch/torch.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "common/error.h"
#include "data/dataset.h"
#include "data/idx.h"

// LibTorch pulls in glog, whose CHECK(cond) aborts the process; it must be gone before Catch
// defines its own, so everything that includes torch comes first.
#undef CHECK
#include <catch2/catch.hpp>

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using maskgit::Error;
using maskgit::ExitCode;

namespace {

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() /
            ("maskgit-test-idx-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string error_of(const std::function<void()>& action, ExitCode code) {
  try {
    action();
  } catch (const Error& e) {
    CHECK(static_cast<int>(e.code()) == static_cast<int>(code));
    const std::string message = e.what();
    CHECK(message.find('\n') == std::string::npos);
    return message;
  }
  FAIL("expected maskgit::Error");
  return {};
}

std::string idx_bytes(const std::vector<uint32_t>& dims, const std::vector<uint8_t>& data, uint8_t type = 0x08) {
  std::string bytes = {0, 0, static_cast<char>(type), static_cast<char>(dims.size())};
  for (const uint32_t d : dims)
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<char>((d >> shift) & 0xff));
  bytes.append(data.begin(), data.end());
  return bytes;
}

void write_raw(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
  REQUIRE(out.good());
}

void write_gz(const std::string& path, const std::string& bytes) {
  gzFile file = gzopen(path.c_str(), "wb");
  REQUIRE(file != nullptr);
  if (!bytes.empty()) REQUIRE(gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size())) > 0);
  REQUIRE(gzclose(file) == Z_OK);
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::vector<uint8_t> counting(size_t n) {
  std::vector<uint8_t> data(n);
  for (size_t i = 0; i < n; ++i) data[i] = static_cast<uint8_t>(i * 7 % 256);
  return data;
}

// Writes <dir>/<split>-{images-idx3,labels-idx1}-ubyte[.gz] with `n` 3x2 images.
void write_idx_pair(const fs::path& dir, const std::string& split, uint32_t n, const std::vector<uint8_t>& labels,
                    bool gz) {
  const std::string suffix = gz ? ".gz" : "";
  const auto store = gz ? write_gz : write_raw;
  store((dir / (split + "-images-idx3-ubyte" + suffix)).string(), idx_bytes({n, 3, 2}, counting(n * 6)));
  store((dir / (split + "-labels-idx1-ubyte" + suffix)).string(),
        idx_bytes({static_cast<uint32_t>(labels.size())}, labels));
}

}  // namespace

TEST_CASE("IDX files read back, raw and gzipped", "[idx]") {
  TempDir dir;
  const std::vector<uint8_t> pixels = counting(4 * 3 * 2);
  const std::string bytes = idx_bytes({4, 3, 2}, pixels);
  for (const bool gz : {false, true}) {
    DYNAMIC_SECTION((gz ? "gzipped" : "raw")) {
      const std::string path = dir.file(gz ? "images.gz" : "images");
      (gz ? write_gz : write_raw)(path, bytes);

      const torch::Tensor raw = maskgit::read_idx_u8(path);
      CHECK(raw.scalar_type() == torch::kUInt8);
      REQUIRE(raw.sizes() == torch::IntArrayRef({4, 3, 2}));
      const torch::Tensor expected = torch::tensor(std::vector<int64_t>(pixels.begin(), pixels.end())).view({4, 3, 2});
      CHECK(torch::equal(raw.to(torch::kLong), expected));

      const torch::Tensor images = maskgit::read_idx_images(path);
      CHECK(images.scalar_type() == torch::kFloat32);
      REQUIRE(images.sizes() == torch::IntArrayRef({4, 1, 3, 2}));
      CHECK(torch::allclose(images.squeeze(1), expected.to(torch::kFloat32) / 255.0f));
      CHECK(images.min().item<float>() >= 0.0f);
      CHECK(images.max().item<float>() <= 1.0f);

      CHECK(maskgit::read_idx_images(path, 2).size(0) == 2);
      CHECK(maskgit::read_idx_images(path, 0).size(0) == 0);
      CHECK(maskgit::read_idx_images(path, 100).size(0) == 4);
    }
  }
}

TEST_CASE("IDX labels read as int64", "[idx]") {
  TempDir dir;
  const std::string path = dir.file("labels");
  write_gz(path, idx_bytes({5}, {0, 9, 3, 255, 1}));
  const torch::Tensor labels = maskgit::read_idx_labels(path);
  CHECK(labels.scalar_type() == torch::kLong);
  CHECK(torch::equal(labels, torch::tensor({0, 9, 3, 255, 1}, torch::kLong)));
  CHECK(torch::equal(maskgit::read_idx_labels(path, 2), torch::tensor({0, 9}, torch::kLong)));

  CHECK_THAT(error_of([&] { maskgit::read_idx_images(path); }, ExitCode::bad_input),
             Contains(path + ": expected an idx3 image file"));
  const std::string images = dir.file("images");
  write_raw(images, idx_bytes({1, 2, 2}, counting(4)));
  CHECK_THAT(error_of([&] { maskgit::read_idx_labels(images); }, ExitCode::bad_input),
             Contains(images + ": expected an idx1 label file"));
}

TEST_CASE("corrupt IDX files are bad input naming the file", "[idx]") {
  TempDir dir;
  for (const bool gz : {false, true}) {
    DYNAMIC_SECTION((gz ? "gzipped" : "raw")) {
      const std::string path = dir.file(gz ? "bad.gz" : "bad");
      const auto store = [&](const std::string& bytes) { (gz ? write_gz : write_raw)(path, bytes); };
      const auto message = [&] { return error_of([&] { maskgit::read_idx_u8(path); }, ExitCode::bad_input); };

      std::string bytes = idx_bytes({2, 2}, counting(4));
      bytes[0] = 0x12;
      bytes[1] = 0x34;
      store(bytes);
      CHECK(message() == path + ": not an IDX file (bad magic 0x12340802)");

      store(idx_bytes({2, 2}, std::vector<uint8_t>(16), 0x0D));
      CHECK_THAT(message(), Contains(path + ": IDX element type 0x0d (float) is not supported"));

      store(idx_bytes({2, 2}, counting(4), 0x42));
      CHECK_THAT(message(), Contains(path + ": not an IDX file (bad magic"));

      store(idx_bytes({2, 3}, counting(5)));
      CHECK(message() == path + ": data is 5 bytes, header says 6");

      store(idx_bytes({2, 3}, counting(9)));
      CHECK(message() == path + ": data is 9 bytes, header says 6");

      store(idx_bytes({2, 0, 3}, {}));
      CHECK(message() == path + ": IDX dimension 1 is zero");

      store(idx_bytes({}, {}));
      CHECK_THAT(message(), Contains(path + ": IDX rank 0"));

      store(idx_bytes({2, 3}, counting(6)).substr(0, 9));
      CHECK_THAT(message(), Contains(path + ": truncated IDX header"));

      store(std::string("\0\0", 2));
      CHECK_THAT(message(), Contains(path + ": not an IDX file"));

      store(idx_bytes({0xffffffffu, 0xffffffffu, 0xffffffffu}, {}));
      CHECK_THAT(message(), Contains(path + ": IDX dimensions are implausibly large"));

      // A header claiming 4 GiB over 16 bytes of data is refused before anything is allocated
      // (found by fuzz/fuzz_idx: every such file used to cost a 64 MiB buffer).
      store(idx_bytes({65536, 65536}, counting(16)));
      CHECK(message() == (gz ? path + ": header says 4294967296 bytes of data, more than a " +
                                   std::to_string(fs::file_size(path)) + "-byte gzip file can hold"
                             : path + ": data is 16 bytes, header says 4294967296"));
    }
  }
}

TEST_CASE("broken gzip streams and missing files are bad input", "[idx]") {
  TempDir dir;
  const std::string good = dir.file("good.gz");
  write_gz(good, idx_bytes({64, 8, 8}, counting(64 * 64)));
  const std::string bytes = slurp(good);

  const std::string cut = dir.file("cut.gz");
  write_raw(cut, bytes.substr(0, bytes.size() / 2));
  CHECK(error_of([&] { maskgit::read_idx_u8(cut); }, ExitCode::bad_input) == cut + ": truncated gzip stream");

  std::string damaged = bytes;
  for (size_t i = 12; i < damaged.size() - 8; i += 5) damaged[i] = static_cast<char>(~damaged[i]);
  const std::string corrupt = dir.file("corrupt.gz");
  write_raw(corrupt, damaged);
  CHECK_THAT(error_of([&] { maskgit::read_idx_u8(corrupt); }, ExitCode::bad_input),
             Contains(corrupt + ": corrupt gzip stream ("));

  // Intact deflate data with a wrong CRC-32 in the trailer: only the checksum catches it.
  std::string bad_crc = bytes;
  bad_crc[bad_crc.size() - 8] = static_cast<char>(~bad_crc[bad_crc.size() - 8]);
  const std::string crc = dir.file("crc.gz");
  write_raw(crc, bad_crc);
  CHECK_THAT(error_of([&] { maskgit::read_idx_u8(crc); }, ExitCode::bad_input),
             Contains(crc + ": corrupt gzip stream (incorrect data check)"));

  // A gzip header with nothing after it.
  const std::string stub = dir.file("stub.gz");
  write_raw(stub, bytes.substr(0, 10));
  CHECK_THAT(error_of([&] { maskgit::read_idx_u8(stub); }, ExitCode::bad_input), Contains(stub + ": "));

  const std::string missing = dir.file("missing-idx3-ubyte");
  CHECK_THAT(error_of([&] { maskgit::read_idx_u8(missing); }, ExitCode::bad_input), Contains(missing));
}

TEST_CASE("load_dataset finds IDX pairs by split, path and name", "[idx][dataset]") {
  TempDir dir;
  const std::vector<uint8_t> train_labels = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 0};
  write_idx_pair(dir.path(), "train", 12, train_labels, /*gz=*/true);
  write_idx_pair(dir.path(), "t10k", 3, {2, 1, 0}, /*gz=*/false);

  maskgit::DatasetSpec spec;
  spec.path = dir.path().string();
  const maskgit::LabeledImages train = maskgit::load_dataset(spec);
  CHECK(train.images.sizes() == torch::IntArrayRef({12, 1, 3, 2}));
  CHECK(train.labels.sizes() == torch::IntArrayRef({12}));
  CHECK(train.class_names == maskgit::fashion_mnist_class_names());

  spec.split = "t10k";
  const maskgit::LabeledImages test = maskgit::load_dataset(spec);
  CHECK(test.images.size(0) == 3);
  CHECK(test.class_names == std::vector<std::string>{"0", "1", "2"});

  SECTION("limit keeps the first images and the class names") {
    spec.split = "train";
    spec.limit = 3;
    const maskgit::LabeledImages some = maskgit::load_dataset(spec);
    CHECK(some.images.size(0) == 3);
    CHECK(torch::equal(some.labels, torch::tensor({0, 1, 2}, torch::kLong)));
    CHECK(some.class_names.size() == 10);
  }
  SECTION("an images file finds its labels") {
    spec.path = dir.file("train-images-idx3-ubyte.gz");
    CHECK(maskgit::load_dataset(spec).labels.size(0) == 12);
    spec.path = dir.file("t10k-images-idx3-ubyte");
    CHECK(maskgit::load_dataset(spec).labels.size(0) == 3);
  }
  SECTION("channels and size") {
    spec.split = "train";
    spec.channels = 3;
    spec.width = 2;
    spec.height = 3;
    const maskgit::LabeledImages rgb = maskgit::load_dataset(spec);
    CHECK(rgb.images.sizes() == torch::IntArrayRef({12, 3, 3, 2}));
    spec.width = 28;
    spec.height = 0;
    CHECK(error_of([&] { maskgit::load_dataset(spec); }, ExitCode::bad_input) ==
          spec.path + ": images are 2x3, expected 28x3");
  }
  SECTION("errors") {
    spec.split = "valid";
    CHECK_THAT(error_of([&] { maskgit::load_dataset(spec); }, ExitCode::bad_input),
               Contains("no valid-images-idx3-ubyte[.gz]"));
    spec.split = "train";
    spec.path = dir.file("nothing-here");
    CHECK_THAT(error_of([&] { maskgit::load_dataset(spec); }, ExitCode::bad_input), Contains(spec.path));
    spec.path = dir.file("t10k-images-idx3-ubyte");
    fs::remove(dir.file("t10k-labels-idx1-ubyte"));
    CHECK_THAT(error_of([&] { maskgit::load_dataset(spec); }, ExitCode::bad_input), Contains("labels"));
    write_raw(dir.file("t10k-labels-idx1-ubyte"), idx_bytes({2}, {0, 1}));
    CHECK_THAT(error_of([&] { maskgit::load_dataset(spec); }, ExitCode::bad_input), Contains("2 labels for 3 images"));
    spec.path = dir.path().string();
    spec.split = "t10k";
    fs::remove(dir.file("t10k-labels-idx1-ubyte"));
    CHECK_THAT(error_of([&] { maskgit::load_dataset(spec); }, ExitCode::bad_input), Contains("t10k-labels-idx1"));
  }
}

TEST_CASE("the installed Fashion-MNIST test split reads", "[idx][fashion-mnist]") {
  const fs::path root = maskgit::kFashionMnistDir;
  const fs::path images = root / "t10k-images-idx3-ubyte.gz";
  const fs::path labels = root / "t10k-labels-idx1-ubyte.gz";
  if (!fs::exists(images) || !fs::exists(labels)) {
    WARN("skipped: " << root.string() << " is not installed");
    return;
  }
  const torch::Tensor x = maskgit::read_idx_images(images.string());
  CHECK(x.sizes() == torch::IntArrayRef({10000, 1, 28, 28}));
  CHECK(x.min().item<float>() >= 0.0f);
  CHECK(x.max().item<float>() <= 1.0f);
  const torch::Tensor y = maskgit::read_idx_labels(labels.string());
  CHECK(y.sizes() == torch::IntArrayRef({10000}));
  CHECK(y.min().item<int64_t>() >= 0);
  CHECK(y.max().item<int64_t>() < 10);

  // Every class is present in the test split.
  const torch::Tensor per_class = torch::bincount(y, {}, 10);
  CHECK(per_class.size(0) == 10);
  CHECK(per_class.min().item<int64_t>() > 0);

  maskgit::DatasetSpec spec;
  spec.path = root.string();
  spec.split = "t10k";
  const maskgit::LabeledImages all = maskgit::load_dataset(spec);
  CHECK(all.images.sizes() == torch::IntArrayRef({10000, 1, 28, 28}));
  CHECK(all.images.scalar_type() == torch::kFloat32);
  CHECK(all.images.min().item<float>() >= 0.0f);
  CHECK(all.images.max().item<float>() <= 1.0f);
  CHECK(all.images.max().item<float>() == 1.0f);  // 8-bit data scaled by 1/255, not left as bytes
  CHECK(torch::equal(all.images, x));
  CHECK(torch::equal(all.labels, y));
  REQUIRE(all.class_names.size() == 10);
  CHECK(all.class_names.front() == "T-shirt/top");
  CHECK(all.class_names.back() == "Ankle boot");

  spec.limit = 100;
  spec.width = 28;
  spec.height = 28;
  const maskgit::LabeledImages data = maskgit::load_dataset(spec);
  CHECK(data.images.sizes() == torch::IntArrayRef({100, 1, 28, 28}));
  CHECK(data.class_names == maskgit::fashion_mnist_class_names());
  CHECK(torch::equal(data.labels, y.slice(0, 0, 100)));
}
