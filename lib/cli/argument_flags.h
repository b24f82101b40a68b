#pragma once
// The command-line flag behind each argument the library names in an InvalidArgument
// (common/error.h): the library says "cfg_scale", the user typed --cfg-scale.
#include <string>
#include <string_view>

namespace maskgit {

// The flag of `tool` (the program's name, e.g. "maskgit-outpaint") that sets the library's
// `argument`: a row for that tool if there is one, else the row for every tool. Empty when no
// flag sets it (an environment variable, an argument the tools refuse themselves before the
// library could, or one the table does not know); the caller then names the argument itself.
std::string flag_for_argument(std::string_view argument, std::string_view tool = {});

// "<flag>: <message>" for an InvalidArgument thrown while `tool` ran; "<argument>: <message>"
// when no flag sets the argument.
std::string describe_invalid_argument(std::string_view argument, std::string_view message, std::string_view tool);

}  // namespace maskgit
