#pragma once
// Every command-line option of every maskgit-* tool, defined once in one table (in the style of
// llama.cpp's common argument table): its names, --help section and text, range, environment
// variable and the tools that take it. A tool binds the options it takes to its own variables
// by id; the table decides how they are spelled, checked and explained, so a flag reads and
// means the same in every tool (-s is always --seed, -n always --num, -i always --input).
// The table also decides the options every tool has: --version, -v/--verbose and -q/--quiet.
#include <CLI/CLI.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace maskgit {

// The tools (and the benchmarks, which share the runtime and model options).
enum class Tool : uint32_t { train, tokenize, sample, eval, inpaint, outpaint, edit, convert, info, benchmark };
using ToolSet = uint32_t;
constexpr ToolSet tool_bit(Tool tool) { return ToolSet{1} << static_cast<uint32_t>(tool); }
// "maskgit-sample" for Tool::sample, ...
std::string tool_name(Tool tool);
// Every tool, in the table's order.
std::vector<Tool> all_tools();

// One option as every tool that takes it shows and checks it.
struct OptionSpec {
  std::string_view id;     // stable name (e.g. "seed"); tools bind by it
  std::string_view names;  // CLI11 names: "-s,--seed" (a positional: a bare word, e.g. "files")
  std::string_view group;  // --help section
  std::string_view help;
  ToolSet tools;                  // which tools take it
  CLI::Validator (*check)();      // its range or form (nullptr: any value of its type)
  std::string_view env = {};      // read when the flag is absent ("" = none)
  bool seed = false;              // a seed: checked by seed_value (so -1 draws a random one)
};

// The whole table. Rows may share names (the same flag bound to different variables in different
// tools or subcommands, e.g. -o for a PNG pattern or a token file); then they share every name.
const std::vector<OptionSpec>& option_table();
// The row `id`; std::logic_error when absent (a programming error, caught by the tests).
const OptionSpec& option_spec(std::string_view id);

// The options of one tool, bound to its variables. The constructor adds --version, -v/--verbose
// and -q/--quiet; parse_verbosity() (called by run_tool after parsing) applies the latter two.
class ToolOptions {
 public:
  ToolOptions(CLI::App& app, Tool tool);

  // Adds option `id` to `on` (a subcommand or option group; default: the tool's app), bound to
  // `value`, whose current value is shown as the default. std::logic_error if the table does
  // not list this tool for `id`.
  template <typename T>
  CLI::Option* add(std::string_view id, T& value, CLI::App* on = nullptr) {
    const OptionSpec& spec = checked_spec(id);
    return finish(spec, target(on).add_option(std::string(spec.names), value, std::string(spec.help)), true);
  }
  // The same for options whose value has no meaningful default to show.
  template <typename T>
  CLI::Option* add_no_default(std::string_view id, T& value, CLI::App* on = nullptr) {
    const OptionSpec& spec = checked_spec(id);
    return finish(spec, target(on).add_option(std::string(spec.names), value, std::string(spec.help)), false);
  }
  CLI::Option* add_flag(std::string_view id, bool& value, CLI::App* on = nullptr);

  Tool tool() const { return tool_; }
  CLI::App& app() { return app_; }
  // The options added so far (ids), for run_tool's --replay and the tests.
  const std::vector<std::string>& added() const { return added_; }

 private:
  const OptionSpec& checked_spec(std::string_view id) const;
  CLI::App& target(CLI::App* on) { return on != nullptr ? *on : app_; }
  CLI::Option* finish(const OptionSpec& spec, CLI::Option* option, bool show_default);

  CLI::App& app_;
  Tool tool_;
  std::vector<std::string> added_;
  bool quiet_ = false;
  bool verbose_ = false;
  std::string replay_file_;
  friend void apply_verbosity(const ToolOptions& options);
};

// Applies -q/-v to the console (common/console.h). Error(usage) when both are given.
void apply_verbosity(const ToolOptions& options);

// Runs a tool: --replay FILE first (image_record.h: the file's recorded command line replaces
// the user's, who may add only where results go and how the run goes), then parsing and the
// error-to-exit-code mapping of run_tool (cli/common.h), then -q/-v, then `body`, then the
// random seeds drawn for -1 (even with -q).
int run_tool(ToolOptions& cli, int argc, char** argv, const std::function<void()>& body);

// Seeds: 0..2^64-1, or -1 for a random one. The check of every seed option turns "-1" into a
// random seed drawn from std::random_device (below 2^63, so that seed + i never wraps) and
// remembers it; run_tool prints each drawn seed on stderr after the work ("maskgit-sample: --seed
// 123 (random)", also with --quiet), and the tools record the seed itself.
CLI::Validator seed_value(const std::string& flag);
// The seeds drawn for -1 so far in this process: (flag, seed).
std::vector<std::pair<std::string, uint64_t>> drawn_random_seeds();

}  // namespace maskgit
