#include "data/image_folder.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <system_error>

#include "common/error.h"
#include "io/image.h"

namespace maskgit {
namespace fs = std::filesystem;

namespace {

bool is_image_file(const fs::path& path) {
  std::string extension = path.extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return extension == ".png" || extension == ".jpg" || extension == ".jpeg";
}

// Dot entries are tool droppings (.ipynb_checkpoints, macOS "._x.png" resource forks), not data.
bool is_hidden(const fs::path& path) {
  const std::string name = path.filename().string();
  return !name.empty() && name.front() == '.';
}

// The entries of `directory` accepted by `keep`, sorted by name so that class ids and sample
// order do not depend on the filesystem's listing order.
template <typename Keep>
std::vector<fs::path> sorted_entries(const fs::path& directory, Keep keep) {
  std::vector<fs::path> entries;
  std::error_code error;
  fs::directory_iterator it(directory, error);
  for (; !error && it != fs::directory_iterator(); it.increment(error)) {
    if (is_hidden(it->path())) continue;
    if (keep(*it)) entries.push_back(it->path());
  }
  if (error) throw_bad_input(fmt::format("{}: cannot list directory: {}", directory.string(), error.message()));
  std::sort(entries.begin(), entries.end(),
            [](const fs::path& a, const fs::path& b) { return a.filename().string() < b.filename().string(); });
  return entries;
}

}  // namespace

LabeledImages read_image_folder(const std::string& root, int channels, int width, int height, int64_t limit) {
  std::error_code error;
  if (!fs::exists(root, error)) throw_bad_input(fmt::format("{}: no such directory", root));
  if (!fs::is_directory(root, error)) throw_bad_input(fmt::format("{}: not a directory", root));

  const std::vector<fs::path> class_dirs = sorted_entries(root, [](const fs::directory_entry& entry) {
    std::error_code ignored;
    return entry.is_directory(ignored);
  });
  if (class_dirs.empty())
    throw_bad_input(fmt::format("{}: no class sub-folders (expected {}/<class>/*.png)", root, root));

  LabeledImages out;
  std::vector<torch::Tensor> images;
  std::vector<int64_t> labels;
  for (size_t label = 0; label < class_dirs.size(); ++label) {
    // Every class folder is listed even past `limit`, so class ids and names do not depend on it.
    const std::vector<fs::path> files = sorted_entries(class_dirs[label], [](const fs::directory_entry& entry) {
      std::error_code ignored;
      return entry.is_regular_file(ignored) && is_image_file(entry.path());
    });
    if (files.empty())
      throw_bad_input(fmt::format("{}: class folder has no .png, .jpg or .jpeg images", class_dirs[label].string()));
    out.class_names.push_back(class_dirs[label].filename().string());
    for (const auto& file : files) {
      if (limit >= 0 && static_cast<int64_t>(images.size()) >= limit) break;
      torch::Tensor image = read_image_as(file.string(), channels, width, height);
      // The first image fixes the size the others must match.
      if (width <= 0) width = static_cast<int>(image.size(2));
      if (height <= 0) height = static_cast<int>(image.size(1));
      images.push_back(std::move(image));
      labels.push_back(static_cast<int64_t>(label));
    }
  }
  if (images.empty()) {
    out.images = torch::empty({0, channels, std::max(height, 0), std::max(width, 0)}, torch::kFloat32);
    out.labels = torch::empty({0}, torch::kLong);
  } else {
    out.images = torch::stack(images);
    out.labels = torch::tensor(labels, torch::kLong);
  }
  return out;
}

}  // namespace maskgit
