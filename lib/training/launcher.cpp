#include "training/launcher.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "common/console.h"
#include "common/error.h"
#include "runtime/threads.h"

extern char** environ;

namespace maskgit {
namespace {

constexpr std::chrono::seconds kGracePeriod{5};

// The write end of the launcher's self-pipe: its signal handlers write the signal's number there.
volatile int g_wake_fd = -1;

extern "C" void on_launcher_signal(int signal_number) {
  const int saved_errno = errno;
  const int fd = g_wake_fd;
  if (fd >= 0) {
    const unsigned char byte = static_cast<unsigned char>(signal_number);
    [[maybe_unused]] const ssize_t written = ::write(fd, &byte, 1);
  }
  errno = saved_errno;
}

std::string signal_name(int signal_number) {
  switch (signal_number) {
    case SIGHUP: return "SIGHUP";
    case SIGINT: return "SIGINT";
    case SIGQUIT: return "SIGQUIT";
    case SIGILL: return "SIGILL";
    case SIGTRAP: return "SIGTRAP";
    case SIGABRT: return "SIGABRT";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGKILL: return "SIGKILL";
    case SIGUSR1: return "SIGUSR1";
    case SIGSEGV: return "SIGSEGV";
    case SIGUSR2: return "SIGUSR2";
    case SIGPIPE: return "SIGPIPE";
    case SIGALRM: return "SIGALRM";
    case SIGTERM: return "SIGTERM";
    case SIGXCPU: return "SIGXCPU";
    case SIGXFSZ: return "SIGXFSZ";
    default: return fmt::format("{}", signal_number);
  }
}

// A TCP port on 127.0.0.1 that nothing listens on now (the kernel's choice for port 0).
int free_local_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw Error(ExitCode::failure, fmt::format("cannot find a free port: socket: {}", std::strerror(errno)));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof address;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    const int error = errno;
    ::close(fd);
    throw Error(ExitCode::failure, fmt::format("cannot find a free port on 127.0.0.1: {}", std::strerror(error)));
  }
  ::close(fd);
  return ntohs(address.sin_port);
}

// Installs the launcher's handlers of SIGINT, SIGTERM and SIGCHLD and its self-pipe; restores
// the previous handlers on destruction.
class SignalWatch {
 public:
  SignalWatch() {
    if (::pipe2(pipe_, O_CLOEXEC | O_NONBLOCK) != 0)
      throw Error(ExitCode::failure, fmt::format("cannot start the ranks: pipe: {}", std::strerror(errno)));
    g_wake_fd = pipe_[1];
    struct sigaction action {};
    action.sa_handler = on_launcher_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    for (size_t i = 0; i < kSignals.size(); ++i) {
      action.sa_flags = kSignals[i] == SIGCHLD ? (SA_RESTART | SA_NOCLDSTOP) : SA_RESTART;
      ::sigaction(kSignals[i], &action, &previous_[i]);
    }
  }
  ~SignalWatch() {
    for (size_t i = 0; i < kSignals.size(); ++i) ::sigaction(kSignals[i], &previous_[i], nullptr);
    g_wake_fd = -1;
    ::close(pipe_[0]);
    ::close(pipe_[1]);
  }
  SignalWatch(const SignalWatch&) = delete;
  SignalWatch& operator=(const SignalWatch&) = delete;

  // Waits at most `timeout_ms` for a signal; returns the signals that arrived (SIGCHLD included).
  std::vector<int> wait(int timeout_ms) {
    pollfd entry{pipe_[0], POLLIN, 0};
    ::poll(&entry, 1, timeout_ms);
    std::vector<int> signals;
    unsigned char bytes[64];
    for (;;) {
      const ssize_t count = ::read(pipe_[0], bytes, sizeof bytes);
      if (count <= 0) break;
      for (ssize_t i = 0; i < count; ++i) signals.push_back(bytes[i]);
    }
    return signals;
  }

  static constexpr std::array<int, 3> kSignals{SIGINT, SIGTERM, SIGCHLD};

 private:
  int pipe_[2] = {-1, -1};
  std::array<struct sigaction, 3> previous_{};
};

// Blocks the launcher's signals in this thread while a child is forked (so that no handler runs
// in the child before exec); restores the mask on destruction.
class BlockSignals {
 public:
  BlockSignals() {
    sigset_t set;
    sigemptyset(&set);
    for (const int signal_number : SignalWatch::kSignals) sigaddset(&set, signal_number);
    ::pthread_sigmask(SIG_BLOCK, &set, &previous_);
  }
  ~BlockSignals() { ::pthread_sigmask(SIG_SETMASK, &previous_, nullptr); }
  BlockSignals(const BlockSignals&) = delete;
  BlockSignals& operator=(const BlockSignals&) = delete;

 private:
  sigset_t previous_;
};

struct Rank {
  pid_t pid = -1;
  bool running = false;
};

// Sends `signal_number` to every running rank.
void signal_ranks(std::vector<Rank>& ranks, int signal_number) {
  for (const Rank& rank : ranks)
    if (rank.running) ::kill(rank.pid, signal_number);
}

// SIGKILLs and reaps every running rank (after a failed start).
void kill_and_reap(std::vector<Rank>& ranks) {
  for (Rank& rank : ranks) {
    if (!rank.running) continue;
    ::kill(rank.pid, SIGKILL);
    int status = 0;
    while (::waitpid(rank.pid, &status, 0) < 0 && errno == EINTR) {
    }
    rank.running = false;
  }
}

// Forks and execs /proc/self/exe as one rank. Only async-signal-safe calls run in the child.
pid_t start_rank(char* const* argv, char* const* envp, pid_t launcher) {
  int status_pipe[2];
  if (::pipe2(status_pipe, O_CLOEXEC) != 0) return -errno;
  pid_t pid;
  int fork_error = 0;
  {
    BlockSignals blocked;
    pid = ::fork();
    fork_error = errno;
    if (pid == 0) {
      struct sigaction default_action {};
      default_action.sa_handler = SIG_DFL;
      sigemptyset(&default_action.sa_mask);
      for (const int signal_number : SignalWatch::kSignals) ::sigaction(signal_number, &default_action, nullptr);
      sigset_t empty;
      sigemptyset(&empty);
      ::sigprocmask(SIG_SETMASK, &empty, nullptr);
      ::setpgid(0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != launcher) ::_exit(127);  // the launcher died before prctl took effect
      ::execve("/proc/self/exe", argv, envp);
      const int error = errno;
      [[maybe_unused]] const ssize_t written = ::write(status_pipe[1], &error, sizeof error);
      ::_exit(127);
    }
  }
  ::close(status_pipe[1]);
  if (pid < 0) {
    ::close(status_pipe[0]);
    return -fork_error;
  }
  ::setpgid(pid, pid);  // also here, so that it holds before any signal is forwarded
  int exec_error = 0;
  ssize_t count;
  do {
    count = ::read(status_pipe[0], &exec_error, sizeof exec_error);
  } while (count < 0 && errno == EINTR);
  ::close(status_pipe[0]);
  if (count == static_cast<ssize_t>(sizeof exec_error)) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return -exec_error;
  }
  return pid;
}

}  // namespace

void open_standard_streams() {
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
    const int opened = ::open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);  // takes the lowest free fd: this one
    if (opened >= 0 && opened != fd) ::close(opened);
  }
}

bool started_by_local_launcher() {
  const char* value = std::getenv("MASKGIT_LOCAL_LAUNCHER");
  return value != nullptr && std::strcmp(value, "1") == 0;
}

int run_local_ranks(int nproc, int argc, char** argv, bool threads_fixed, bool quiet) {
  if (nproc < 1 || nproc > 1024)
    throw InvalidArgument("nproc", fmt::format("is {}, must be from 1 to 1024", nproc));
  if (argc < 1 || argv == nullptr || argv[0] == nullptr)
    throw Error(ExitCode::failure, "cannot start the ranks: no program arguments");
  // A closed stderr would be taken by a rank's first socket, and progress lines sent into it.
  open_standard_streams();

  const int port = free_local_port();
  const char* omp = std::getenv("OMP_NUM_THREADS");
  std::optional<int> threads;
  if (!threads_fixed && omp == nullptr) threads = std::max(1, available_cpus() / nproc);

  // Every rank's environment, prepared before any fork.
  const std::vector<std::string> replaced = {"RANK",        "LOCAL_RANK",  "WORLD_SIZE",
                                             "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                                             "MASKGIT_LOCAL_LAUNCHER"};
  std::vector<std::string> inherited;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string text(*entry);
    const std::string name = text.substr(0, text.find('='));
    const bool replace = std::find(replaced.begin(), replaced.end(), name) != replaced.end() ||
                         (threads && name == "OMP_NUM_THREADS");
    if (!replace) inherited.push_back(text);
  }
  std::vector<std::vector<std::string>> environments(static_cast<size_t>(nproc), inherited);
  for (int i = 0; i < nproc; ++i) {
    auto& env = environments[static_cast<size_t>(i)];
    env.push_back(fmt::format("RANK={}", i));
    env.push_back(fmt::format("LOCAL_RANK={}", i));
    env.push_back(fmt::format("WORLD_SIZE={}", nproc));
    env.push_back(fmt::format("LOCAL_WORLD_SIZE={}", nproc));
    env.push_back("MASTER_ADDR=127.0.0.1");
    env.push_back(fmt::format("MASTER_PORT={}", port));
    env.push_back("MASKGIT_LOCAL_LAUNCHER=1");
    if (threads) env.push_back(fmt::format("OMP_NUM_THREADS={}", *threads));
  }
  std::vector<std::vector<char*>> envps(static_cast<size_t>(nproc));
  for (size_t i = 0; i < environments.size(); ++i) {
    for (std::string& text : environments[i]) envps[i].push_back(text.data());
    envps[i].push_back(nullptr);
  }
  std::vector<char*> arguments(argv, argv + argc);
  arguments.push_back(nullptr);

  if (!quiet)
    print_stderr("starting {} ranks (rendezvous at 127.0.0.1:{}{})\n", nproc, port,
                 threads ? fmt::format(", OMP_NUM_THREADS={} each", *threads) : std::string());

  SignalWatch watch;
  std::vector<Rank> ranks(static_cast<size_t>(nproc));
  const pid_t launcher = ::getpid();
  for (int i = 0; i < nproc; ++i) {
    const pid_t pid = start_rank(arguments.data(), envps[static_cast<size_t>(i)].data(), launcher);
    if (pid < 0) {
      kill_and_reap(ranks);
      throw Error(ExitCode::failure, fmt::format("cannot start rank {} of {} (/proc/self/exe): {}", i, nproc,
                                                 std::strerror(static_cast<int>(-pid))));
    }
    ranks[static_cast<size_t>(i)] = {pid, true};
  }

  int running = nproc;
  int interrupts = 0;
  bool ranks_interrupted = false;     // a rank exited with 130: it saved and stopped
  bool all_succeeded = true;          // every rank exited 0 (an interrupt came too late to matter)
  std::optional<int> failure_status;  // the first failing rank's
  std::optional<std::chrono::steady_clock::time_point> kill_at;
  bool killed = false;
  while (running > 0) {
    for (const int signal_number : watch.wait(100)) {
      if (signal_number != SIGINT && signal_number != SIGTERM) continue;
      ++interrupts;
      if (interrupts == 1) {
        signal_ranks(ranks, signal_number);
      } else if (!killed) {
        signal_ranks(ranks, SIGKILL);
        killed = true;
      }
    }
    for (int i = 0; i < nproc; ++i) {
      Rank& rank = ranks[static_cast<size_t>(i)];
      if (!rank.running) continue;
      int status = 0;
      const pid_t done = ::waitpid(rank.pid, &status, WNOHANG);
      if (done != rank.pid) continue;
      rank.running = false;
      --running;
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) all_succeeded = false;
      // 130: the rank was interrupted (a signal that reached it directly), saved and stopped,
      // as every rank does at the same step: not a failure, and no reason to end the others.
      if (WIFEXITED(status) && WEXITSTATUS(status) == static_cast<int>(ExitCode::interrupted)) {
        ranks_interrupted = true;
        continue;
      }
      const bool failed = WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0);
      // After an interrupt the launcher ends ranks itself (SIGKILL on a second one): those are
      // not reported; any other failure is, and decides the status.
      if (!failed || failure_status || (killed && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) continue;
      if (WIFSIGNALED(status)) {
        print_stderr("rank {} was killed by signal {}\n", i, signal_name(WTERMSIG(status)));
        failure_status = 128 + WTERMSIG(status);
      } else {
        print_stderr("rank {} exited with status {}\n", i, WEXITSTATUS(status));
        failure_status = WEXITSTATUS(status);
      }
      signal_ranks(ranks, SIGTERM);
      kill_at = std::chrono::steady_clock::now() + kGracePeriod;
    }
    if (kill_at && !killed && running > 0 && std::chrono::steady_clock::now() >= *kill_at) {
      signal_ranks(ranks, SIGKILL);
      killed = true;
    }
  }
  if (failure_status) return *failure_status;
  if (all_succeeded) return 0;
  if (interrupts > 0 || ranks_interrupted) return static_cast<int>(ExitCode::interrupted);
  return 0;
}

}  // namespace maskgit
