// maskgit-inpaint: regenerate the region of a mask picture, keep the rest of the image.
#include <fmt/format.h>

#include "cli/editing_tool.h"
#include "cli/sampler_options.h"
#include "cli/options.h"
#include "common/error.h"
#include "editing/canvas.h"
#include "editing/region.h"

int main(int argc, char** argv) {
  using namespace maskgit;
  CLI::App app{"Inpaint: regenerate the pixels a mask picture selects (white, or opaque in an alpha mask) and keep\n"
               "the rest. The image is encoded to tokens, every token with a selected pixel in its cell is masked\n"
               "and decoded again conditioned on the others, and the result is blended onto the original, so\n"
               "pixels away from the region stay exactly as they were. A mask covering everything is plain\n"
               "generation. Without --class the region is decoded unconditionally (the \"no class\" token).",
               "maskgit-inpaint"};
  EditingCliOptions options;
  options.output = "inpainted/%05d.png";
  std::string mask_path;
  MaskReadOptions mask_options;
  ToolOptions cli(app, Tool::inpaint);
  // --show-defaults needs no edit.
  const bool show_defaults = show_defaults_requested(argc, argv);
  cli.add_no_default("mask", mask_path)->required(!show_defaults);
  cli.add("threshold", mask_options.threshold);
  cli.add_flag("invert", mask_options.invert);
  add_editing_options(cli, options, ClassUse::optional, InputUse::edit_in_place);

  return run_tool(cli, argc, argv, [&] {
    run_editing_tool(Tool::inpaint, options, [&](const EditingInputs& inputs, EditDescription& description) {
      EditSetup setup;
      setup.images = inputs.images;
      const PixelMask mask = read_pixel_mask(mask_path, inputs.input_width, inputs.input_height, mask_options);
      setup.regenerate = fit_pixel_mask(mask.selected, inputs.geometry);
      if (!setup.regenerate.any().item<bool>())
        throw_bad_input(fmt::format("{}: the mask selects no pixel, nothing to regenerate (white = regenerate; "
                                    "see --threshold and --invert)",
                                    mask_path));
      description.region["mask"] = file_identity(mask_path);
      description.region["mask_channel"] = mask.channel;
      description.region["threshold"] = mask_options.threshold;
      description.region["invert"] = mask_options.invert;
      description.arguments = {"--mask", record_path(mask_path), "--threshold", exact_number(mask_options.threshold)};
      if (mask_options.invert) description.arguments.push_back("--invert");
      return setup;
    });
  });
}
