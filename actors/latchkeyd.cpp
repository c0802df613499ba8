// latchkeyd: one Latchkey node. Loads the configuration and keys, checks them against the data
// directory without writing to it, then starts the actors and the HTTP gateway, and runs until
// SIGTERM or SIGINT. Start-up problems exit non-zero with one line that says what is wrong.

#include <netdb.h>
#include <signal.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "actors/runtime.hpp"
#include "config/options.hpp"
#include "net/gateway/gateway.hpp"

namespace fs = std::filesystem;
using namespace latchkey;

namespace {

int fail(const std::string& what) {
  std::cerr << "latchkeyd: " << what << std::endl;
  return 1;
}

// The admin bearer token: the file's contents without surrounding whitespace.
result<secret_string> read_admin_key(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in || fs::is_directory(path))
    return make_failure("admin_key_unreadable", "cannot read the admin key file " + path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string text = buffer.str();
  auto first = text.find_first_not_of(" \t\r\n");
  auto last = text.find_last_not_of(" \t\r\n");
  std::string key = first == std::string::npos ? "" : text.substr(first, last - first + 1);
  wipe_string(text);
  if (key.size() < 16)
    return make_failure("admin_key_invalid",
                        "the admin key in " + path + " must be at least 16 characters");
  return secret_string(std::move(key));
}

// Binds the gateway's address once and lets it go, so a taken port or a foreign address is
// reported before anything is created on disk. (The gateway binds again later; a port taken in
// between is still refused there.)
status check_listen_address(const options& opts) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  auto port = std::to_string(opts.http_port);
  if (getaddrinfo(opts.http_address.c_str(), port.c_str(), &hints, &found) != 0 || !found)
    return make_failure("bind_failed", "--http-address " + opts.http_address +
                                           " is not an address of this machine");
  int sock = socket(found->ai_family, found->ai_socktype, found->ai_protocol);
  int yes = 1;
  setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  bool bound = sock >= 0 && bind(sock, found->ai_addr, found->ai_addrlen) == 0;
  if (sock >= 0)
    close(sock);
  freeaddrinfo(found);
  if (!bound)
    return make_failure("bind_failed", "cannot listen on " + opts.http_address + ":" + port +
                                           " (address in use or not local?)");
  return ok_status();
}

// The data directory must be usable before anything is opened in it.
status check_data_dir(const std::string& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    if (!fs::create_directories(dir, ec) || ec)
      return make_failure("data_dir_unusable", "cannot create the data directory " + dir);
    return ok_status();
  }
  if (!fs::is_directory(dir, ec))
    return make_failure("data_dir_unusable", "the data directory " + dir + " is not a directory");
  if (access(dir.c_str(), R_OK | W_OK | X_OK) != 0)
    return make_failure("data_dir_unusable",
                        "the data directory " + dir + " is not readable and writable by this user");
  return ok_status();
}

// Checks the master key against an existing database opened read-only, so a wrong key file
// stops the start before a single byte is written.
status check_master_key_read_only(const std::string& dir, const master_key& kek) {
  std::error_code ec;
  if (!fs::exists(fs::path(dir) / "CURRENT", ec))
    return ok_status();  // a fresh directory
  auto db = store::open_read_only(dir);
  if (!db)
    return db.error();
  keyring keys(*db.value(), kek);
  return keys.check_master_key();
}

status setup_logging(const options& opts) {
  std::shared_ptr<spdlog::logger> logger;
  if (opts.log_file.empty()) {
    logger = spdlog::stderr_color_mt("latchkeyd");
  } else {
    // spdlog would create missing parent directories and throw on a directory path.
    std::error_code ec;
    auto parent = fs::path(opts.log_file).parent_path();
    if ((!parent.empty() && !fs::is_directory(parent, ec)) || fs::is_directory(opts.log_file, ec))
      return make_failure("log_file_unusable", "cannot write the log file " + opts.log_file +
                                                   " (missing directory, or it is a directory)");
    try {
      logger = spdlog::basic_logger_mt("latchkeyd", opts.log_file);
    } catch (const spdlog::spdlog_ex&) {
      return make_failure("log_file_unusable", "cannot open the log file " + opts.log_file);
    }
  }
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ %v");
  logger->set_level(spdlog::level::from_str(opts.log_level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  return ok_status();
}

}  // namespace

int main(int argc, char** argv) {
  // Plaintext secrets live in this process's memory: keep them out of core dumps.
  rlimit no_core{0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  // Data, keys and logs are this service's alone: files 0600, directories 0700.
  umask(077);

  auto opts = load_options(argc, argv);
  if (!opts) {
    if (opts.error().code == "help") {
      std::cout << opts.error().message << std::endl;
      return 0;
    }
    return fail(opts.error().message);
  }

  auto kek = master_key::load_file(opts->master_key_file, opts->master_key_version);
  if (!kek)
    return fail(kek.error().message);
  auto admin_key = read_admin_key(opts->admin_key_file);
  if (!admin_key)
    return fail(admin_key.error().message);
  if (auto listenable = check_listen_address(opts.value()); !listenable)
    return fail(listenable.error().message);
  if (auto usable = check_data_dir(opts->data_dir); !usable)
    return fail(usable.error().message);
  if (auto matches = check_master_key_read_only(opts->data_dir, kek.value()); !matches)
    return fail(matches.error().message);

  if (auto logging = setup_logging(opts.value()); !logging)
    return fail(logging.error().message);

  // Block the stop signals before any thread starts, then wait for one below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto rt = runtime::start(opts.value(), std::move(kek).value());
  if (!rt)
    return fail(rt.error().message);
  gateway http(*rt.value(), std::move(admin_key).value());
  auto port = http.start();
  if (!port)
    return fail(port.error().message);
  // Scripts wait for this line to know the node is ready and which port it took.
  std::cout << "latchkeyd ready port=" << port.value() << std::endl;

  int received = 0;
  sigwait(&stop_signals, &received);
  spdlog::info("received {}, shutting down: pending tasks stay on disk", strsignal(received));
  http.begin_shutdown();
  http.stop();
  rt.value()->stop();
  return 0;
}
