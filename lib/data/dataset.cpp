#include "data/dataset.h"

#include <fmt/format.h>

#include <filesystem>
#include <system_error>

#include "common/error.h"
#include "data/idx.h"
#include "io/image.h"

namespace maskgit {
namespace fs = std::filesystem;

const std::vector<std::string>& fashion_mnist_class_names() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                 "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

namespace {

bool is_file(const fs::path& path) {
  std::error_code error;
  return fs::is_regular_file(path, error);
}

// `base` itself or `base`.gz, whichever exists; empty if neither.
std::string with_optional_gz(const fs::path& base) {
  if (is_file(base)) return base.string();
  fs::path gz = base;
  gz += ".gz";
  if (is_file(gz)) return gz.string();
  return {};
}

// The labels beside an images file: same name with images-idx3 → labels-idx1, compressed or not.
std::string labels_beside(const std::string& images_path) {
  std::string labels = images_path;
  const std::string marker = "images-idx3";
  const size_t at = labels.rfind(marker);
  if (at == std::string::npos)
    throw_bad_input(fmt::format("{}: an IDX images file must be named *images-idx3* so that its labels "
                                "(*labels-idx1*) can be found beside it",
                                images_path));
  labels.replace(at, marker.size(), "labels-idx1");
  if (is_file(labels)) return labels;
  const std::string gz = ".gz";
  const bool gzipped = labels.size() >= gz.size() && labels.compare(labels.size() - gz.size(), gz.size(), gz) == 0;
  const std::string other = gzipped ? labels.substr(0, labels.size() - gz.size()) : labels + gz;
  if (is_file(other)) return other;
  throw_bad_input(fmt::format("{}: labels file {} not found", images_path, labels));
}

LabeledImages load_idx_pair(const std::string& images_path, const std::string& labels_path, int64_t limit) {
  LabeledImages out;
  // Class names come from all labels, so they do not change with `limit`.
  const torch::Tensor all_labels = read_idx_labels(labels_path);
  out.images = read_idx_images(images_path, limit);
  const int64_t count = out.images.size(0);
  // Under a limit the images file's full count is unknown; the labels must still cover it.
  const bool maybe_cut = limit >= 0 && count == limit;
  if (maybe_cut ? all_labels.size(0) < count : all_labels.size(0) != count)
    throw_bad_input(fmt::format("{}: {} labels for {} images in {}", labels_path, all_labels.size(0),
                                maybe_cut ? fmt::format("at least {}", count) : std::to_string(count), images_path));
  out.labels = all_labels.slice(0, 0, count).clone();
  const int64_t classes = all_labels.max().item<int64_t>() + 1;
  if (classes == static_cast<int64_t>(fashion_mnist_class_names().size())) {
    out.class_names = fashion_mnist_class_names();
  } else {
    for (int64_t c = 0; c < classes; ++c) out.class_names.push_back(std::to_string(c));
  }
  return out;
}

// Names the IDX images in `directory`, if any, for an error about a missing split.
std::string idx_images_in(const fs::path& directory) {
  std::error_code error;
  std::string found;
  for (fs::directory_iterator it(directory, error); !error && it != fs::directory_iterator(); it.increment(error)) {
    const std::string name = it->path().filename().string();
    if (name.find("-images-idx3-ubyte") != std::string::npos) found += (found.empty() ? "" : ", ") + name;
  }
  return found;
}

}  // namespace

LabeledImages load_dataset(const DatasetSpec& spec) {
  if (spec.channels != 1 && spec.channels != 3)
    throw InvalidArgument("channels", fmt::format("a dataset is read with 1 or 3 channels, not {}", spec.channels));
  if (spec.width < 0 || spec.height < 0)
    throw InvalidArgument("image_size",
                          fmt::format("the dataset image size {}x{} is negative", spec.width, spec.height));
  const fs::path path(spec.path);
  std::error_code error;
  if (spec.path.empty() || !fs::exists(path, error))
    throw_bad_input(fmt::format("{}: no such dataset file or directory", spec.path));

  LabeledImages data;
  if (fs::is_directory(path, error)) {
    const std::string images = with_optional_gz(path / (spec.split + "-images-idx3-ubyte"));
    if (images.empty()) {
      const std::string others = idx_images_in(path);
      if (!others.empty())
        throw_bad_input(fmt::format("{}: no {}-images-idx3-ubyte[.gz] (found {})", spec.path, spec.split, others));
      return read_image_folder(spec.path, spec.channels, spec.width, spec.height, spec.limit);
    }
    const std::string labels = with_optional_gz(path / (spec.split + "-labels-idx1-ubyte"));
    if (labels.empty())
      throw_bad_input(fmt::format("{}: has {} but no {}-labels-idx1-ubyte[.gz]", spec.path,
                                  fs::path(images).filename().string(), spec.split));
    data = load_idx_pair(images, labels, spec.limit);
  } else {
    data = load_idx_pair(spec.path, labels_beside(spec.path), spec.limit);
  }

  const int64_t height = data.images.size(2);
  const int64_t width = data.images.size(3);
  if ((spec.width > 0 && width != spec.width) || (spec.height > 0 && height != spec.height))
    throw_bad_input(fmt::format("{}: images are {}x{}, expected {}x{}", spec.path, width, height,
                                spec.width > 0 ? spec.width : width, spec.height > 0 ? spec.height : height));
  if (spec.channels != 1) data.images = convert_channels(data.images, spec.channels);
  return data;
}

}  // namespace maskgit
