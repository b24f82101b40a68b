// Weights loading and saving benchmark (not a test): the release's ImageNet 256 configuration
// (TransformerConfig::official_imagenet(), ~172M parameters, and TokenizerConfig::official_imagenet())
// with random weights is saved once into a temporary model directory (removed at the end); then
// load_transformer and load_tokenizer are timed and their peak memory measured, each in a fresh
// child process (this program run again), against references measured the same way in the same
// run:
// - time: reading the weights file's bytes with plain read() into a reused 1 MiB buffer (the
//   page cache is warm: the file was just written), and building the same module with its random
//   initialisation and no file (part of every load);
// - memory: the growth of the child's peak resident set (VmHWM, reset through
//   /proc/self/clear_refs just before the measured call) over the weights file's size. A load
//   that holds the weights once is near 1.0.
// Saving (save_transformer_weights, save_tokenizer_weights of a model already in memory) is
// measured too: its time and the peak growth over the file size (ideally near 0).
// scripts/benchmark.sh --loading runs it; README "Benchmark" has the figures.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "cli/common.h"
#include "common/error.h"
#include "model/model_dir.h"

namespace {

using namespace maskgit;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// A field of /proc/self/status in bytes ("VmHWM:     1234 kB").
int64_t status_bytes(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.compare(0, field.size() + 1, field + ":") == 0) return std::stoll(line.substr(field.size() + 1)) * 1024;
  }
  throw std::runtime_error("/proc/self/status has no " + field);
}

// Resets VmHWM to the current resident set; false where the kernel refuses.
bool reset_peak() {
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
  clear.flush();
  return static_cast<bool>(clear);
}

ModelConfig official_config(const std::string& directory) {
  ModelConfig config;
  config.directory = directory;
  config.image_width = 256;
  config.image_height = 256;
  config.image_channels = 3;
  for (int i = 0; i < 1000; ++i) config.class_names.push_back(fmt::format("class{}", i));
  config.tokenizer = TokenizerConfig::official_imagenet();
  config.transformer = TransformerConfig::official_imagenet();
  return config;
}

struct Measure {
  double seconds = 0;
  int64_t peak_growth = 0;  // bytes of VmHWM over the resident set before the measured call
  bool peak_reset = false;
};

// One measurement in this process (the child): `what` is read, construct, load or save.
Measure measure_here(const std::string& what, const std::string& stage, const std::string& model_dir) {
  const ModelConfig config = read_model_config(model_dir);
  const bool transformer_stage = stage == "transformer";
  const std::string weights = config.path_of(transformer_stage ? kTransformerWeightsFile : kTokenizerWeightsFile);
  std::vector<char> buffer;
  std::optional<BidirectionalTransformer> transformer;
  std::optional<VQTokenizer> tokenizer;
  if (what == "read") buffer.assign(size_t{1} << 20, 1);  // allocated and touched before the clock starts
  if (what == "save") {  // the model to save is built before the measurement
    if (transformer_stage) transformer.emplace(*config.transformer);
    else tokenizer.emplace(*config.tokenizer);
  }
  Measure measure;
  measure.peak_reset = reset_peak();
  const int64_t before = status_bytes("VmRSS");
  const auto start = Clock::now();
  if (what == "read") {
    const int fd = ::open(weights.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error("cannot open " + weights);
    while (true) {
      const ssize_t count = ::read(fd, buffer.data(), buffer.size());
      if (count == 0) break;
      if (count < 0) throw std::runtime_error("cannot read " + weights);
    }
    ::close(fd);
  } else if (what == "construct") {
    if (transformer_stage) transformer.emplace(*config.transformer);
    else tokenizer.emplace(*config.tokenizer);
  } else if (what == "load") {
    if (transformer_stage) transformer.emplace(load_transformer(config, torch::kCPU));
    else tokenizer.emplace(load_tokenizer(config, torch::kCPU));
  } else if (what == "save") {
    if (transformer_stage) save_transformer_weights(config, *transformer);
    else save_tokenizer_weights(config, *tokenizer);
  } else {
    throw_usage("--measure: read, construct, load or save");
  }
  measure.seconds = seconds_since(start);
  measure.peak_growth = status_bytes("VmHWM") - before;
  return measure;
}

// Runs this program again with `arguments` and returns its standard output.
std::string run_child(const std::vector<std::string>& arguments) {
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) throw std::runtime_error("pipe failed");
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::dup2(pipe_fds[1], 1);
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    std::vector<char*> argv;
    for (const std::string& argument : arguments) argv.push_back(const_cast<char*>(argument.c_str()));
    argv.push_back(nullptr);
    ::execv("/proc/self/exe", argv.data());
    ::_exit(127);
  }
  ::close(pipe_fds[1]);
  std::string output;
  char chunk[4096];
  ssize_t count = 0;
  while ((count = ::read(pipe_fds[0], chunk, sizeof chunk)) > 0) output.append(chunk, static_cast<size_t>(count));
  ::close(pipe_fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error(fmt::format("the measuring child ({}) failed", fmt::join(arguments, " ")));
  return output;
}

struct Row {
  std::string stage;
  int64_t file_bytes = 0, parameters = 0;
  std::vector<Measure> read, construct, load, save;
};

double best_seconds(const std::vector<Measure>& runs) {
  double best = runs.front().seconds;
  for (const Measure& m : runs) best = std::min(best, m.seconds);
  return best;
}

int64_t largest_peak(const std::vector<Measure>& runs) {
  int64_t largest = 0;
  for (const Measure& m : runs) largest = std::max(largest, m.peak_growth);
  return largest;
}

// Removes the temporary model directory however the run ends.
struct TempDirectory {
  fs::path path;
  ~TempDirectory() {
    std::error_code ignored;
    if (!path.empty()) fs::remove_all(path, ignored);
  }
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Benchmark loading and saving the official ImageNet 256 model's weights: time against read() of the "
               "file, peak memory against the file size.",
               "bench_loading"};
  RuntimeOptions runtime;
  int repeats = 3;
  bool json_output = false;
  std::vector<std::string> stages = {"transformer", "tokenizer"};
  std::string folder = fs::temp_directory_path().string(), measure_what, model_dir;
  ToolOptions cli(app, Tool::benchmark);
  add_runtime_options(cli, runtime);
  app.add_option("--repeats", repeats, "Child processes per measurement (best time, largest peak)")
      ->capture_default_str()->check(CLI::Range(1, 100));
  app.add_option("--stage", stages, "transformer, tokenizer or both (comma-separated)")->delimiter(',')
      ->check(CLI::IsMember({"transformer", "tokenizer"}));
  app.add_option("--folder", folder, "Where the temporary model directory is made (the filesystem matters)")
      ->capture_default_str();
  app.add_flag("--json", json_output, "One JSON line per stage instead of a table");
  // The child's side: one measurement, one JSON line.
  app.add_option("--measure", measure_what, "")->group("");
  app.add_option("--model-dir", model_dir, "")->group("");
  return run_tool(cli, argc, argv, [&] {
    apply_runtime_options(runtime);
    if (!measure_what.empty()) {
      const Measure m = measure_here(measure_what, stages.front(), model_dir);
      fmt::print("{} {} {}\n", m.seconds, m.peak_growth, m.peak_reset ? 1 : 0);
      return;
    }
    TempDirectory temp;
    temp.path = fs::path(folder) / fmt::format("maskgit-bench-loading-{}", static_cast<long>(::getpid()));
    fs::remove_all(temp.path);
    const ModelConfig config = official_config(temp.path.string());
    write_model_config(config);
    // Every child runs with the thread count this process chose (automatic counts would differ
    // from child to child on a busy machine).
    const std::string self_threads = std::to_string(torch::get_num_threads());
    auto child = [&](const std::string& what, const std::string& stage) {
      const std::string output = run_child({"bench_loading", "--threads", self_threads, "--measure", what, "--stage",
                                            stage, "--model-dir", temp.path.string()});
      Measure m;
      int reset = 0;
      if (std::sscanf(output.c_str(), "%lf %ld %d", &m.seconds, &m.peak_growth, &reset) != 3)
        throw std::runtime_error("unexpected child output: " + output);
      m.peak_reset = reset != 0;
      return m;
    };
    std::vector<Row> rows;
    for (const std::string& stage : stages) {
      Row row;
      row.stage = stage;
      row.parameters = stage == "transformer" ? config.transformer->parameter_count() : config.tokenizer->parameter_count();
      // The first save writes the file every later measurement reads; the others replace it.
      for (int r = 0; r < repeats; ++r) row.save.push_back(child("save", stage));
      row.file_bytes = static_cast<int64_t>(
          fs::file_size(config.path_of(stage == "transformer" ? kTransformerWeightsFile : kTokenizerWeightsFile)));
      for (int r = 0; r < repeats; ++r) {
        row.read.push_back(child("read", stage));
        row.construct.push_back(child("construct", stage));
        row.load.push_back(child("load", stage));
      }
      rows.push_back(row);
    }
    const bool reset = std::all_of(rows.begin(), rows.end(), [](const Row& row) {
      return std::all_of(row.load.begin(), row.load.end(), [](const Measure& m) { return m.peak_reset; });
    });
    const double mb = 1e6;
    if (!json_output) {
      fmt::print("official ImageNet 256 weights, random values | {} threads | best of {} child processes (peak: "
                 "largest){}\n\n",
                 torch::get_num_threads(), repeats, reset ? "" : " | VmHWM not reset (clear_refs refused)");
      fmt::print("| stage | parameters | file MB | read() s | construct s | load s | load / read() | load peak MB | "
                 "load peak / file | save s | save peak MB | save peak / file |\n"
                 "|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    }
    for (const Row& row : rows) {
      const double read = best_seconds(row.read), load = best_seconds(row.load);
      const double file = static_cast<double>(row.file_bytes);
      const double load_peak = static_cast<double>(largest_peak(row.load));
      const double save_peak = static_cast<double>(largest_peak(row.save));
      if (json_output) {
        Json line = Json::object();
        line["stage"] = row.stage;
        line["parameters"] = row.parameters;
        line["file_bytes"] = row.file_bytes;
        line["read_seconds"] = read;
        line["construct_seconds"] = best_seconds(row.construct);
        line["load_seconds"] = load;
        line["load_peak_bytes"] = largest_peak(row.load);
        line["save_seconds"] = best_seconds(row.save);
        line["save_peak_bytes"] = largest_peak(row.save);
        line["threads"] = static_cast<int64_t>(torch::get_num_threads());
        line["peak_reset"] = reset;
        fmt::print("{}\n", dump_json(line));
      } else {
        fmt::print("| {} | {:.1f}M | {:.1f} | {:.3f} | {:.3f} | {:.3f} | {:.1f}x | {:.1f} | {:.2f} | {:.3f} | {:.1f} | "
                   "{:.2f} |\n",
                   row.stage, static_cast<double>(row.parameters) / 1e6, file / mb, read, best_seconds(row.construct),
                   load, load / read, load_peak / mb, load_peak / file, best_seconds(row.save), save_peak / mb,
                   save_peak / file);
      }
      std::fflush(stdout);
    }
  });
}
