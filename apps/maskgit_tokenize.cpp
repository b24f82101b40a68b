// maskgit-tokenize: images ↔ token grids through a model's VQ tokenizer.
#include <fmt/format.h>

#include "common/console.h"
#include "cli/common.h"
#include "cli/image_record.h"
#include "cli/input_options.h"
#include "cli/options.h"
#include "common/error.h"
#include "io/atomic_file.h"
#include "io/image.h"
#include "io/json.h"
#include "model/model_dir.h"
#include "eval/classifier.h"
#include "tokenizer/evaluate.h"
#include "tokenizer/pipeline.h"
#include "tokenizer/token_file.h"

namespace {

using namespace maskgit;

void add_inputs(ToolOptions& cli, CLI::App* command, InputOptions& inputs, const std::string& default_split) {
  cli.add_no_default("input", inputs.files, command);
  cli.add_no_default("inputs", inputs.files, command);
  add_dataset_input_options(cli, inputs, default_split, command);
  add_fit_option(cli, inputs, command);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Encode images to token grids, decode token grids to images, reconstruct, or measure\n"
               "reconstruction quality, with a model's VQ tokenizer.",
               "maskgit-tokenize"};
  app.require_subcommand(1);
  std::string model_dir;
  RuntimeOptions runtime;
  int64_t batch_size = 256;
  bool json_output = false;
  ToolOptions cli(app, Tool::tokenize);
  add_model_option(cli, model_dir);
  add_runtime_options(cli, runtime);
  cli.add("batch_size", batch_size);
  cli.add_flag("json", json_output);

  InputOptions encode_inputs, reconstruct_inputs, evaluate_inputs;
  std::string encode_output, decode_input, decode_output, reconstruct_output, originals_output, grid_output;
  int64_t grid_scale = 4;
  auto* encode = app.add_subcommand("encode", "Images → token file (safetensors: ids [N,h,w])");
  add_inputs(cli, encode, encode_inputs, "t10k");
  cli.add_no_default("token_output", encode_output, encode)->required();
  auto* decode = app.add_subcommand("decode", "Token file → images");
  cli.add_no_default("input", decode_input, decode)->required();
  cli.add_no_default("output", decode_output, decode)->required();
  auto* reconstruct = app.add_subcommand("reconstruct", "Images → tokens → images, with PSNR per image");
  add_inputs(cli, reconstruct, reconstruct_inputs, "t10k");
  cli.add_no_default("output", reconstruct_output, reconstruct)->required();
  cli.add_no_default("originals", originals_output, reconstruct);
  cli.add_no_default("grid", grid_output, reconstruct);
  cli.add("grid_scale", grid_scale, reconstruct);
  auto* evaluate = app.add_subcommand("evaluate", "Mean PSNR and codebook use over a dataset (default: Fashion-MNIST test "
                                                  "split) or image files; on a labelled dataset also the evaluation "
                                                  "classifier on originals and reconstructions");
  add_inputs(cli, evaluate, evaluate_inputs, "t10k");
  evaluate_inputs.dataset.path = kFashionMnistDir;
  std::string classifier_dir = default_classifier_dir();
  const CLI::Option* classifier_flag = cli.add("classifier", classifier_dir, evaluate);

  return run_tool(cli, argc, argv, [&] {
    const torch::Device device = apply_runtime_options(runtime);
    const ModelConfig config = read_model_config(model_dir);
    const int channels = static_cast<int>(config.image_channels);
    // The model's identity (its weights hashed) goes into the PNGs of decode and reconstruct
    // only; encode and evaluate write none, so they do not read the weights twice.
    const bool writes_pngs = *decode || *reconstruct;
    const ModelIdentity identity = writes_pngs ? identify_model(config) : ModelIdentity{};
    if (writes_pngs) {
      check_replay_identity(identity);
      print_verbose("maskgit-tokenize: model {} (tokenizer sha256 {})\n", identity.path, identity.tokenizer_sha256);
    }

    if (*decode) {
      const TokenGrid grid = read_token_file(decode_input);
      check_tokenizer_image_size(config, grid.image_width, grid.image_height, decode_input);
      VQTokenizer tokenizer = load_tokenizer(config, device);
      if (grid.codebook_size != tokenizer->config().codebook_size)
        throw_bad_input(fmt::format("{}: ids index a codebook of {}, the model's has {}", decode_input,
                                    grid.codebook_size, tokenizer->config().codebook_size));
      const int64_t factor = tokenizer->downsample_factor();
      const int64_t rows = (grid.image_height + factor - 1) / factor, columns = (grid.image_width + factor - 1) / factor;
      if (grid.ids.size(1) != rows || grid.ids.size(2) != columns)
        throw_bad_input(fmt::format("{}: a {}x{} image is {}x{} tokens for this model, the file holds {}x{}",
                                    decode_input, grid.image_width, grid.image_height, columns, rows, grid.ids.size(2),
                                    grid.ids.size(1)));
      prepare_output_pattern(decode_output, grid.ids.size(0), "--output");
      const RecordJson token_file_identity = file_identity(decode_input);
      const torch::Tensor images = decode_in_batches(tokenizer, grid.ids, grid.image_height, grid.image_width, batch_size, device);
      for (int64_t i = 0; i < images.size(0); ++i) {
        const std::string path = format_output_path(decode_output, i);
        RecordJson record = new_image_record(Tool::tokenize, identity);
        record["input"] = token_file_identity;
        record["input"]["index"] = i;
        record["replayable"] = "decoded from a token file: decode it again";
        write_png(path, images[i], {{kImageRecordKeyword, dump_json(record)}});
        if (json_output) print_stdout("{}\n", dump_json(Json{{"file", path}, {"index", i}}));
      }
      return;
    }

    // evaluate's --data has a default (the test split): image files given instead replace it.
    if (*evaluate && !evaluate_inputs.files.empty() && evaluate->get_option("--data")->count() == 0)
      evaluate_inputs.dataset.path.clear();
    InputOptions& inputs = *encode ? encode_inputs : *reconstruct ? reconstruct_inputs : evaluate_inputs;
    require_one_input_source(inputs, "-i/--input");
    if (*encode) prepare_output_file(encode_output, "--output");
    const LabeledImages data =
        load_fitted_inputs(inputs, channels, config.image_width, config.image_height, /*one_size=*/false).data;
    check_tokenizer_image_size(config, data.images.size(3), data.images.size(2),
                               inputs.files.empty() ? inputs.dataset.path : inputs.files.front());
    VQTokenizer tokenizer = load_tokenizer(config, device);

    if (*encode) {
      TokenGrid grid;
      grid.ids = encode_in_batches(tokenizer, data.images, batch_size, device);
      if (inputs.files.empty()) grid.labels = data.labels;
      grid.image_height = data.images.size(2);
      grid.image_width = data.images.size(3);
      grid.codebook_size = tokenizer->config().codebook_size;
      write_token_file(encode_output, grid);
      if (json_output)
        print_stdout("{}\n", dump_json(Json{{"file", encode_output}, {"images", grid.ids.size(0)},
                                          {"grid_height", grid.ids.size(1)}, {"grid_width", grid.ids.size(2)},
                                          {"image_height", grid.image_height}, {"image_width", grid.image_width},
                                          {"fit", inputs.fit}}));
      else
        print_note("wrote {}: {} images as {}×{} tokens\n", encode_output, grid.ids.size(0), grid.ids.size(1), grid.ids.size(2));
      return;
    }

    if (*reconstruct) {
      prepare_output_pattern(reconstruct_output, data.images.size(0), "--output");
      if (!originals_output.empty()) prepare_output_pattern(originals_output, data.images.size(0), "--originals");
      if (!grid_output.empty()) {
        const int64_t count = data.images.size(0), columns = std::min<int64_t>(10, count);
        // Rows of originals and reconstructions: twice the rows of the images alone.
        check_grid_size(2 * ((count + columns - 1) / columns) * columns, columns, data.images.size(2),
                        data.images.size(3), grid_scale);
        prepare_output_file(grid_output, "--grid");
      }
      const torch::Tensor ids = encode_in_batches(tokenizer, data.images, batch_size, device);
      const torch::Tensor images = decode_in_batches(tokenizer, ids, data.images.size(2), data.images.size(3), batch_size, device);
      const torch::Tensor psnr = per_image_psnr(images, data.images);
      std::vector<RecordJson> input_identities;
      for (const std::string& file : inputs.files) input_identities.push_back(file_identity(file));
      if (!input_identities.empty()) check_replay_identity(identity, input_identities.front());
      for (int64_t i = 0; i < images.size(0); ++i) {
        const std::string path = format_output_path(reconstruct_output, i);
        const std::string source = input_source_name(inputs, i);
        RecordJson record = new_image_record(Tool::tokenize, identity);
        if (inputs.files.empty()) {
          record["input"] = {{"data", inputs.dataset.path}, {"split", inputs.dataset.split}, {"index", i}};
          record["replayable"] = "made from a dataset image: replays take image files (-i)";
        } else {
          record["input"] = input_identities[static_cast<size_t>(i)];
          record["arguments"] = {"reconstruct", "--model", identity.path, "--input", record["input"]["path"],
                                 "--fit", inputs.fit};
        }
        record["fit"] = inputs.fit;
        write_png(path, images[i], {{kImageRecordKeyword, dump_json(record)}});
        if (!originals_output.empty()) write_png(format_output_path(originals_output, i), data.images[i]);
        if (json_output)
          print_stdout("{}\n", dump_json(Json{{"file", path}, {"source", source}, {"psnr_db", psnr[i].item<double>()}}));
      }
      if (!grid_output.empty()) {
        // Rows of up to 10: originals, then their reconstructions underneath.
        const int64_t columns = std::min<int64_t>(10, images.size(0));
        std::vector<torch::Tensor> rows;
        for (int64_t begin = 0; begin < images.size(0); begin += columns) {
          const int64_t end = std::min(images.size(0), begin + columns);
          auto pad_row = [&](const torch::Tensor& row) {
            if (row.size(0) == columns) return row;
            return torch::cat({row, torch::ones({columns - row.size(0), row.size(1), row.size(2), row.size(3)})});
          };
          rows.push_back(pad_row(data.images.slice(0, begin, end)));
          rows.push_back(pad_row(images.slice(0, begin, end)));
        }
        RecordJson record = new_image_record(Tool::tokenize, identity);
        record["replayable"] = "a grid of originals and reconstructions";
        write_png(grid_output, tile_images(torch::cat(rows), columns, 2, grid_scale), {{kImageRecordKeyword, dump_json(record)}});
      }
      if (!json_output)
        print_note("reconstructed {} images, mean PSNR {:.2f} dB\n", images.size(0), psnr.mean().item<double>());
      return;
    }

    // The judge: the evaluation classifier on dataset images (they have labels), when it takes
    // their size; one named by --classifier must.
    ReconstructionJudge judge;
    LoadedClassifier classifier;
    const bool named = classifier_flag->count() > 0;
    if (named && !inputs.files.empty())
      throw_usage("--classifier: judges a labelled dataset (--data), not image files (they have no labels)");
    if (named && data.images.size(0) < 2)
      throw_usage("--classifier: needs at least 2 images (the Fréchet distance of their features)");
    // Without a named classifier, dataset images are judged when the default one can; when it
    // cannot, a note says why.
    const bool classifier_present = !classifier_dir.empty() && file_exists(classifier_dir + "/config.json");
    if (inputs.files.empty() && !named) {
      if (!classifier_present)
        print_note("not judged: no classifier at {}\n", classifier_dir.empty() ? "(none given)" : classifier_dir);
      else if (data.images.size(0) < 2)
        print_note("not judged: the classifier needs at least 2 images (the Fréchet distance of their features)\n");
    }
    if (inputs.files.empty() && data.images.size(0) >= 2 && !classifier_dir.empty() && (named || classifier_present)) {
      classifier = read_classifier(classifier_dir, device);
      const ClassifierConfig& c = classifier.config();
      const bool fits = c.channels == data.images.size(1) && c.height == data.images.size(2) &&
                        c.width == data.images.size(3) && classifier.class_names == data.class_names;
      const std::string mismatch =
          fmt::format("{} judges {}×{}×{} images of its {} classes; the data are {}×{}×{} images of {} class(es){}",
                      classifier_dir, c.channels, c.height, c.width, classifier.num_classes(), data.images.size(1),
                      data.images.size(2), data.images.size(3), data.class_names.size(),
                      classifier.class_names == data.class_names ? "" : " (other class names, or in another order)");
      if (fits) {
        judge.classifier = &classifier.model;
        judge.labels = data.labels;
      } else if (named) {
        throw_usage("--classifier: " + mismatch);
      } else {
        print_note("not judged: the default classifier {} (to judge these data, pass --classifier with a classifier "
                   "trained on them: maskgit-train --stage classifier)\n",
                   mismatch);
      }
    }
    const ReconstructionStats stats = evaluate_reconstruction(tokenizer, data.images, batch_size, device, judge);
    if (json_output) {
      Json line{{"model", model_dir},
                {"images", stats.images},
                {"mean_psnr_db", stats.mean_psnr_db},
                {"mean_mse", stats.mean_mse},
                {"codes_used", stats.codes_used},
                {"codebook_size", stats.codebook_size},
                {"codebook_perplexity", stats.codebook_perplexity},
                {"tokens_per_image", stats.tokens_per_image},
                {"parameters", count_parameters(*tokenizer)},
                {"seconds", stats.seconds}};
      if (stats.judged) {
        line["classifier"] = classifier_dir;
        line["accuracy_originals"] = stats.accuracy_originals;
        line["accuracy_reconstructions"] = stats.accuracy_reconstructions;
        line["prediction_agreement"] = stats.prediction_agreement;
        line["frechet_distance"] = stats.frechet_distance;
      }
      print_stdout("{}\n", dump_json(line));
    } else {
      print_stdout("images            {}\nmean PSNR         {:.2f} dB\ncodes used        {} / {} ({:.1f}%)\n"
                 "perplexity        {:.1f} (codebook use: exp of the ids' entropy)\n"
                 "tokens per image  {}\nparameters        {}\n",
                 stats.images, stats.mean_psnr_db, stats.codes_used, stats.codebook_size,
                 100.0 * stats.codes_used / stats.codebook_size, stats.codebook_perplexity, stats.tokens_per_image,
                 count_parameters(*tokenizer));
      if (stats.judged)
        print_stdout("classifier        {}\naccuracy          {:.2f}% on the originals, {:.2f}% on the reconstructions\n"
                     "same prediction   {:.2f}%\nFréchet distance  {:.3f} (reconstructions vs originals)\n",
                     classifier_dir, 100 * stats.accuracy_originals, 100 * stats.accuracy_reconstructions,
                     100 * stats.prediction_agreement, stats.frechet_distance);
    }
  });
}
