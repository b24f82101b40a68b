// maskgit-edit: class-conditional editing of a box.
#include <fmt/format.h>

#include "cli/editing_tool.h"
#include "cli/sampler_options.h"
#include "cli/options.h"
#include "cli/geometry_args.h"
#include "common/error.h"
#include "editing/canvas.h"
#include "editing/region.h"

int main(int argc, char** argv) {
  using namespace maskgit;
  CLI::App app{"Class-conditional editing: regenerate a box of the image as the target class, keeping the rest.\n"
               "As in the release, the box's tokens are grown by one token on every side (--dilate) and decoded\n"
               "with T = 12 steps starting at step 2 (--steps, --start-step; or the model's sampling.edit_steps and\n"
               "edit_start_step), then blended onto the original.",
               "maskgit-edit"};
  EditingCliOptions options;
  options.output = "edited/%05d.png";
  options.dilate = 1;
  options.sampler.use = SamplingUse::editing;
  options.sampler.steps = 12;
  options.sampler.start_step = 2;
  std::string box_text;
  ToolOptions cli(app, Tool::edit);
  // --show-defaults needs no edit.
  const bool show_defaults = show_defaults_requested(argc, argv);
  cli.add_no_default("box", box_text)->required(!show_defaults);
  add_editing_options(cli, options, show_defaults ? ClassUse::optional : ClassUse::required, InputUse::edit_in_place);

  return run_tool(cli, argc, argv, [&] {
    const PixelBox box = options.sampler.show_defaults ? PixelBox{} : parse_box(box_text, "--box");
    run_editing_tool(Tool::edit, options, [&](const EditingInputs& inputs, EditDescription& description) {
      EditSetup setup;
      setup.images = inputs.images;
      setup.regenerate =
          fit_pixel_mask(box_pixel_mask(box, inputs.input_width, inputs.input_height), inputs.geometry);
      const std::string box_value = fmt::format("{},{},{},{}", box.x, box.y, box.width, box.height);
      description.region["box"] = box_value;
      description.arguments = {"--box", box_value};
      return setup;
    });
  });
}
