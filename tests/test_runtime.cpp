#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include <torch/torch.h>

#include "common/error.h"
#include "runtime/openmp_policy.h"
#include "runtime/threads.h"

// Catch2 comes last: LibTorch pulls in glog, whose CHECK macro would replace Catch's.
#include <catch2/catch.hpp>

using namespace maskgit;

namespace {

// Sets or unsets an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    if (value) ::setenv(name, value, 1);
    else ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (had_) ::setenv(name_.c_str(), old_.c_str(), 1);
    else ::unsetenv(name_.c_str());
  }

 private:
  std::string name_, old_;
  bool had_ = false;
};

}  // namespace

TEST_CASE("the automatic thread count leaves cores to other processes", "[runtime]") {
  CHECK(automatic_thread_count(2, 0) == 2);
  CHECK(automatic_thread_count(2, 1) == 1);
  CHECK(automatic_thread_count(2, 5) == 1);
  CHECK(automatic_thread_count(16, 3) == 13);
  CHECK(automatic_thread_count(4, -1) == 4);  // load unknown: use the CPUs
  CHECK(available_cpus() >= 1);
}

TEST_CASE("the thread count comes from --threads, then OMP_NUM_THREADS, then the load", "[runtime]") {
  const int before = torch::get_num_threads();
  {
    ScopedEnv env("OMP_NUM_THREADS", "1");
    configure_cpu_threads(2);
    CHECK(torch::get_num_threads() == 2);
    CHECK(cpu_thread_status().source == "--threads");
    CHECK_FALSE(cpu_thread_status().automatic);
    configure_cpu_threads(0);
    CHECK(torch::get_num_threads() == 1);
    CHECK(cpu_thread_status().source == "OMP_NUM_THREADS");
  }
  {
    ScopedEnv env("OMP_NUM_THREADS", "lots");
    try {
      configure_cpu_threads(0);
      FAIL("a bad OMP_NUM_THREADS was accepted");
    } catch (const Error& e) {
      CHECK(e.code() == ExitCode::usage);
      CHECK_THAT(e.what(), Catch::Contains("OMP_NUM_THREADS"));
    }
  }
  {
    ScopedEnv env("OMP_NUM_THREADS", nullptr);
    configure_cpu_threads(0);
    const CpuThreadStatus status = cpu_thread_status();
    CHECK(status.automatic);
    CHECK(status.threads >= 1);
    CHECK(status.threads <= status.cpus);
    CHECK(torch::get_num_threads() == status.threads);
  }
  configure_cpu_threads(before);
}

TEST_CASE("a busy process is seen as another process's runnable thread", "[runtime]") {
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    for (volatile unsigned long spin = 0;; ++spin) {
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const int others = other_runnable_threads();
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  CHECK(others >= 1);
  CHECK(automatic_thread_count(available_cpus(), others) <= std::max(1, available_cpus() - 1));
}

TEST_CASE("the OpenMP wait policy is passive unless the user chose one", "[runtime]") {
  const std::string origin = openmp_wait_policy_origin();
  INFO("origin: " << origin);
  REQUIRE((origin == "maskgit" || origin == "environment"));
  if (origin == "maskgit") {
    REQUIRE(std::getenv("OMP_WAIT_POLICY") != nullptr);
    CHECK(std::string(std::getenv("OMP_WAIT_POLICY")) == "PASSIVE");
  }
}
