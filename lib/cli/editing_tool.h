#pragma once
// What maskgit-inpaint, maskgit-outpaint and maskgit-edit share, defined once: their options
// (inputs, class, variants, seeds, outputs, region tuning, sampler, runtime) and the driver
// that loads the model, validates everything before writing anything, runs the edit and
// writes PNGs (with metadata), JSON lines, the token-mask picture and a comparison grid.
// Each tool only adds its own region options and turns them into an EditSetup.
#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

#include "cli/common.h"
#include "cli/image_record.h"
#include "cli/input_options.h"
#include "cli/sampler_options.h"
#include "editing/canvas.h"
#include "editing/editor.h"
#include "io/json.h"
#include "model/model_dir.h"

namespace maskgit {

enum class ClassUse { optional, required };

// What the tool does with its input image: edits it in place (maskgit-inpaint, maskgit-edit:
// --fit and --feather are offered; with --fit none the image must be at least the model's
// size), or places it on a canvas (maskgit-outpaint: no --fit, no --feather, since the image's
// pixels are kept exactly; the canvas must be at least the model's size).
enum class InputUse { edit_in_place, canvas };

struct EditingCliOptions {
  std::string model_dir;
  RuntimeOptions runtime;
  SamplerCliOptions sampler;
  InputOptions inputs;
  std::string class_word;  // empty: the "no class" token
  int64_t variants = 1;
  uint64_t seed = 0;
  int64_t batch_size = 64;
  std::string output = "edited/%05d.png";
  std::string save_mask;
  std::string grid;
  int64_t grid_scale = 4;
  bool json = false;
  int64_t dilate = 0;
  std::string feather = "auto";
  InputUse input_use = InputUse::edit_in_place;  // set by add_editing_options
};

// Adds every shared option; the defaults in `options` (set by the tool before the call, e.g.
// maskgit-edit's 12 steps from step 2, sampler.use = editing, and 1-token dilation) are the
// ones --help shows, after the model's own decoding defaults.
void add_editing_options(ToolOptions& cli, EditingCliOptions& options, ClassUse class_use, InputUse input_use);

// The inputs as the tool sees them before it builds its region.
struct EditingInputs {
  torch::Tensor images;  // [N, C, H, W] in [0, 1], in the model's channels, fitted by --fit
  int64_t factor = 0;    // the tokenizer's pixels per token
  int64_t model_width = 0;   // the model's image size
  int64_t model_height = 0;
  // The inputs' own size (masks and boxes are given in it) and how --fit mapped it onto
  // `images`: a region built at the input's size goes through fit_pixel_mask(region, geometry).
  int64_t input_width = 0;
  int64_t input_height = 0;
  FitGeometry geometry;
};

// What a tool adds to each result's record (cli/image_record.h) about its region: `region`
// (e.g. the mask file's identity, the box, the canvas), and `arguments`, the tool's own flags
// that rebuild the same region in a replay (e.g. {"--box", "3,4,10,12"}).
struct EditDescription {
  RecordJson region = RecordJson::object();
  std::vector<std::string> arguments;
};

// Builds the setup from the inputs: the region, the canvas, and fills `description`. Throws
// the tool's own one-line errors. Feather radius and dilation are filled in by the driver.
using PrepareEdit = std::function<EditSetup(const EditingInputs& inputs, EditDescription& description)>;

// Runs a whole editing tool after parsing; `tool` is recorded in the metadata.
void run_editing_tool(Tool tool, const EditingCliOptions& options, const PrepareEdit& prepare);

}  // namespace maskgit
