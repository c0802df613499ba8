// A child process for integration tests: started with argv, stdout readable line by line,
// stderr appended to a log file, stopped with a signal. The destructor kills what is left, so
// a failing test never leaves a server behind.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace latchkey::testing {

class child_process {
 public:
  /// Starts `argv[0]` (searched in PATH) with `argv`, in `cwd` if not empty.
  child_process(std::vector<std::string> argv, std::string stderr_path, std::string cwd = {});
  ~child_process();
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  /// The next line of stdout, or nullopt at EOF or after `timeout`.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout);

  /// Reads lines until one starts with `prefix`; returns it (or nullopt on EOF/timeout).
  std::optional<std::string> wait_for_line(const std::string& prefix,
                                           std::chrono::milliseconds timeout);

  /// Sends `sig` and waits for the exit; returns the exit status as from waitpid.
  int stop(int sig, std::chrono::milliseconds timeout = std::chrono::seconds(20));

  bool running();
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string buffer_;
  bool exited_ = false;
  int status_ = 0;
};

/// Runs a command to completion and returns (exit status, stdout).
std::pair<int, std::string> run_command(const std::vector<std::string>& argv,
                                        std::chrono::milliseconds timeout);

}  // namespace latchkey::testing
