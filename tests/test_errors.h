#pragma once
// Error assertions shared by the test files. Include after <catch2/catch.hpp> (they use its
// macros, which LibTorch's glog would otherwise replace).
#include <string>
#include <vector>

#include "common/error.h"

namespace maskgit::testing {

// `body` throws an Error with exit code `code` whose message contains every one of `needles`.
template <typename Body>
void require_error(Body body, ExitCode code, const std::vector<std::string>& needles) {
  try {
    body();
    FAIL("no error thrown");
  } catch (const Error& e) {
    INFO(e.what());
    CHECK(e.code() == code);
    for (const auto& needle : needles) CHECK(std::string(e.what()).find(needle) != std::string::npos);
  }
}

// `body` throws an InvalidArgument naming `argument` whose message contains every one of `needles`.
template <typename Body>
void require_invalid_argument(Body body, const std::string& argument, const std::vector<std::string>& needles = {}) {
  try {
    body();
    FAIL("no error thrown");
  } catch (const InvalidArgument& e) {
    INFO(e.what());
    CHECK(e.argument() == argument);
    for (const auto& needle : needles) CHECK(std::string(e.what()).find(needle) != std::string::npos);
  }
}

}  // namespace maskgit::testing
