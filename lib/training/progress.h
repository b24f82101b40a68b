#pragma once
// Small formatting helpers of the training progress lines.
#include <string>

namespace maskgit {

// "1h02m", "3m05s", "12s".
std::string format_duration(double seconds);

}  // namespace maskgit
