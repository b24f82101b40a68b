#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include "runtime/openmp_policy.h"

// Links the OpenMP wait-policy hook into every test program: ctest runs tests side by side.
static const char* const openmp_wait_policy_hook = maskgit::openmp_wait_policy_origin();
