// The daemon's configuration: one declared schema, read from an optional TOML file
// (--config=FILE) and then from the command line, where every option can be set as
// --name=value (the command line wins). Unknown keys and bad values are rejected at start-up
// with one line that names the option. Secrets are never options: they are read from the
// files the *_file options name.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "persistence/result.hpp"

namespace latchkey {

struct options {
  // Storage and keys.
  std::string data_dir;         // required; created if missing
  std::string master_key_file;  // required; 32 random bytes in base64
  std::uint32_t master_key_version = 1;
  std::string admin_key_file;  // required; the admin bearer token (at least 16 bytes)

  // HTTP gateway.
  std::string http_address = "127.0.0.1";
  std::uint16_t http_port = 8080;
  int http_threads = 8;
  std::size_t max_body_bytes = 1024 * 1024;
  std::chrono::milliseconds request_timeout{10000};  // how long a route waits for actors

  // Outbound calls (token endpoints and task actions).
  int outbound_threads = 8;
  std::chrono::milliseconds outbound_timeout{15000};

  // Tasks.
  int max_attempts = 5;
  std::chrono::milliseconds retry_base_delay{2000};
  std::chrono::milliseconds retry_max_delay{600000};
  int max_tasks_per_user = 10000;
  std::chrono::seconds token_min_lifetime{30};  // refresh when less life than this is left

  // Logging.
  std::string log_level = "info";  // trace, debug, info, warn, error
  std::string log_file;            // empty: standard error
};

/// One declared option, for --help and docs/configuration.md.
struct option_doc {
  std::string name;
  std::string type;
  std::string default_value;
  std::string description;
};

/// Every option with its type, default and description, in the order of `options`.
const std::vector<option_doc>& option_docs();

/// Parses argv (and the TOML file named by --config, if any). "--help" yields failure code
/// "help" whose message is the help text. Other failure code: "invalid_config", with a
/// one-line message naming the option and what is wrong.
result<options> load_options(int argc, const char* const* argv);

/// The options table as Markdown (name, type, default, description).
std::string options_markdown();

/// The text of config/latchkey.example.toml: every option with a comment and its default
/// (and a sample path for each required option), so that the file cannot drift.
std::string options_example_toml();

}  // namespace latchkey
