// The option table (lib/cli/options.h) and the images' records (lib/cli/image_record.h): the
// table's own consistency, tools held to the rows listed for them, seeds (range, -1), and how
// --replay takes a command line apart. tests/tool_help.py checks the tools' --help against the
// table, and tests/image_records.sh replays real images.
#include <map>
#include <set>
#include <string>
#include <vector>

#include "cli/image_record.h"
#include "cli/options.h"
#include "common/error.h"
#include "io/image.h"

#include "test_support.h"

// Catch2 comes last: LibTorch pulls in glog, whose CHECK macro would replace Catch's.
#include <catch2/catch.hpp>

using namespace maskgit;

namespace {

std::vector<std::string> split_names(std::string_view names) {
  std::vector<std::string> out;
  size_t begin = 0;
  while (begin <= names.size()) {
    const size_t end = names.find(',', begin);
    out.emplace_back(names.substr(begin, end == std::string_view::npos ? std::string_view::npos : end - begin));
    if (end == std::string_view::npos) break;
    begin = end + 1;
  }
  return out;
}

// A PNG holding `record` as its maskgit text.
std::string png_with_record(const std::filesystem::path& dir, const std::string& name, const RecordJson& record) {
  const std::string path = (dir / name).string();
  write_png(path, torch::zeros({1, 2, 2}), {{kImageRecordKeyword, record.dump()}});
  return path;
}

}  // namespace

TEST_CASE("the option table: unique ids, one meaning per flag, rows sharing a flag do not meet", "[options]") {
  std::set<std::string> ids;
  std::map<std::string, std::string> short_to_long;
  std::map<std::string, std::vector<const OptionSpec*>> by_long;
  for (const OptionSpec& spec : option_table()) {
    INFO(spec.id);
    CHECK(ids.insert(std::string(spec.id)).second);
    CHECK(spec.tools != 0);
    CHECK(!spec.help.empty());
    const std::vector<std::string> names = split_names(spec.names);
    std::string first_long;
    for (const std::string& name : names)
      if (name.rfind("--", 0) == 0 && first_long.empty()) first_long = name;
    for (const std::string& name : names) {
      if (name.size() == 2 && name[0] == '-') {
        const auto [it, fresh] = short_to_long.emplace(name, first_long);
        CHECK(it->second == first_long);  // -s is --seed wherever it appears
      }
    }
    if (!first_long.empty()) by_long[first_long].push_back(&spec);
  }
  // Two rows with one flag (--steps: decoding steps, training steps; -o: a PNG pattern, a token
  // file, a model directory) never reach the same tool, except tokenize's -o and -i, which
  // belong to different subcommands.
  for (const auto& [flag, rows] : by_long)
    for (size_t a = 0; a < rows.size(); ++a)
      for (size_t b = a + 1; b < rows.size(); ++b) {
        INFO(flag << ": " << rows[a]->id << " and " << rows[b]->id);
        CHECK((rows[a]->tools & rows[b]->tools & ~tool_bit(Tool::tokenize)) == 0);
      }
  CHECK(option_spec("seed").names == "-s,--seed");
  CHECK_THROWS_AS(option_spec("no-such-option"), std::logic_error);
}

TEST_CASE("a tool may only add the options the table lists for it", "[options]") {
  CLI::App app{"test"};
  ToolOptions cli(app, Tool::convert);
  std::string text;
  int64_t number = 0;
  CHECK_THROWS_AS(cli.add("seed", number), std::logic_error);  // maskgit-convert takes no seed
  CHECK_NOTHROW(cli.add_no_default("class_names", text));
  CHECK(cli.added() == std::vector<std::string>{"version", "verbose", "quiet", "class_names"});
}

TEST_CASE("seeds: 0 to 2^64-1 exactly, -1 draws one below 2^63, the rest refused", "[options]") {
  auto parse = [](const std::string& value) {
    CLI::App app{"test"};
    ToolOptions cli(app, Tool::sample);
    uint64_t seed = 7;
    cli.add("seed", seed);
    app.parse(std::vector<std::string>{value, "--seed"});  // CLI11 takes the arguments reversed
    return seed;
  };
  CHECK(parse("0") == 0);
  CHECK(parse("18446744073709551615") == 18446744073709551615ULL);
  const size_t drawn_before = drawn_random_seeds().size();
  const uint64_t random = parse("-1");
  CHECK(random < (uint64_t{1} << 63));
  REQUIRE(drawn_random_seeds().size() == drawn_before + 1);
  CHECK(drawn_random_seeds().back() == std::make_pair(std::string("--seed"), random));
  for (const char* bad : {"18446744073709551616", "-2", "1e3", "+1", "0x10", "", " 1", "1.0"}) {
    INFO(bad);
    CHECK_THROWS_AS(parse(bad), CLI::ValidationError);
  }
}

TEST_CASE("replay: the record's arguments, then the user's own flags, which may only place the results",
          "[options][records]") {
  const auto dir = maskgit::testing::fresh_temp_dir("options-replay");
  RecordJson record = {{"schema", kImageRecordSchema},
                       {"tool", "maskgit-sample"},
                       {"seed", 18446744073709551615ULL},
                       {"class", 3},
                       {"arguments", {"--model", "/m", "--class", "3", "--num", "1", "--seed", "18446744073709551615"}}};
  const std::string made = png_with_record(dir, "made.png", record);
  using Args = std::vector<std::string>;

  CHECK(expand_replay(Tool::sample, {"maskgit-sample", "-o", "x.png"}) == Args{"maskgit-sample", "-o", "x.png"});
  CHECK(expand_replay(Tool::sample, {"tool", "--replay", made, "-o", "x.png", "-q"}) ==
        Args{"tool", "--model", "/m", "--class", "3", "--num", "1", "--seed", "18446744073709551615", "-o", "x.png",
             "-q"});
  REQUIRE(replayed_record() != nullptr);
  CHECK((*replayed_record())["arguments"][7] == "18446744073709551615");
  // --replay=FILE, attached values, and -m replacing the record's model path.
  CHECK(expand_replay(Tool::sample, {"tool", "--replay=" + made, "-ox.png", "--device=cpu", "-m", "elsewhere"}) ==
        Args{"tool", "--class", "3", "--num", "1", "--seed", "18446744073709551615", "-ox.png", "--device=cpu", "-m",
             "elsewhere"});
  // A tool without --replay leaves the command line to its parser (which refuses the flag).
  CHECK(expand_replay(Tool::train, {"maskgit-train", "--replay", made}) == Args{"maskgit-train", "--replay", made});

  auto refused = [&](const Args& args, ExitCode code, const std::string& needle) {
    INFO(needle);
    try {
      expand_replay(Tool::sample, args);
      FAIL("not refused");
    } catch (const Error& e) {
      CHECK(e.code() == code);
      CHECK_THAT(e.what(), Catch::Contains(needle));
    }
  };
  refused({"tool", "--replay", made, "-o", "x.png", "--steps", "3"}, ExitCode::usage, "--steps cannot be given");
  refused({"tool", "--replay", made, "-o", "x.png", "-c", "3"}, ExitCode::usage, "-c cannot be given");
  refused({"tool", "--replay", made, "-o", "x.png", "-qc4"}, ExitCode::usage, "-qc4 cannot be given");
  refused({"tool", "--replay", made, "-o", "x.png", "--json=1"}, ExitCode::usage, "--json=1 cannot be given");
  refused({"tool", "--replay", made}, ExitCode::usage, "give -o/--output");
  refused({"tool", "--replay", made, "--replay", made}, ExitCode::usage, "one file");
  refused({"tool", "--replay"}, ExitCode::usage, "needs a PNG file");
  refused({"tool", "--replay", (dir / "none.png").string(), "-o", "x.png"}, ExitCode::bad_input, "none.png");
  auto with = [&](const char* name, const RecordJson& changed) { return png_with_record(dir, name, changed); };
  RecordJson other = record;
  other["tool"] = "maskgit-edit";
  refused({"tool", "--replay", with("edit.png", other), "-o", "x.png"}, ExitCode::usage,
          "was made by maskgit-edit: run maskgit-edit --replay");
  other["tool"] = "rm -rf /";
  refused({"tool", "--replay", with("tool.png", other), "-o", "x.png"}, ExitCode::bad_input, "names no maskgit-* tool");
  other = record;
  other.erase("arguments");
  other["replayable"] = "a grid";
  refused({"tool", "--replay", with("grid.png", other), "-o", "x.png"}, ExitCode::bad_input,
          "no arguments to replay (a grid)");
  other["schema"] = "maskgit-cpp.image/2";
  refused({"tool", "--replay", with("future.png", other), "-o", "x.png"}, ExitCode::bad_input,
          "record schema \"maskgit-cpp.image/2\"");
  const std::string plain = (dir / "plain.png").string();
  write_png(plain, torch::zeros({1, 2, 2}), {{"maskgit", "not json"}});
  refused({"tool", "--replay", plain, "-o", "x.png"}, ExitCode::bad_input, "is not a JSON record");
  std::string deep = "{\"schema\": \"maskgit-cpp.image/1\", \"x\": ";
  for (int i = 0; i < 100000; ++i) deep += "[";
  write_png(plain, torch::zeros({1, 2, 2}), {{"maskgit", deep}});
  refused({"tool", "--replay", plain, "-o", "x.png"}, ExitCode::bad_input, "is not a JSON record");

  // Arguments a replay must not run: outputs, meta flags, flag-like values, another seed or
  // class than the record's, several images, a missing model or seed.
  const std::vector<std::pair<std::vector<std::string>, std::string>> hostile = {
      {{"--model", "/m", "--class", "3", "--seed", "18446744073709551615", "--output", "/tmp/victim"}, "hold --output"},
      {{"--model", "/m", "--class", "3", "--seed", "18446744073709551615", "--save-tokens", "t"}, "hold --save-tokens"},
      {{"--model", "/m", "--class", "3", "--seed", "18446744073709551615", "--help"}, "hold --help"},
      {{"--model", "/m", "--class", "3", "--seed", "18446744073709551615", "--replay", "x.png"}, "hold --replay"},
      {{"--model", "/m", "--class", "--output", "--seed", "18446744073709551615"}, "give --class the value \"--output\""},
      {{"--model", "/m", "--class", "3", "--seed", "-1"}, "give --seed the value \"-1\""},
      {{"--model", "/m", "--class", "3", "--seed", "5"}, "another --seed"},
      {{"--model", "/m", "--class", "4", "--seed", "18446744073709551615"}, "another --class"},
      {{"--model", "/m", "--class", "3", "--seed", "18446744073709551615", "--num", "2"}, "more than one image"},
      {{"--class", "3", "--seed", "18446744073709551615"}, "no --model"},
      {{"--model", "/m", "--model", "/n", "--class", "3", "--seed", "18446744073709551615"}, "repeat --model"},
      {{"--model", "/m", "--class", "3", "--seed", "18446744073709551615", "--steps"}, "without a value"},
  };
  for (const auto& [arguments, needle] : hostile) {
    other = record;
    other["arguments"] = arguments;
    refused({"tool", "--replay", with("hostile.png", other), "-o", "x.png"}, ExitCode::bad_input, needle);
  }
  other = record;
  other["arguments"] = {"--model", "/m", "--class", "3", "--seed", "18446744073709551615", "--cfg-scale", "-0.5"};
  CHECK_NOTHROW(expand_replay(Tool::sample, {"tool", "--replay", with("negative.png", other), "-o", "x.png"}));
  other["arguments"] = RecordJson::array({"--model", "/m", 3});
  refused({"tool", "--replay", with("number.png", other), "-o", "x.png"}, ExitCode::bad_input, "non-string");
  other = record;
  other["seed"] = 1e300;
  refused({"tool", "--replay", with("seed.png", other), "-o", "x.png"}, ExitCode::bad_input, "seed is not a whole number");
  // A command line without --replay forgets the last one's record (which turns the model's
  // sampling defaults off), so later parses in this process are plain ones.
  CHECK_NOTHROW(expand_replay(Tool::sample, {"tool", "--replay", made, "-o", "x.png"}));
  REQUIRE(replayed_record() != nullptr);
  CHECK(expand_replay(Tool::sample, {"maskgit-sample", "-o", "x.png"}) == Args{"maskgit-sample", "-o", "x.png"});
  CHECK(replayed_record() == nullptr);
}

TEST_CASE("exact_number round-trips doubles", "[records]") {
  for (double value : {0.0, 1.0, 4.5, 0.1, 1e-3, 1.0 / 3.0, 123456.789, -2.5}) {
    INFO(value);
    CHECK(std::stod(exact_number(value)) == value);
  }
  CHECK(exact_number(1.0) == "1");
  CHECK(exact_number(4.5) == "4.5");
}
