// maskgit-outpaint: extend an image beyond its borders.
#include <fmt/format.h>

#include "cli/editing_tool.h"
#include "cli/options.h"
#include "cli/geometry_args.h"
#include "common/error.h"
#include "editing/canvas.h"
#include "editing/region.h"

int main(int argc, char** argv) {
  using namespace maskgit;
  CLI::App app{"Outpaint: extend images beyond their borders. Either add margins (--left/--right/--top/--bottom,\n"
               "each rounded up to whole tokens) or place the image on a --canvas at an --offset. Everything\n"
               "outside the image is generated conditioned on it; a canvas larger than the model's own image size\n"
               "is decoded in overlapping windows of that size, each conditioned on what is known so far. The\n"
               "image's own pixels are kept. Without --class the new area is decoded unconditionally (the\n"
               "\"no class\" token).",
               "maskgit-outpaint"};
  EditingCliOptions options;
  options.output = "outpainted/%05d.png";
  Margins margins;
  std::string canvas_text, offset_text, crop_text;
  ToolOptions cli(app, Tool::outpaint);
  cli.add_no_default("left", margins.left);
  cli.add_no_default("right", margins.right);
  cli.add_no_default("top", margins.top);
  cli.add_no_default("bottom", margins.bottom);
  cli.add_no_default("canvas", canvas_text);
  cli.add_no_default("offset", offset_text);
  cli.add_no_default("crop", crop_text);
  add_editing_options(cli, options, ClassUse::optional, InputUse::canvas);

  return run_tool(cli, argc, argv, [&] {
    const bool any_margin = margins.left + margins.right + margins.top + margins.bottom > 0;
    if (!canvas_text.empty() && any_margin) throw_usage("--canvas: give a canvas or margins, not both");
    if (canvas_text.empty() && !offset_text.empty()) throw_usage("--offset: only with --canvas");
    run_editing_tool(Tool::outpaint, options, [&](const EditingInputs& inputs, EditDescription& description) {
      torch::Tensor images = inputs.images;
      if (!crop_text.empty()) {
        const PixelBox crop = parse_box(crop_text, "--crop");
        require_box_inside(crop, images.size(3), images.size(2));
        images = images.slice(2, crop.y, crop.y + crop.height).slice(3, crop.x, crop.x + crop.width);
        const std::string crop_value = fmt::format("{},{},{},{}", crop.x, crop.y, crop.width, crop.height);
        description.region["crop"] = crop_value;
        description.arguments.insert(description.arguments.end(), {"--crop", crop_value});
      }
      const int64_t width = images.size(3), height = images.size(2);
      CanvasPlacement placement;
      if (canvas_text.empty()) {
        placement = placement_from_margins(width, height, margins, inputs.factor);
      } else {
        int64_t canvas_width = 0, canvas_height = 0;
        parse_size(canvas_text, "--canvas", canvas_width, canvas_height);
        int64_t x = (canvas_width - width) / 2 / inputs.factor * inputs.factor;
        int64_t y = (canvas_height - height) / 2 / inputs.factor * inputs.factor;
        if (!offset_text.empty()) parse_point(offset_text, "--offset", x, y);
        placement = placement_on_canvas(width, height, canvas_width, canvas_height, x, y);
      }
      if (placement.canvas_width < inputs.model_width || placement.canvas_height < inputs.model_height)
        throw_usage(fmt::format("{}: the canvas would be {}x{}, smaller than the model's {}x{} (outpainting decodes "
                                "at least one whole model-sized window)",
                                canvas_text.empty() ? "--left/--right/--top/--bottom" : "--canvas",
                                placement.canvas_width, placement.canvas_height, inputs.model_width,
                                inputs.model_height));
      const PlacedImages placed = place_on_canvas(images, placement);
      EditSetup setup;
      setup.images = placed.pixels;
      setup.known_pixels = placed.known;
      setup.regenerate = placed.known.logical_not();
      // The placement itself, whether it came from margins or a canvas: a replay places alike.
      const std::string canvas = fmt::format("{}x{}", placement.canvas_width, placement.canvas_height);
      const std::string offset = fmt::format("{},{}", placement.offset_x, placement.offset_y);
      description.region["canvas"] = canvas;
      description.region["offset"] = offset;
      description.arguments.insert(description.arguments.end(), {"--canvas", canvas, "--offset", offset});
      return setup;
    });
  });
}
