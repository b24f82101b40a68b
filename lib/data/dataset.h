#pragma once
// One entry point for training and evaluation data: either an IDX pair or an image folder.
#include <string>

#include "data/image_folder.h"

namespace maskgit {

struct DatasetSpec {
  // A directory holding <split>-images-idx3-ubyte[.gz] and <split>-labels-idx1-ubyte[.gz]
  // (the Fashion-MNIST layout), an idx3 images file (labels found beside it by name), or an
  // image folder with one sub-folder per class.
  std::string path;
  std::string split = "train";  // "train" or "t10k" for the IDX layout
  int channels = 1;
  int width = 0;   // 0: take from the data
  int height = 0;
  int64_t limit = -1;
};

// The Fashion-MNIST class names, used for IDX data (which carries no names).
const std::vector<std::string>& fashion_mnist_class_names();

// Default location of Debian's dataset-fashion-mnist package.
constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// InvalidArgument("channels" or "image_size") for channels other than 1 or 3 or a negative
// size; Error(bad_input) naming the path for missing or unreadable data.
LabeledImages load_dataset(const DatasetSpec& spec);

}  // namespace maskgit
