// The tools' shared layer on models of the release's shape: decoding defaults from a model
// directory (config.json "sampling") and their precedence under the sampler flags, flags a model
// cannot honour, fitting inputs of other sizes to the model's (--fit), the release's feather at
// 256 and 512, and windowed decoding with the release's 16×16 and 32×32 token windows.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <tuple>

#include "cli/argument_flags.h"
#include "cli/common.h"
#include "cli/input_options.h"
#include "cli/sampler_options.h"
#include "common/error.h"
#include "editing/canvas.h"
#include "editing/region.h"
#include "editing/windowed.h"
#include "io/image.h"
#include "model/model_dir.h"
#include "transformer/transformer.h"

#include "test_support.h"
#include "tiny_models.h"

// Catch2 comes last: LibTorch pulls in glog, whose CHECK macro would replace Catch's.
#include <catch2/catch.hpp>

using namespace maskgit;
namespace fs = std::filesystem;

namespace {

// A model directory holding only config.json (with a tokenizer and a transformer section), with
// `sampling` (a JSON text) as its "sampling" section when not empty.
std::string model_with_sampling(const fs::path& dir, const std::string& sampling) {
  ModelConfig config;
  config.directory = dir.string();
  config.image_width = config.image_height = 16;
  config.class_names = {"a", "b", "c"};
  config.tokenizer = maskgit::testing::tiny_tokenizer_config();  // factor 2
  config.transformer = maskgit::testing::tiny_transformer_config();
  config.transformer->grid_height = config.transformer->grid_width = 8;
  write_model_config(config);
  if (!sampling.empty()) {
    std::ifstream in(config.path_of(kModelConfigFile));
    Json root = parse_json(std::string(std::istreambuf_iterator<char>(in), {}));
    in.close();
    root["sampling"] = parse_json(sampling);
    std::ofstream(config.path_of(kModelConfigFile)) << dump_json(root, 2);
  }
  return config.directory;
}

// Parses `args` into an app with the sampler flags (for the tool's `use`), applies `config`'s
// defaults and returns the decoding options.
DecodeOptions parse_sampler(const std::vector<std::string>& args, const ModelConfig& config, SamplingUse use,
                            SamplerCliOptions* out = nullptr) {
  CLI::App app{"test"};
  ToolOptions cli(app, use == SamplingUse::editing ? Tool::edit : Tool::sample);
  SamplerCliOptions options;
  options.use = use;
  if (use == SamplingUse::editing) {
    options.steps = 12;
    options.start_step = 2;
  }
  add_sampler_options(cli, options);
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 parses a reversed vector
  app.parse(reversed);
  const DecodeOptions decode = decode_options_for_model(options, config);
  if (out) *out = options;
  return decode;
}

}  // namespace

TEST_CASE("a model's sampling section is parsed, bounded, written and read back", "[tools][model]") {
  const fs::path dir = maskgit::testing::fresh_temp_dir("tools-sampling");
  const std::string full =
      R"({"steps": 3, "schedule": "linear", "choice_temperature": 2.5, "edit_steps": 6, "edit_start_step": 1})";
  ModelConfig config = read_model_config(model_with_sampling(dir / "ok", full));
  REQUIRE(config.sampling);
  CHECK(config.sampling->steps == 3);
  CHECK(config.sampling->schedule == "linear");
  CHECK(config.sampling->choice_temperature == 2.5);
  CHECK(config.sampling->edit_steps == 6);
  CHECK(config.sampling->edit_start_step == 1);
  CHECK_FALSE(read_model_config(model_with_sampling(dir / "none", "")).sampling);

  // Written and read back; removed again when unset.
  config.sampling = release_sampling_defaults(512);
  write_model_config(config);
  ModelConfig again = read_model_config(config.directory);
  REQUIRE(again.sampling);
  CHECK(again.sampling->to_json() == release_sampling_defaults(512).to_json());
  again.sampling.reset();
  write_model_config(again);
  CHECK_FALSE(read_model_config(config.directory).sampling);

  // Each bad field: bad input naming config.json and the field.
  const std::pair<std::string, std::string> bad[] = {
      {R"({"steps": 0, "schedule": "cosine", "choice_temperature": 4.5, "edit_steps": 12, "edit_start_step": 2})",
       "sampling.steps"},
      {R"({"steps": 1025, "schedule": "cosine", "choice_temperature": 4.5, "edit_steps": 12, "edit_start_step": 2})",
       "sampling.steps"},
      {R"({"steps": 8.5, "schedule": "cosine", "choice_temperature": 4.5, "edit_steps": 12, "edit_start_step": 2})",
       "sampling.steps"},
      {R"({"steps": 8, "schedule": "wiggly", "choice_temperature": 4.5, "edit_steps": 12, "edit_start_step": 2})",
       "sampling.schedule"},
      {R"({"steps": 8, "schedule": 3, "choice_temperature": 4.5, "edit_steps": 12, "edit_start_step": 2})",
       "sampling.schedule"},
      {R"({"steps": 8, "schedule": "cosine", "choice_temperature": -1, "edit_steps": 12, "edit_start_step": 2})",
       "sampling.choice_temperature"},
      {R"({"steps": 8, "schedule": "cosine", "choice_temperature": 1e300, "edit_steps": 12, "edit_start_step": 2})",
       "sampling.choice_temperature"},
      {R"({"steps": 8, "schedule": "cosine", "choice_temperature": 4.5, "edit_steps": 2, "edit_start_step": 2})",
       "sampling.edit_start_step"},
      {R"({"steps": 8, "schedule": "cosine", "choice_temperature": 4.5, "edit_steps": 12, "edit_start_step": -1})",
       "sampling.edit_start_step"},
      {R"({"steps": 8, "schedule": "cosine", "choice_temperature": 4.5, "edit_steps": 12})", "sampling.edit_start_step"},
      {R"({"steps": 8, "schedule": "cosine", "choice_temperature": 4.5, "edit_steps": 12, "edit_start_step": 2,
           "step": 4})", "sampling.step: unknown field"},
      {R"([8])", "sampling: expected an object"},
  };
  int index = 0;
  for (const auto& [section, field] : bad) {
    const std::string model = model_with_sampling(dir / ("bad" + std::to_string(index++)), section);
    try {
      read_model_config(model);
      FAIL("accepted: " << section);
    } catch (const Error& e) {
      CHECK(e.code() == ExitCode::bad_input);
      CHECK_THAT(e.what(), Catch::Contains("config.json") && Catch::Contains(field));
    }
  }
  fs::remove_all(dir);
}

TEST_CASE("the release's decoding defaults: 8 steps at 256, 12 at 512, edits 12 from step 2", "[tools]") {
  for (const int64_t size : {256, 512}) {
    const SamplingDefaults defaults = release_sampling_defaults(size);
    CHECK(defaults.steps == (size == 256 ? 8 : 12));
    CHECK(defaults.schedule == "cosine");
    CHECK(defaults.choice_temperature == 4.5);
    CHECK(defaults.edit_steps == 12);
    CHECK(defaults.edit_start_step == 2);
    CHECK_NOTHROW(defaults.validate());
  }
}

TEST_CASE("sampler flags the user passes win over the model's defaults, which win over the tool's", "[tools]") {
  const fs::path dir = maskgit::testing::fresh_temp_dir("tools-precedence");
  const ModelConfig plain = read_model_config(model_with_sampling(dir / "plain", ""));
  const ModelConfig model = read_model_config(model_with_sampling(
      dir / "model",
      R"({"steps": 3, "schedule": "linear", "choice_temperature": 2.5, "edit_steps": 6, "edit_start_step": 1})"));

  // Without a section: the tools' own defaults.
  DecodeOptions decode = parse_sampler({}, plain, SamplingUse::generation);
  CHECK((decode.steps == 8 && decode.start_step == 0 && decode.schedule.name() == "cosine"));
  CHECK(decode.choice_temperature == 4.5);
  decode = parse_sampler({}, plain, SamplingUse::editing);
  CHECK((decode.steps == 12 && decode.start_step == 2));

  // The model's.
  decode = parse_sampler({}, model, SamplingUse::generation);
  CHECK((decode.steps == 3 && decode.start_step == 0 && decode.schedule.name() == "linear"));
  CHECK(decode.choice_temperature == 2.5);
  decode = parse_sampler({}, model, SamplingUse::editing);
  CHECK((decode.steps == 6 && decode.start_step == 1 && decode.schedule.name() == "linear"));

  // Flags win, each on its own; the model's defaults stay for the others. A flag equal to the
  // tool's default still wins.
  decode = parse_sampler({"--steps", "8"}, model, SamplingUse::generation);
  CHECK((decode.steps == 8 && decode.schedule.name() == "linear" && decode.choice_temperature == 2.5));
  decode = parse_sampler({"--schedule", "cosine", "--choice-temperature", "4.5"}, model, SamplingUse::generation);
  CHECK((decode.steps == 3 && decode.schedule.name() == "cosine" && decode.choice_temperature == 4.5));
  decode = parse_sampler({"--start-step", "0"}, model, SamplingUse::editing);
  CHECK((decode.steps == 6 && decode.start_step == 0));
  decode = parse_sampler({"--steps", "9"}, model, SamplingUse::editing);
  CHECK((decode.steps == 9 && decode.start_step == 1));

  // A flag that collides with a default says where the default came from.
  CHECK_THROWS_WITH(parse_sampler({"--steps", "1"}, model, SamplingUse::editing),
                    Catch::StartsWith("--steps: 1 must be above the first step 1") &&
                        Catch::Contains("sampling.edit_start_step"));
  CHECK_THROWS_WITH(parse_sampler({"--start-step", "6"}, model, SamplingUse::editing),
                    Catch::StartsWith("--start-step: 6 must be below the 6 steps of the model's sampling.edit_steps"));
  CHECK_THROWS_WITH(parse_sampler({"--steps", "2"}, plain, SamplingUse::editing),
                    Catch::StartsWith("--steps: 2 must be above the first step 2 (the tool's default"));
  CHECK_THROWS_WITH(parse_sampler({"--steps", "2", "--start-step", "2"}, model, SamplingUse::editing),
                    Catch::StartsWith("--start-step: 2 must be below --steps 2"));
  fs::remove_all(dir);
}

TEST_CASE("a model's temperature and guidance defaults, --release-defaults and --show-defaults", "[tools][model]") {
  const fs::path dir = maskgit::testing::fresh_temp_dir("tools-guidance-defaults");
  const std::string base = R"("steps": 10, "schedule": "linear", "choice_temperature": 3, "edit_steps": 6, "edit_start_step": 1)";
  const ModelConfig model = read_model_config(model_with_sampling(
      dir / "model", "{" + base +
                         R"(, "temperature": 0.9, "guidance_scale": 1.5, "edit_guidance_scale": 3, "guidance_schedule": "linear"})"));
  REQUIRE(model.sampling);
  CHECK(model.sampling->guidance_schedule == "linear");
  CHECK(model.sampling->edit_guidance_schedule == "constant");
  CHECK(model.sampling->temperature == 0.9);
  CHECK(model.sampling->guidance_scale == 1.5);
  CHECK(model.sampling->edit_guidance_scale == 3);
  // Optional: a section without them (written before they existed) means 1.
  const ModelConfig older = read_model_config(model_with_sampling(dir / "older", "{" + base + "}"));
  CHECK((older.sampling->temperature == 1 && older.sampling->guidance_scale == 1));
  CHECK((older.sampling->guidance_schedule == "constant" && older.sampling->edit_guidance_schedule == "constant"));

  // The model's values for the flags not given; the edit's guidance for maskgit-edit.
  DecodeOptions decode = parse_sampler({}, model, SamplingUse::generation);
  CHECK((decode.temperature == 0.9 && decode.guidance_scale == 1.5 && decode.steps == 10));
  CHECK(decode.guidance_schedule == GuidanceSchedule::linear);
  decode = parse_sampler({}, model, SamplingUse::editing);
  CHECK((decode.temperature == 0.9 && decode.guidance_scale == 3 && decode.steps == 6));
  CHECK(decode.guidance_schedule == GuidanceSchedule::constant);  // edit_guidance_schedule's
  decode = parse_sampler({"--cfg-schedule", "linear"}, model, SamplingUse::editing);
  CHECK(decode.guidance_schedule == GuidanceSchedule::linear);
  decode = parse_sampler({"--cfg-schedule", "constant"}, model, SamplingUse::generation);
  CHECK(decode.guidance_schedule == GuidanceSchedule::constant);
  decode = parse_sampler({"--temperature", "1", "--cfg-scale", "1"}, model, SamplingUse::generation);
  CHECK((decode.temperature == 1 && decode.guidance_scale == 1 && decode.steps == 10));
  // --release-defaults: the tool's own (the release's) for every flag not given.
  SamplerCliOptions resolved;
  decode = parse_sampler({"--release-defaults"}, model, SamplingUse::generation, &resolved);
  CHECK((decode.steps == 8 && decode.schedule.name() == "cosine" && decode.choice_temperature == 4.5));
  CHECK((decode.temperature == 1 && decode.guidance_scale == 1));
  CHECK(decode.guidance_schedule == GuidanceSchedule::constant);
  CHECK(resolved.steps_origin == "the tool's default");
  decode = parse_sampler({"--release-defaults", "--steps", "5"}, model, SamplingUse::editing, &resolved);
  CHECK((decode.steps == 5 && decode.start_step == 2 && decode.guidance_scale == 1));
  CHECK(resolved.steps_origin == "the flag");
  // Where each value came from, as --show-defaults prints it.
  parse_sampler({"--show-defaults", "--top-k", "3", "--schedule", "cosine"}, model, SamplingUse::generation, &resolved);
  CHECK(resolved.show_defaults);
  CHECK(resolved.temperature_origin == "the model's sampling.temperature");
  CHECK(resolved.cfg_scale_origin == "the model's sampling.guidance_scale");
  CHECK(resolved.cfg_schedule_origin == "the model's sampling.guidance_schedule");
  CHECK(resolved.schedule_origin == "the flag");
  CHECK(resolved.start_step_origin == "the tool's default");  // generation starts at step 0
  parse_sampler({}, model, SamplingUse::editing, &resolved);
  CHECK(resolved.steps_origin == "the model's sampling.edit_steps");
  CHECK(resolved.start_step_origin == "the model's sampling.edit_start_step");
  CHECK(resolved.cfg_scale_origin == "the model's sampling.edit_guidance_scale");
  CHECK(resolved.cfg_schedule_origin ==
        "the tool's default (the model's sampling section has no edit_guidance_schedule)");
  // An optional field the model leaves out is named as absent, not as a value it recommends.
  parse_sampler({}, older, SamplingUse::generation, &resolved);
  CHECK(resolved.temperature_origin == "the tool's default (the model's sampling section has no temperature)");
  CHECK(resolved.cfg_scale_origin == "the tool's default (the model's sampling section has no guidance_scale)");
  // Written at 1 by hand: the model's value.
  const ModelConfig explicit_one =
      read_model_config(model_with_sampling(dir / "explicit", "{" + base + R"(, "temperature": 1})"));
  parse_sampler({}, explicit_one, SamplingUse::generation, &resolved);
  CHECK(resolved.temperature_origin == "the model's sampling.temperature");
  // A config built in code (no file's section behind it): every field is the model's.
  ModelConfig in_code = model;
  in_code.raw = Json();
  parse_sampler({}, in_code, SamplingUse::generation, &resolved);
  CHECK(resolved.temperature_origin == "the model's sampling.temperature");
  CHECK(resolved.cfg_scale_origin == "the model's sampling.guidance_scale");
  CHECK(resolved.choice_temperature_origin == "the model's sampling.choice_temperature");

  // Out of range, or guidance on a model without a "no class" token: bad input naming the field.
  const std::pair<std::string, std::string> bad[] = {
      {"{" + base + R"(, "temperature": 0})", "sampling.temperature"},
      {"{" + base + R"(, "temperature": "hot"})", "sampling.temperature"},
      {"{" + base + R"(, "guidance_scale": 1e9})", "sampling.guidance_scale"},
      {"{" + base + R"(, "edit_guidance_scale": -1e9})", "sampling.edit_guidance_scale"},
      {"{" + base + R"(, "guidance_schedule": "cosine"})", "sampling.guidance_schedule"},
      {"{" + base + R"(, "edit_guidance_schedule": 1})", "sampling.edit_guidance_schedule"},
  };
  int index = 0;
  for (const auto& [section, field] : bad) {
    try {
      read_model_config(model_with_sampling(dir / ("bad" + std::to_string(index++)), section));
      FAIL("accepted: " << section);
    } catch (const Error& e) {
      CHECK(e.code() == ExitCode::bad_input);
      CHECK_THAT(e.what(), Catch::Contains("config.json") && Catch::Contains(field));
    }
  }
  {
    ModelConfig plain = read_model_config(model_with_sampling(dir / "no-class", "{" + base + R"(, "guidance_scale": 2})"));
    plain.transformer->no_class_token = false;
    write_model_config(plain);
    CHECK_THROWS_WITH(read_model_config(plain.directory),
                      Catch::Contains("config.json") && Catch::Contains("guidance needs a transformer"));
  }
  fs::remove_all(dir);
}

TEST_CASE("guidance on a model without a \"no class\" token is refused, naming --cfg-scale", "[tools]") {
  const fs::path dir = maskgit::testing::fresh_temp_dir("tools-guidance");
  ModelConfig config = read_model_config(model_with_sampling(dir, ""));
  config.transformer->no_class_token = false;
  CHECK_NOTHROW(parse_sampler({}, config, SamplingUse::generation));
  CHECK_NOTHROW(parse_sampler({"--cfg-scale", "1"}, config, SamplingUse::generation));
  try {
    parse_sampler({"--cfg-scale", "2"}, config, SamplingUse::generation);
    FAIL("guidance accepted");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::usage);
    CHECK_THAT(e.what(), Catch::StartsWith("--cfg-scale: 2 ") && Catch::Contains("\"no class\" token"));
  }
  config.transformer->no_class_token = true;
  CHECK_NOTHROW(parse_sampler({"--cfg-scale", "2"}, config, SamplingUse::generation));
  fs::remove_all(dir);
}

TEST_CASE("fitting: centred crops to the model's aspect ratio, resizes, identity for none", "[tools][fit]") {
  // none: as it is.
  FitGeometry g = fit_geometry(300, 200, 256, 256, FitMode::none);
  CHECK((g.crop_width == 300 && g.crop_height == 200 && g.width == 300 && g.height == 200));
  CHECK(g.is_identity(300, 200));
  // crop: wider than square → the centred 200×200, then 256×256.
  g = fit_geometry(300, 200, 256, 256, FitMode::crop);
  CHECK((g.crop_x == 50 && g.crop_y == 0 && g.crop_width == 200 && g.crop_height == 200));
  CHECK((g.width == 256 && g.height == 256));
  // taller, odd margin: the extra pixel goes to the bottom.
  g = fit_geometry(64, 101, 32, 32, FitMode::crop);
  CHECK((g.crop_x == 0 && g.crop_y == 18 && g.crop_width == 64 && g.crop_height == 64));
  // a non-square target keeps its aspect ratio: 2:1 from 100×100 is 100×50.
  g = fit_geometry(100, 100, 64, 32, FitMode::crop);
  CHECK((g.crop_y == 25 && g.crop_width == 100 && g.crop_height == 50));
  // resize: the whole image.
  g = fit_geometry(300, 200, 256, 256, FitMode::resize);
  CHECK((g.crop_x == 0 && g.crop_width == 300 && g.crop_height == 200 && g.width == 256));
  // Already the model's size: nothing changes whatever the mode.
  for (const FitMode mode : {FitMode::none, FitMode::crop, FitMode::resize})
    CHECK(fit_geometry(256, 256, 256, 256, mode).is_identity(256, 256));
  CHECK(parse_fit_mode("crop") == FitMode::crop);
  CHECK_THROWS(parse_fit_mode("squash"));

  torch::manual_seed(4);
  const torch::Tensor images = torch::randint(0, 256, {2, 3, 40, 60}).to(torch::kFloat) / 255.0f;
  CHECK(fit_images(images, fit_geometry(60, 40, 60, 40, FitMode::crop)).equal(images));
  const torch::Tensor cropped = fit_images(images, fit_geometry(60, 40, 40, 40, FitMode::crop));
  CHECK(cropped.equal(images.slice(3, 10, 50)));  // a crop alone copies pixels exactly
  const torch::Tensor shrunk = fit_images(images, fit_geometry(60, 40, 16, 16, FitMode::crop));
  CHECK((shrunk.sizes() == torch::IntArrayRef({2, 3, 16, 16})));
  CHECK(shrunk.min().item<float>() >= 0.0f);
  CHECK(shrunk.max().item<float>() <= 1.0f);
  // A flat image stays flat when resized up or down (no ringing, no border effects).
  const torch::Tensor flat = torch::full({3, 28, 28}, 0.25f);
  for (const int64_t side : {16, 64})
    CHECK(fit_images(flat, fit_geometry(28, 28, side, side, FitMode::resize)).sub(0.25f).abs().max().item<float>() <
          1e-6f);
}

TEST_CASE("fitted masks follow their image and never under-cover it", "[tools][fit]") {
  // One selected pixel, through shrinking and enlarging geometries: the fitted pixels that cover
  // it are selected, nothing far from it is.
  for (const auto& [mode, target] : {std::pair{FitMode::crop, int64_t{16}}, std::pair{FitMode::resize, int64_t{16}},
                                     std::pair{FitMode::crop, int64_t{256}}, std::pair{FitMode::resize, int64_t{100}}}) {
    torch::Tensor mask = torch::zeros({40, 60}, torch::kBool);
    mask[13][29] = true;
    const FitGeometry g = fit_geometry(60, 40, target, target, mode);
    const torch::Tensor fitted = fit_pixel_mask(mask, g);
    REQUIRE((fitted.sizes() == torch::IntArrayRef({target, target})));
    // The selected pixel's area in fitted pixels: [(p - crop)·size/crop_size, (p + 1 - crop)·size/crop_size).
    // Exact integer floor and ceiling.
    const int64_t y0 = (13 - g.crop_y) * g.height / g.crop_height;
    const int64_t y1 = ((14 - g.crop_y) * g.height + g.crop_height - 1) / g.crop_height;
    const int64_t x0 = (29 - g.crop_x) * g.width / g.crop_width;
    const int64_t x1 = ((30 - g.crop_x) * g.width + g.crop_width - 1) / g.crop_width;
    CHECK(fitted.slice(0, y0, y1).slice(1, x0, x1).all().item<bool>());
    CHECK(fitted.sum().item<int64_t>() == (y1 - y0) * (x1 - x0));
  }
  // Full and empty masks stay so; a mask outside the crop disappears.
  const FitGeometry crop = fit_geometry(60, 40, 32, 32, FitMode::crop);
  CHECK(fit_pixel_mask(torch::ones({40, 60}, torch::kBool), crop).all().item<bool>());
  CHECK_FALSE(fit_pixel_mask(torch::zeros({40, 60}, torch::kBool), crop).any().item<bool>());
  torch::Tensor left = torch::zeros({40, 60}, torch::kBool);
  left.slice(1, 0, 10).fill_(true);  // the crop keeps columns 10..49
  CHECK_FALSE(fit_pixel_mask(left, crop).any().item<bool>());
  // The identity returns the mask itself.
  CHECK(fit_pixel_mask(left, fit_geometry(60, 40, 32, 32, FitMode::none)).equal(left));
}

TEST_CASE("inputs of other sizes: one size, or any size fitted one by one", "[tools][fit]") {
  const fs::path dir = maskgit::testing::fresh_temp_dir("tools-fit-inputs");
  write_png((dir / "wide.png").string(), torch::rand({3, 20, 40}));
  write_png((dir / "small.png").string(), torch::rand({1, 8, 8}));
  InputOptions inputs;
  inputs.files = {(dir / "wide.png").string(), (dir / "small.png").string()};
  inputs.fit = "crop";
  FittedInputs fitted = load_fitted_inputs(inputs, 3, 16, 16, /*one_size=*/false);
  CHECK((fitted.data.images.sizes() == torch::IntArrayRef({2, 3, 16, 16})));
  CHECK((fitted.input_width == 40 && fitted.input_height == 20));
  CHECK((fitted.geometry.crop_x == 10 && fitted.geometry.crop_width == 20));
  // One size required (the editing tools: one mask or box for all), or with --fit none.
  CHECK_THROWS_WITH(load_fitted_inputs(inputs, 3, 16, 16, /*one_size=*/true),
                    Catch::Contains("small.png") && Catch::Contains("expected 40x20"));
  inputs.fit = "none";
  CHECK_THROWS_WITH(load_fitted_inputs(inputs, 3, 16, 16, /*one_size=*/false), Catch::Contains("small.png"));
  inputs.files.pop_back();
  fitted = load_fitted_inputs(inputs, 3, 16, 16, /*one_size=*/false);
  CHECK((fitted.data.images.sizes() == torch::IntArrayRef({1, 3, 20, 40})));
  fs::remove_all(dir);
}

TEST_CASE("the release's feather: S/16 - 1 of the model's side", "[tools][editing]") {
  CHECK(default_feather_radius(256, 256) == 15.0);
  CHECK(default_feather_radius(512, 512) == 31.0);
  CHECK(default_feather_radius(28, 28) == 0.0);
  CHECK(default_feather_radius(16, 16) == 0.0);  // never negative
  CHECK(default_feather_radius(8, 8) == 0.0);
  CHECK(default_feather_radius(256, 512) == 15.0);  // the shorter side
}

TEST_CASE("windowed decoding with the release's 16x16 and 32x32 token windows", "[tools][editing]") {
  // Window plans on grids of a factor-16 model: 512×768 pixels with the 256 model's 16×16 windows
  // (32×48 tokens), 1024×1024 with the 512 model's 32×32 windows (64×64 tokens).
  CHECK((window_starts(48, 16) == std::vector<int64_t>{0, 8, 16, 24, 32}));
  CHECK((window_starts(64, 32) == std::vector<int64_t>{0, 16, 32}));
  for (const auto& [rows, columns, window] : {std::tuple{int64_t{32}, int64_t{48}, int64_t{16}},
                                              std::tuple{int64_t{64}, int64_t{64}, int64_t{32}}}) {
    torch::Tensor unknown = torch::ones({rows, columns}, torch::kBool);
    unknown.slice(0, 0, window).slice(1, 0, window).fill_(false);  // the image in the top-left corner
    const std::vector<TokenWindow> windows = plan_windows(unknown, window, window);
    torch::Tensor covered = torch::zeros_like(unknown);
    for (const TokenWindow& w : windows) {
      CHECK((w.top + window <= rows && w.left + window <= columns));
      covered.slice(0, w.top, w.top + window).slice(1, w.left, w.left + window).fill_(true);
    }
    CHECK(covered.logical_or(unknown.logical_not()).all().item<bool>());
    // The first window decoded overlaps the image by half a window.
    CHECK(((windows[0].top == 0 && windows[0].left == window / 2) || (windows[0].top == window / 2 && windows[0].left == 0)));
  }

  // Completing a 24×40 grid with a transformer of the 256 model's 16×16 grid (tiny widths): known
  // tokens kept, every unknown one filled with an image code.
  torch::manual_seed(5);
  TransformerConfig config = maskgit::testing::tiny_transformer_config();
  config.grid_height = config.grid_width = 16;
  config.no_class_token = false;  // as the release
  BidirectionalTransformer transformer(config);
  transformer->eval();
  DecodeOptions options;
  options.steps = 2;
  const int64_t mask = config.mask_token();
  torch::Tensor ids = torch::randint(0, config.codebook_size, {2, 24, 40}, torch::kLong);
  ids.slice(2, 16, 40).fill_(mask);  // outpainting 24 token columns to the right
  const torch::Tensor done = complete_token_grids(transformer, ids, {0, 2}, {7, 8}, options, torch::kCPU);
  CHECK(torch::equal(done.slice(2, 0, 16), ids.slice(2, 0, 16)));
  CHECK(((done >= 0) & (done < config.codebook_size)).all().item<bool>());
  CHECK(plan_windows(ids[0] == mask, 16, 16).size() >= 4);  // 24 new columns need 2 window columns × 2 rows
  // Without a class, the release's model has nothing to decode with; nor can it guide. The
  // library names its arguments ("class", "cfg_scale"), never the tools' flags.
  CHECK_THROWS_WITH(complete_token_grids(transformer, ids.slice(0, 0, 1), {-1}, {7}, options, torch::kCPU),
                    Catch::Contains("\"no class\" token"));
  using maskgit::testing::invalid_argument_of;
  CHECK(invalid_argument_of([&] {
          complete_token_grids(transformer, ids.slice(0, 0, 1), {-1}, {7}, options, torch::kCPU);
        }).argument == "class");
  CHECK(invalid_argument_of([&] {
          complete_token_grids(transformer, ids.slice(0, 0, 1), {99}, {7}, options, torch::kCPU);
        }).argument == "class");
  DecodeOptions guided = options;
  guided.guidance_scale = 2;
  const auto guidance = invalid_argument_of(
      [&] { complete_token_grids(transformer, ids.slice(0, 0, 1), {0}, {7}, guided, torch::kCPU); });
  CHECK(guidance.argument == "cfg_scale");
  CHECK(guidance.message == "this model was trained without a \"no class\" token, so guidance is unavailable");
}

TEST_CASE("the flag behind each argument the library names, per tool", "[tools][errors]") {
  CHECK(flag_for_argument("cfg_scale") == "--cfg-scale");
  CHECK(flag_for_argument("learning_rate", "maskgit-train") == "--lr");
  CHECK(flag_for_argument("margins", "maskgit-outpaint") == "--left/--right/--top/--bottom");
  // One argument, the flag of each tool.
  CHECK(flag_for_argument("box", "maskgit-edit") == "--box");
  CHECK(flag_for_argument("box", "maskgit-outpaint") == "--crop");
  CHECK(flag_for_argument("channels", "maskgit-train") == "--channels");
  CHECK(flag_for_argument("channels", "maskgit-eval").empty());
  // No flag: the message names the argument itself.
  CHECK(flag_for_argument("OMP_NUM_THREADS", "maskgit-sample").empty());
  CHECK(flag_for_argument("no_such_argument").empty());
  CHECK(describe_invalid_argument("floor_count", "-1 is negative", "maskgit-eval") == "--floor-count: -1 is negative");
  CHECK(describe_invalid_argument("OMP_NUM_THREADS", "\"x\" is not a thread count", "maskgit-sample") ==
        "OMP_NUM_THREADS: \"x\" is not a thread count");
}

namespace {

// run_tool's exit code and everything it printed on stderr, for a tool named `tool` whose body
// is `body` (no arguments).
std::pair<int, std::string> run_tool_stderr(const std::string& tool, const std::function<void()>& body) {
  const fs::path path = fs::temp_directory_path() / ("maskgit-run-tool-" + std::to_string(::getpid()));
  std::fflush(stderr);
  const int saved = ::dup(2);
  const int file = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ::dup2(file, 2);
  ::close(file);
  CLI::App app{"test", tool};
  std::string name = tool;
  char* argv[] = {name.data(), nullptr};
  const int code = run_tool(app, 1, argv, body);
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  fs::remove(path);
  return {code, text};
}

}  // namespace

TEST_CASE("run_tool names the flag of a library InvalidArgument in one line, with its exit code", "[tools][errors]") {
  auto [code, text] =
      run_tool_stderr("maskgit-outpaint", [] { require_box_inside(PixelBox{0, 0, 40, 4}, 28, 28); });
  CHECK(code == 2);
  CHECK(text == "maskgit-outpaint: error: --crop: the box 0,0,40,4 is not inside the 28x28 image\n");
  std::tie(code, text) =
      run_tool_stderr("maskgit-edit", [] { require_box_inside(PixelBox{0, 0, 40, 4}, 28, 28); });
  CHECK(text == "maskgit-edit: error: --box: the box 0,0,40,4 is not inside the 28x28 image\n");
  // The exit code travels with the error: a checkpoint to resume that is not there is bad input.
  std::tie(code, text) = run_tool_stderr(
      "maskgit-train", [] { throw InvalidArgument("resume", "no checkpoint at m/x", ExitCode::bad_input); });
  CHECK(code == 3);
  CHECK(text == "maskgit-train: error: --resume: no checkpoint at m/x\n");
  // A pattern's own flag (the library's "output" may be --originals).
  std::tie(code, text) =
      run_tool_stderr("maskgit-tokenize", [] { prepare_output_pattern("a-%d-%d.png", 4, "--originals"); });
  CHECK(code == 2);
  CHECK(text == "maskgit-tokenize: error: --originals: pattern \"a-%d-%d.png\" is not valid: it has more than one % "
                "conversion (only one %d is allowed)\n");
  // An argument without a flag is named as the library names it.
  std::tie(code, text) = run_tool_stderr("maskgit-sample", [] { throw InvalidArgument("ids", "too small"); });
  CHECK(code == 2);
  CHECK(text == "maskgit-sample: error: ids: too small\n");
}
