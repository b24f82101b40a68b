#pragma once
// An image folder with one sub-folder per class: root/<class name>/*.png|jpg|jpeg.
// Class ids follow the sorted sub-folder names.
#include <torch/torch.h>

#include <string>
#include <vector>

namespace maskgit {

struct LabeledImages {
  torch::Tensor images;                 // [N, C, H, W] float in [0,1]
  torch::Tensor labels;                 // [N] int64
  std::vector<std::string> class_names; // index = class id
};

// Loads every image, converted to `channels`; all must be width × height (if 0, the first
// image's size is used and the rest must match). Throws Error(bad_input) naming the folder
// or file: missing folder, no class sub-folders, a class with no images, a bad image, a size
// mismatch.
LabeledImages read_image_folder(const std::string& root, int channels, int width = 0,
                                int height = 0, int64_t limit = -1);

}  // namespace maskgit
