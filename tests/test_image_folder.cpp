#include <torch/torch.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "common/error.h"
#include "data/dataset.h"
#include "data/image_folder.h"
#include "io/image.h"

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
            ("maskgit-test-folder-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  fs::path operator/(const std::string& name) const { return path_ / name; }
  std::string str() const { return path_.string(); }

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

// A flat grey image whose value encodes (class, index), so order can be checked after loading.
torch::Tensor marker_image(int label, int index, int channels = 1, int height = 4, int width = 3) {
  return torch::full({channels, height, width}, static_cast<float>(label * 10 + index) / 255.0f);
}

void add_image(const fs::path& file, const torch::Tensor& image) {
  fs::create_directories(file.parent_path());
  maskgit::write_png(file.string(), image);
}

float marker_of(const torch::Tensor& image) { return image.mean().item<float>() * 255.0f; }

// root/{bag,coat,ankle}/*.png, deliberately created out of order.
void build_tree(const TempDir& root) {
  add_image(root / "coat" / "b.png", marker_image(1, 1));
  add_image(root / "coat" / "a.PNG", marker_image(1, 0));
  add_image(root / "ankle" / "only.png", marker_image(0, 0, 3));  // RGB among grey
  add_image(root / "bag" / "2.png", marker_image(2, 2));
  add_image(root / "bag" / "0.png", marker_image(2, 0));
  add_image(root / "bag" / "1.png", marker_image(2, 1));
  std::ofstream(root / "bag" / "notes.txt") << "not an image";
  add_image(root / "bag" / ".hidden.png", marker_image(9, 9));
  add_image(root / ".ipynb_checkpoints" / "x.png", marker_image(9, 9));
}

}  // namespace

TEST_CASE("image folders load sorted classes and files", "[image_folder]") {
  TempDir root;
  build_tree(root);
  const maskgit::LabeledImages data = maskgit::read_image_folder(root.str(), 1);
  CHECK(data.class_names == std::vector<std::string>{"ankle", "bag", "coat"});
  REQUIRE(data.images.sizes() == torch::IntArrayRef({6, 1, 4, 3}));
  CHECK(data.images.scalar_type() == torch::kFloat32);
  CHECK(torch::equal(data.labels, torch::tensor({0, 1, 1, 1, 2, 2}, torch::kLong)));
  // ankle is 0; bag holds 20, 21, 22 in name order; coat holds 10 ("a.PNG") then 11.
  const std::vector<float> expected = {0, 20, 21, 22, 10, 11};
  for (size_t i = 0; i < expected.size(); ++i) CHECK(marker_of(data.images[static_cast<int64_t>(i)]) == Approx(expected[i]).margin(1e-3));

  const maskgit::LabeledImages rgb = maskgit::read_image_folder(root.str(), 3, 3, 4);
  CHECK(rgb.images.sizes() == torch::IntArrayRef({6, 3, 4, 3}));

  SECTION("limit stops early but keeps every class") {
    const maskgit::LabeledImages some = maskgit::read_image_folder(root.str(), 1, 0, 0, 2);
    CHECK(some.images.size(0) == 2);
    CHECK(some.class_names.size() == 3);
    CHECK(torch::equal(some.labels, torch::tensor({0, 1}, torch::kLong)));
    CHECK(maskgit::read_image_folder(root.str(), 1, 0, 0, 0).images.size(0) == 0);
  }
  SECTION("load_dataset treats a folder without IDX files as an image folder") {
    maskgit::DatasetSpec spec;
    spec.path = root.str();
    spec.channels = 3;
    const maskgit::LabeledImages loaded = maskgit::load_dataset(spec);
    CHECK(loaded.class_names == data.class_names);
    CHECK(loaded.images.sizes() == torch::IntArrayRef({6, 3, 4, 3}));
    spec.width = 28;
    spec.height = 28;
    CHECK_THAT(error_of([&] { maskgit::load_dataset(spec); }, ExitCode::bad_input), Contains("expected 28x28"));
  }
}

TEST_CASE("JPEG extensions are picked up case-insensitively", "[image_folder]") {
  TempDir root;
  // Only the extension matters for discovery; the content is sniffed when read.
  add_image(root / "a" / "x.png", marker_image(0, 0));
  fs::copy_file(root / "a" / "x.png", root / "a" / "y.JPG");
  fs::copy_file(root / "a" / "x.png", root / "a" / "z.jpeg");
  CHECK(maskgit::read_image_folder(root.str(), 1).images.size(0) == 3);
}

TEST_CASE("image folder errors name the folder or file", "[image_folder]") {
  TempDir root;

  SECTION("missing folder") {
    const std::string missing = (root / "missing").string();
    CHECK_THAT(error_of([&] { maskgit::read_image_folder(missing, 1); }, ExitCode::bad_input), Contains(missing));
  }
  SECTION("a file, not a folder") {
    const fs::path file = root / "file.png";
    add_image(file, marker_image(0, 0));
    CHECK_THAT(error_of([&] { maskgit::read_image_folder(file.string(), 1); }, ExitCode::bad_input),
               Contains(file.string() + ": not a directory"));
  }
  SECTION("no class sub-folders") {
    add_image(root / "loose.png", marker_image(0, 0));
    CHECK_THAT(error_of([&] { maskgit::read_image_folder(root.str(), 1); }, ExitCode::bad_input),
               Contains(root.str() + ": no class sub-folders"));
  }
  SECTION("a class without images") {
    add_image(root / "a" / "x.png", marker_image(0, 0));
    fs::create_directories(root / "b");
    std::ofstream(root / "b" / "readme.txt") << "nothing";
    CHECK_THAT(error_of([&] { maskgit::read_image_folder(root.str(), 1); }, ExitCode::bad_input),
               Contains((root / "b").string() + ": class folder has no"));
  }
  SECTION("a bad image") {
    add_image(root / "a" / "x.png", marker_image(0, 0));
    std::ofstream(root / "a" / "y.png") << "garbage";
    CHECK_THAT(error_of([&] { maskgit::read_image_folder(root.str(), 1); }, ExitCode::bad_input),
               Contains((root / "a" / "y.png").string() + ": not a PNG or JPEG image"));
  }
  SECTION("a size mismatch") {
    add_image(root / "a" / "x.png", marker_image(0, 0));
    add_image(root / "a" / "y.png", marker_image(0, 1, 1, 5, 3));
    CHECK(error_of([&] { maskgit::read_image_folder(root.str(), 1); }, ExitCode::bad_input) ==
          (root / "a" / "y.png").string() + ": image is 3x5, expected 3x4");
    CHECK_THAT(error_of([&] { maskgit::read_image_folder(root.str(), 1, 8, 8); }, ExitCode::bad_input),
               Contains((root / "a" / "x.png").string() + ": image is 3x4, expected 8x8"));
  }
}
