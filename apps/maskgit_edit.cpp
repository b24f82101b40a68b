// maskgit-edit: class-conditional editing of a box.
#include <fmt/format.h>

#include "cli/editing_tool.h"
#include "common/error.h"
#include "editing/region.h"

int main(int argc, char** argv) {
  using namespace maskgit;
  CLI::App app{"Class-conditional editing: regenerate a box of the image as the target class, keeping the rest.\n"
               "As in the release, the box's tokens are grown by one token on every side (--dilate) and decoded\n"
               "with T = 12 steps starting at step 2 (--steps, --start-step), then blended onto the original.",
               "maskgit-edit"};
  EditingCliOptions options;
  options.output = "edited/%05d.png";
  options.dilate = 1;
  options.sampler.steps = 12;
  options.sampler.start_step = 2;
  std::string box_text;
  app.add_option("--box", box_text, "The box to regenerate, X,Y,W,H in pixels")->required();
  add_editing_options(app, options, ClassUse::required);

  return run_tool(app, argc, argv, [&] {
    const PixelBox box = parse_box(box_text, "--box");
    run_editing_tool("maskgit-edit", options, [&](const EditingInputs& inputs, Json& description) {
      EditSetup setup;
      setup.images = inputs.images;
      setup.regenerate = box_pixel_mask(box, inputs.images.size(3), inputs.images.size(2), "--box");
      description.set("box", fmt::format("{},{},{},{}", box.x, box.y, box.width, box.height));
      return setup;
    });
  });
}
