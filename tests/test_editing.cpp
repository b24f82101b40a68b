#include <filesystem>

#include "cli/geometry_args.h"
#include "common/error.h"
#include "editing/canvas.h"
#include "editing/editor.h"
#include "editing/region.h"
#include "editing/windowed.h"
#include "generation/sampler.h"
#include "io/image.h"
#include "tokenizer/vqgan.h"
#include "transformer/transformer.h"

#include "test_support.h"
#include "tiny_models.h"

// Catch2 comes last: LibTorch pulls in glog, whose CHECK macro would replace Catch's.
#include <catch2/catch.hpp>

using namespace maskgit;
using maskgit::testing::invalid_argument_of;
using maskgit::testing::tiny_tokenizer_config;
using maskgit::testing::tiny_transformer_config;
namespace fs = std::filesystem;

namespace {

struct TinyModel {
  VQTokenizer tokenizer{nullptr};
  BidirectionalTransformer transformer{nullptr};
};

TinyModel tiny_model() {
  torch::manual_seed(3);
  TinyModel model;
  model.tokenizer = VQTokenizer(tiny_tokenizer_config());
  model.transformer = BidirectionalTransformer(tiny_transformer_config());
  {
    torch::NoGradGuard no_grad;
    model.tokenizer->quantizer->codebook.normal_();
  }
  model.tokenizer->eval();
  model.transformer->eval();
  return model;
}

// Images whose pixels are exact 8-bit values, as read from a PNG.
torch::Tensor byte_images(int64_t count, int64_t height, int64_t width) {
  return torch::randint(0, 256, {count, 1, height, width}).to(torch::kFloat) / 255.0f;
}

// Writes a picture [C, H, W] and returns its path.
std::string write_picture(const fs::path& dir, const std::string& name, const torch::Tensor& picture) {
  const std::string path = (dir / name).string();
  write_png(path, picture);
  return path;
}

}  // namespace

TEST_CASE("a token is regenerated when any pixel of its cell is", "[editing]") {
  torch::Tensor pixels = torch::zeros({8, 8}, torch::kBool);
  pixels[5][2] = true;  // cell (1, 0) for f = 4
  torch::Tensor expected = torch::zeros({2, 2}, torch::kBool);
  expected[1][0] = true;
  CHECK(torch::equal(pixel_mask_to_token_mask(pixels, 4), expected));

  // A size that is not a multiple of f: the last, partial cells count their real pixels.
  torch::Tensor odd = torch::zeros({9, 10}, torch::kBool);
  odd[8][9] = true;
  const torch::Tensor tokens = pixel_mask_to_token_mask(odd, 4);
  CHECK((tokens.sizes() == torch::IntArrayRef({3, 3})));
  CHECK(tokens[2][2].item<bool>());
  CHECK(tokens.sum().item<int64_t>() == 1);
  CHECK(pixel_mask_to_token_mask(torch::zeros({9, 10}, torch::kBool), 4).sum().item<int64_t>() == 0);
}

TEST_CASE("dilation grows the token mask by whole tokens, clipped at the grid", "[editing]") {
  torch::Tensor mask = torch::zeros({5, 6}, torch::kBool);
  mask[0][2] = true;
  const torch::Tensor grown = dilate_token_mask(mask, 1);
  torch::Tensor expected = torch::zeros({5, 6}, torch::kBool);
  expected.slice(0, 0, 2).slice(1, 1, 4).fill_(true);
  CHECK(torch::equal(grown, expected));
  CHECK(torch::equal(dilate_token_mask(mask, 0), mask));
  CHECK(dilate_token_mask(mask, 10).all().item<bool>());
}

TEST_CASE("box tokens with one token of dilation match the release's box rule", "[editing]") {
  // docs/editing.md §4: rows max(0, top/f - 1) .. min(h, top/f + height/f + 1), same for columns.
  const int64_t f = 4, size = 28, grid = 7;
  for (const PixelBox box : {PixelBox{8, 0, 12, 28}, PixelBox{0, 0, 4, 4}, PixelBox{12, 8, 8, 16},
                             PixelBox{24, 24, 4, 4}, PixelBox{4, 20, 20, 8}}) {
    const torch::Tensor ours =
        dilate_token_mask(pixel_mask_to_token_mask(box_pixel_mask(box, size, size), f), 1);
    torch::Tensor release = torch::zeros({grid, grid}, torch::kBool);
    const int64_t row0 = std::max<int64_t>(0, box.y / f - 1), row1 = std::min(grid, box.y / f + box.height / f + 1);
    const int64_t col0 = std::max<int64_t>(0, box.x / f - 1), col1 = std::min(grid, box.x / f + box.width / f + 1);
    release.slice(0, row0, row1).slice(1, col0, col1).fill_(true);
    INFO("box " << box.x << "," << box.y << "," << box.width << "," << box.height);
    CHECK(torch::equal(ours, release));
  }
}

TEST_CASE("boxes are parsed strictly and must lie inside the image", "[editing]") {
  const PixelBox box = parse_box("1,2,3,4", "--box");
  CHECK((box.x == 1 && box.y == 2 && box.width == 3 && box.height == 4));
  for (const char* bad : {"", "1,2,3", "1,2,3,4,5", "a,b,c,d", "1;2;3;4", "1,2,3,4x"})
    CHECK_THROWS_WITH(parse_box(bad, "--box"), Catch::StartsWith("--box: "));
  CHECK_THROWS_WITH(box_pixel_mask(PixelBox{20, 0, 10, 28}, 28, 28), Catch::Contains("not inside"));
  CHECK_THROWS_WITH(box_pixel_mask(PixelBox{-1, 0, 4, 4}, 28, 28), Catch::Contains("not inside"));
  CHECK_THROWS_WITH(box_pixel_mask(PixelBox{0, 0, 0, 4}, 28, 28), Catch::Contains("empty"));
  // The library names its own argument, never a flag (the tools map "box" to --box or --crop).
  const auto outside = invalid_argument_of([] { box_pixel_mask(PixelBox{0, 0, 40, 4}, 28, 28); });
  CHECK(outside.argument == "box");
  CHECK(outside.message == "the box 0,0,40,4 is not inside the 28x28 image");
  CHECK(outside.code == ExitCode::usage);
  CHECK(invalid_argument_of([] { require_box_inside(PixelBox{0, 0, 4, 0}, 28, 28); }).argument == "box");
  const torch::Tensor mask = box_pixel_mask(PixelBox{2, 1, 3, 2}, 6, 4);
  CHECK(mask.sum().item<int64_t>() == 6);
  CHECK(mask[1][2].item<bool>());
  CHECK(mask[2][4].item<bool>());
  CHECK_FALSE(mask[3][4].item<bool>());
}

TEST_CASE("mask pictures: white or opaque selects, threshold and invert, size checked", "[editing]") {
  const fs::path dir = maskgit::testing::fresh_temp_dir("editing-masks");
  torch::Tensor grey = torch::zeros({1, 4, 6});
  grey[0][0][0] = 1.0f;
  grey[0][1][1] = 0.6f;
  grey[0][2][2] = 0.3f;
  const std::string grey_path = write_picture(dir, "grey.png", grey);
  CHECK(read_pixel_mask(grey_path, 6, 4).selected.sum().item<int64_t>() == 2);
  MaskReadOptions low;
  low.threshold = 0.25;
  CHECK(read_pixel_mask(grey_path, 6, 4, low).selected.sum().item<int64_t>() == 3);
  MaskReadOptions inverted;
  inverted.invert = true;
  CHECK(read_pixel_mask(grey_path, 6, 4, inverted).selected.sum().item<int64_t>() == 24 - 2);

  // An alpha mask: black paint, opaque only where to regenerate.
  torch::Tensor rgba = torch::zeros({4, 4, 6});
  rgba[3][3][5] = 1.0f;
  const PixelMask alpha_mask = read_pixel_mask(write_picture(dir, "alpha.png", rgba), 6, 4);
  CHECK(alpha_mask.channel == "alpha");
  const torch::Tensor from_alpha = alpha_mask.selected;
  CHECK(from_alpha.sum().item<int64_t>() == 1);
  CHECK(from_alpha[3][5].item<bool>());
  // Fully opaque RGBA: the alpha says nothing, the colour decides.
  torch::Tensor opaque = torch::zeros({4, 4, 6});
  opaque[3].fill_(1.0f);
  opaque.slice(0, 0, 3).select(1, 0).fill_(1.0f);  // the top row is white
  CHECK(read_pixel_mask(write_picture(dir, "opaque.png", opaque), 6, 4).selected.sum().item<int64_t>() == 6);
  // One translucent pixel (alpha 250/255) in an opaque mask changes nothing: still the colour.
  opaque[3][2][2] = 250.0f / 255.0f;
  const PixelMask almost_opaque = read_pixel_mask(write_picture(dir, "almost-opaque.png", opaque), 6, 4);
  CHECK(almost_opaque.channel == "grey");
  CHECK(almost_opaque.selected.sum().item<int64_t>() == 6);
  // A half-transparent pixel makes the alpha decide.
  opaque[3][2][2] = 0.2f;
  CHECK(read_pixel_mask(write_picture(dir, "one-hole.png", opaque), 6, 4).selected.sum().item<int64_t>() == 23);

  CHECK_THROWS_WITH(read_pixel_mask(grey_path, 28, 28), grey_path + ": mask is 6x4, the image is 28x28");
  CHECK_THROWS_WITH(read_pixel_mask((dir / "missing.png").string(), 6, 4), Catch::Contains("missing.png"));
  fs::remove_all(dir);
}

TEST_CASE("the feathered weight is exact far from the region", "[editing]") {
  torch::Tensor tokens = torch::zeros({8, 8}, torch::kBool);
  tokens.slice(0, 3, 5).slice(1, 3, 5).fill_(true);  // pixels 12..19 with f = 4
  const torch::Tensor hard = feathered_weight(tokens, 4, 32, 32, 0);
  CHECK(hard.sum().item<float>() == 64.0f);
  CHECK(hard[12][12].item<float>() == 1.0f);
  CHECK(hard[11][12].item<float>() == 0.0f);

  // A wider region (pixels 12..31 of 40) so its middle is further than the kernel from both edges.
  torch::Tensor wide = torch::zeros({10, 10}, torch::kBool);
  wide.slice(0, 3, 8).slice(1, 3, 8).fill_(true);
  const double radius = 1.5;  // kernel cut at ceil(4.5) = 5 pixels
  const torch::Tensor soft = feathered_weight(wide, 4, 40, 40, radius);
  CHECK(soft.min().item<float>() == 0.0f);
  CHECK(soft.max().item<float>() == 1.0f);
  CHECK(soft[21][21].item<float>() == 1.0f);
  CHECK(soft[12][21].item<float>() > 0.3f);  // on the edge, partly blended
  CHECK(soft[12][21].item<float>() < 0.7f);
  CHECK(soft[10][21].item<float>() > 0.0f);  // just outside
  // Outside the region grown by 5 pixels everything is exactly 0.
  torch::Tensor near = torch::zeros({40, 40}, torch::kBool);
  near.slice(0, 12 - 5, 32 + 5).slice(1, 12 - 5, 32 + 5).fill_(true);
  CHECK(soft.masked_select(near.logical_not()).abs().max().item<float>() == 0.0f);
  CHECK(soft.masked_select(near).min().item<float>() > 0.0f);

  CHECK(default_feather_radius(256, 256) == 15.0);
  CHECK(default_feather_radius(28, 28) == 0.0);
  CHECK(default_feather_radius(512, 64) == 3.0);
}

TEST_CASE("the token mask picture is a usable mask of the image's size", "[editing]") {
  torch::Tensor tokens = torch::zeros({2, 3}, torch::kBool);
  tokens[1][2] = true;
  const torch::Tensor picture = token_mask_picture(tokens, 4, 7, 10);
  CHECK((picture.sizes() == torch::IntArrayRef({1, 7, 10})));
  CHECK(picture.sum().item<float>() == 3.0f * 2.0f);  // rows 4..6, columns 8..9
  const fs::path dir = maskgit::testing::fresh_temp_dir("editing-picture");
  const std::string path = write_picture(dir, "saved.png", picture);
  CHECK(torch::equal(pixel_mask_to_token_mask(read_pixel_mask(path, 10, 7).selected, 4), tokens));
  fs::remove_all(dir);
}

TEST_CASE("outpainting margins round up to tokens and the canvas keeps the image", "[editing]") {
  const CanvasPlacement placement = placement_from_margins(28, 20, Margins{1, 5, 0, 4}, 4);
  CHECK(placement.offset_x == 4);
  CHECK(placement.offset_y == 0);
  CHECK(placement.canvas_width == 4 + 28 + 8);
  CHECK(placement.canvas_height == 24);
  CHECK_THROWS_WITH(placement_from_margins(28, 28, Margins{}, 4), Catch::Contains("nothing to outpaint"));
  CHECK(invalid_argument_of([] { placement_from_margins(28, 28, Margins{}, 4); }).argument == "margins");
  const auto left = invalid_argument_of([] { placement_from_margins(28, 28, Margins{-1, 0, 0, 0}, 4); });
  CHECK(left.argument == "left");
  CHECK(left.message == "-1 is out of range (0 to 16384 pixels)");
  CHECK(invalid_argument_of([] { placement_from_margins(28, 28, Margins{0, 0, 0, 16384}, 4); }).argument == "margins");
  const auto offset = invalid_argument_of([] { placement_on_canvas(28, 28, 40, 28, 20, 0); });
  CHECK(offset.argument == "offset");
  CHECK(offset.message == "the 28x28 image at 20,0 does not fit inside the 40x28 canvas");
  CHECK(invalid_argument_of([] { placement_on_canvas(28, 28, 28, 28, 0, 0); }).argument == "canvas");
  CHECK(invalid_argument_of([] { placement_on_canvas(28, 28, 0, 28, 0, 0); }).argument == "canvas");

  int64_t width = 0, height = 0, x = -1, y = -1;
  parse_size("56x28", "--canvas", width, height);
  CHECK((width == 56 && height == 28));
  parse_point("4,8", "--offset", x, y);
  CHECK((x == 4 && y == 8));
  CHECK_THROWS_WITH(parse_size("56*28", "--canvas", width, height), Catch::StartsWith("--canvas"));
  CHECK_THROWS_WITH(parse_point("4", "--offset", x, y), Catch::StartsWith("--offset"));

  const torch::Tensor images = byte_images(2, 3, 4);
  const PlacedImages placed = place_on_canvas(images, CanvasPlacement{7, 5, 2, 1});
  CHECK((placed.pixels.sizes() == torch::IntArrayRef({2, 1, 5, 7})));
  CHECK(torch::equal(placed.pixels.slice(2, 1, 4).slice(3, 2, 6), images));
  CHECK(placed.known.sum().item<int64_t>() == 12);
  CHECK(placed.known[1][2].item<bool>());
  CHECK_FALSE(placed.known[0][2].item<bool>());
  // The area outside repeats the image's edge.
  CHECK(placed.pixels[1][0][0][0].item<float>() == images[1][0][0][0].item<float>());
  CHECK(placed.pixels[0][0][4][6].item<float>() == images[0][0][2][3].item<float>());
}

TEST_CASE("windows cover a larger grid with overlap, most-known first", "[editing]") {
  CHECK((window_starts(7, 7) == std::vector<int64_t>{0}));
  CHECK((window_starts(14, 7) == std::vector<int64_t>{0, 3, 6, 7}));
  CHECK((window_starts(9, 4) == std::vector<int64_t>{0, 2, 4, 5}));

  // A 7×14 grid whose right half is unknown (outpainting to the right).
  torch::Tensor unknown = torch::zeros({7, 14}, torch::kBool);
  unknown.slice(1, 7, 14).fill_(true);
  const std::vector<TokenWindow> windows = plan_windows(unknown, 7, 7);
  REQUIRE(windows.size() == 3);
  CHECK(windows[0].left == 3);  // 4 known columns of 7
  CHECK(windows[1].left == 6);
  CHECK(windows[2].left == 7);
  torch::Tensor covered = torch::zeros_like(unknown);
  for (const TokenWindow& w : windows) covered.slice(0, w.top, w.top + 7).slice(1, w.left, w.left + 7).fill_(true);
  CHECK(covered.logical_or(unknown.logical_not()).all().item<bool>());

  CHECK(plan_windows(torch::zeros({7, 7}, torch::kBool), 7, 7).empty());
  CHECK(plan_windows(torch::ones({7, 7}, torch::kBool), 7, 7).size() == 1);
}

TEST_CASE("completing grids keeps known tokens and a full mask is plain generation", "[editing]") {
  TinyModel model = tiny_model();
  const TransformerConfig& config = model.transformer->config();
  const int64_t mask = config.mask_token();
  DecodeOptions options;
  options.steps = 4;

  // A full mask with the same seeds and classes decodes exactly as generation does.
  const torch::Tensor all_masked = torch::full({2, 3, 3}, mask, torch::kLong);
  const torch::Tensor completed =
      complete_token_grids(model.transformer, all_masked, {0, 2}, {11, 12}, options, torch::kCPU);
  const torch::Tensor generated = generate_tokens(model.transformer, {0, 2}, {11, 12}, options, torch::kCPU);
  CHECK(torch::equal(completed.view({2, -1}), generated));

  // Windowed: a 3×7 grid with only its left 3 columns known.
  torch::Tensor ids = torch::randint(0, 16, {2, 3, 7}, torch::kLong);
  ids.slice(2, 3, 7).fill_(mask);
  const torch::Tensor wide = complete_token_grids(model.transformer, ids, {-1, 1}, {5, 6}, options, torch::kCPU);
  CHECK(torch::equal(wide.slice(2, 0, 3), ids.slice(2, 0, 3)));
  CHECK((wide >= 0).all().item<bool>());
  CHECK((wide < 16).all().item<bool>());
  // Each grid depends only on its own seed and class, not on its batch.
  const torch::Tensor alone =
      complete_token_grids(model.transformer, ids.slice(0, 1, 2), {1}, {6}, options, torch::kCPU);
  CHECK(torch::equal(alone[0], wide[1]));

  CHECK_THROWS_WITH(complete_token_grids(model.transformer, torch::full({1, 2, 3}, mask, torch::kLong), {0}, {0},
                                         options, torch::kCPU),
                    Catch::Contains("smaller than the model's"));
}

TEST_CASE("edits change only the region: pixels away from it are the original's exactly", "[editing]") {
  TinyModel model = tiny_model();
  const fs::path dir = maskgit::testing::fresh_temp_dir("editing-exact");
  DecodeOptions options;
  options.steps = 3;
  for (const double feather : {0.0, 1.0}) {
    EditSetup setup;
    setup.images = byte_images(2, 12, 10);  // 6×5 tokens: windowed decoding on a 3×3 model
    setup.regenerate = torch::zeros({12, 10}, torch::kBool);
    setup.regenerate.slice(0, 5, 7).slice(1, 1, 3).fill_(true);  // token rows 2..3, column 0..1
    setup.feather_radius = feather;
    const EditPlan plan = plan_edit(setup, 2, model.transformer->config());
    CHECK(plan.regenerated_tokens == 4);
    CHECK(plan.tokens == 30);
    CHECK(plan.windows >= 1);
    int64_t outputs = 0;
    run_edits(model.tokenizer, model.transformer, setup, plan, {-1, 0}, 2, 7, options, 3, torch::kCPU,
              [&](int64_t begin, const torch::Tensor& ids, const torch::Tensor& images) {
      for (int64_t i = 0; i < images.size(0); ++i) {
        const torch::Tensor original = setup.images[(begin + i) / 2];
        const torch::Tensor untouched = (plan.weight == 0).expand_as(original);
        CHECK(torch::equal(images[i].masked_select(untouched), original.masked_select(untouched)));
        CHECK(untouched.logical_not().sum().item<int64_t>() > 0);
        // ... and stay so through the 8-bit PNG the tools write.
        const std::string path = (dir / "edited.png").string();
        write_png(path, images[i]);
        const torch::Tensor reread = read_image(path);
        CHECK(torch::equal(reread.masked_select(untouched), original.masked_select(untouched)));
        CHECK((ids[i] != model.transformer->config().mask_token()).all().item<bool>());
      }
      outputs += images.size(0);
    });
    CHECK(outputs == 4);
    if (feather > 0) CHECK((plan.weight > 0).sum().item<int64_t>() > 4 * 4);
    else CHECK((plan.weight > 0).sum().item<int64_t>() == 4 * 4);
  }
  fs::remove_all(dir);
}

TEST_CASE("outpainting regenerates everything outside the image and nothing inside", "[editing]") {
  TinyModel model = tiny_model();
  const torch::Tensor images = byte_images(1, 6, 6);
  const PlacedImages placed = place_on_canvas(images, placement_from_margins(6, 6, Margins{0, 3, 0, 0}, 2));
  EditSetup setup;
  setup.images = placed.pixels;
  setup.known_pixels = placed.known;
  setup.regenerate = placed.known.logical_not();
  const EditPlan plan = plan_edit(setup, 2, model.transformer->config());
  CHECK(plan.regenerated_tokens == 3 * 2);  // 3 rows × the 2 new token columns (6..9 px)
  CHECK(plan.weight.slice(1, 6, 10).eq(1).all().item<bool>());
  CHECK(plan.weight.slice(1, 0, 6).eq(0).all().item<bool>());
  DecodeOptions options;
  options.steps = 2;
  run_edits(model.tokenizer, model.transformer, setup, plan, {-1}, 1, 0, options, 8, torch::kCPU,
            [&](int64_t, const torch::Tensor&, const torch::Tensor& out) {
    CHECK((out.sizes() == torch::IntArrayRef({1, 1, 6, 10})));
    CHECK(torch::equal(out.slice(3, 0, 6), images));
  });
}

TEST_CASE("outpainting keeps the image's pixels exactly, off the token grid and with a feather", "[editing]") {
  TinyModel model = tiny_model();
  const torch::Tensor images = byte_images(1, 6, 6);
  // Offset 1,1 on a 9×9 canvas: the image's border cells are partly known and regenerated.
  const PlacedImages placed = place_on_canvas(images, placement_on_canvas(6, 6, 9, 9, 1, 1));
  EditSetup setup;
  setup.images = placed.pixels;
  setup.known_pixels = placed.known;
  setup.regenerate = placed.known.logical_not();
  setup.feather_radius = 2.0;
  const EditPlan plan = plan_edit(setup, 2, model.transformer->config());
  CHECK(torch::equal(plan.weight.eq(0), placed.known));
  DecodeOptions options;
  options.steps = 2;
  run_edits(model.tokenizer, model.transformer, setup, plan, {-1}, 1, 3, options, 8, torch::kCPU,
            [&](int64_t, const torch::Tensor&, const torch::Tensor& out) {
    CHECK(torch::equal(out.slice(2, 1, 7).slice(3, 1, 7), images));
    const torch::Tensor reread = [&] {
      const fs::path dir = maskgit::testing::fresh_temp_dir("outpaint-exact");
      write_png((dir / "out.png").string(), out[0]);
      torch::Tensor pixels = read_image((dir / "out.png").string());
      fs::remove_all(dir);
      return pixels;
    }();
    CHECK(torch::equal(reread.slice(1, 1, 7).slice(2, 1, 7), images[0]));
  });
}

TEST_CASE("images smaller than the model's grid are refused", "[editing]") {
  TinyModel model = tiny_model();
  EditSetup setup;
  setup.images = byte_images(1, 4, 8);
  setup.regenerate = torch::ones({4, 8}, torch::kBool);
  try {
    plan_edit(setup, 2, model.transformer->config());
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::usage);
    CHECK_THAT(e.what(), Catch::Contains("8x4 pixels") && Catch::Contains("at least 6x6"));
  }
}
