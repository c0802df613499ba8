// Every option is declared once, in schema() below. The command line, the TOML reader,
// --help, option_docs(), options_markdown() and options_example_toml() are all derived from
// that table, so an option cannot be documented without being parsed, or the reverse.
//
// Error messages name the option but never echo a value that could be a secret: numbers
// are shown, text is not, and a TOML syntax error reports only its position, because an
// operator may have pasted a key into the wrong place.
#include "config/options.hpp"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>
#include <sstream>
#include <string_view>
#include <system_error>

#include <toml++/toml.h>
#include <CLI/CLI.hpp>

namespace latchkey {
namespace {

// Both sources hand a setter the value as text, so the file and the command line share one
// validation path and one set of messages. The kind says which TOML type a key must have.
enum class value_kind { text, integer };

struct option_spec {
  std::string name;  // TOML key; the command line spells it with dashes
  value_kind kind;
  std::string metavar;  // placeholder shown by --help
  std::string type;     // for the docs, including the accepted range
  std::string description;
  bool required = false;
  std::string example;  // TOML literal the example file uses for a required option

  // The field's value as a TOML literal.
  std::function<std::string(const options&)> show;

  // Parses `text` into the field; returns what is wrong with it, or nothing.
  std::function<std::optional<std::string>(options&, std::string_view)> set;
};

using problem = std::optional<std::string>;

std::string toml_string(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
    }
    out += c;
  }
  return out + "\"";
}

option_spec text_option(std::string name, std::string metavar, std::string type,
                        std::string options::*field, bool allow_empty, std::string description) {
  option_spec spec;
  spec.name = std::move(name);
  spec.kind = value_kind::text;
  spec.metavar = std::move(metavar);
  spec.type = std::move(type);
  spec.description = std::move(description);
  spec.show = [field](const options& o) { return toml_string(o.*field); };
  spec.set = [field, allow_empty](options& o, std::string_view text) -> problem {
    if (text.empty() && !allow_empty) {
      return "must not be empty";
    }
    o.*field = std::string(text);
    return std::nullopt;
  };
  return spec;
}

// A path the daemon cannot start without; it has no default, so the example file shows one.
option_spec required_path(std::string name, std::string metavar, std::string options::*field,
                          std::string example, std::string description) {
  option_spec spec = text_option(std::move(name), std::move(metavar), "path", field,
                                 /*allow_empty=*/false, std::move(description));
  spec.required = true;
  spec.example = toml_string(example);
  return spec;
}

option_spec choice_option(std::string name, std::string metavar, std::string options::*field,
                          std::vector<std::string> choices, std::string description) {
  std::string listed;
  for (const auto& choice : choices) {
    listed += (listed.empty() ? "" : ", ") + choice;
  }
  option_spec spec = text_option(std::move(name), std::move(metavar), "one of " + listed, field,
                                 /*allow_empty=*/false, std::move(description));
  spec.set = [field, choices, listed](options& o, std::string_view text) -> problem {
    for (const auto& choice : choices) {
      if (text == choice) {
        o.*field = choice;
        return std::nullopt;
      }
    }
    return "must be one of " + listed;
  };
  return spec;
}

// Accepts only plain decimal digits with an optional minus sign: no spaces, no unit suffix,
// no hex, so that "10s" in a *_ms option is an error rather than a silent 10.
problem parse_integer(std::string_view text, std::int64_t min, std::int64_t max,
                      std::int64_t& out) {
  const std::string range = "between " + std::to_string(min) + " and " + std::to_string(max);
  std::int64_t value = 0;
  const char* end = text.data() + text.size();
  auto [stop, error] = std::from_chars(text.data(), end, value);
  if (error == std::errc::result_out_of_range) {
    return "must be " + range;
  }
  if (text.empty() || error != std::errc{} || stop != end) {
    return "must be an integer " + range;
  }
  if (value < min || value > max) {
    return "must be " + range + ", got " + std::to_string(value);
  }
  out = value;
  return std::nullopt;
}

std::string integer_type(const std::string& unit, std::int64_t min, std::int64_t max) {
  return (unit.empty() ? "integer" : unit) + ", " + std::to_string(min) + " to " +
         std::to_string(max);
}

// An integer option; `get` and `put` convert between the field and its integer value.
template <class Get, class Put>
option_spec integer_spec(std::string name, std::string metavar, std::string unit, std::int64_t min,
                         std::int64_t max, std::string description, Get get, Put put) {
  option_spec spec;
  spec.name = std::move(name);
  spec.kind = value_kind::integer;
  spec.metavar = std::move(metavar);
  spec.type = integer_type(unit, min, max);
  spec.description = std::move(description);
  spec.show = [get](const options& o) { return std::to_string(get(o)); };
  spec.set = [put, min, max](options& o, std::string_view text) -> problem {
    std::int64_t value = 0;
    if (auto wrong = parse_integer(text, min, max, value))
      return wrong;
    put(o, value);
    return std::nullopt;
  };
  return spec;
}

template <class Int>
option_spec integer_option(std::string name, std::string metavar, std::string unit,
                           Int options::*field, std::int64_t min, std::int64_t max,
                           std::string description) {
  return integer_spec(
      std::move(name), std::move(metavar), std::move(unit), min, max, std::move(description),
      [field](const options& o) { return o.*field; },
      [field](options& o, std::int64_t v) { o.*field = static_cast<Int>(v); });
}

// Durations are plain integers whose unit is part of the option's name (`_ms`, `_s`), so a
// value never needs a suffix and a reader of the file never has to guess the unit.
template <class Rep, class Period>
option_spec duration_option(std::string name, std::string metavar, std::string unit,
                            std::chrono::duration<Rep, Period> options::*field, std::int64_t min,
                            std::int64_t max, std::string description) {
  return integer_spec(
      std::move(name), std::move(metavar), std::move(unit), min, max, std::move(description),
      [field](const options& o) { return (o.*field).count(); },
      [field](options& o, std::int64_t v) { o.*field = std::chrono::duration<Rep, Period>(v); });
}

constexpr std::int64_t kib = 1024;
constexpr std::int64_t mib = 1024 * kib;
constexpr std::int64_t one_hour_ms = 60 * 60 * 1000;
constexpr std::int64_t one_day_ms = 24 * one_hour_ms;

// The one declaration of every option, in the order of the fields of `options`. Limits are
// generous sanity bounds: they catch a typo (an extra zero, a value in the wrong unit), not
// tuning choices.
const std::vector<option_spec>& schema() {
  static const std::vector<option_spec> specs = [] {
    std::vector<option_spec> s;

    s.push_back(required_path("data_dir", "DIR", &options::data_dir, "/var/lib/latchkey",
                              "Directory holding the encrypted token store and task state; "
                              "created if missing."));
    s.push_back(required_path("master_key_file", "FILE", &options::master_key_file,
                              "/etc/latchkey/master.key",
                              "File holding the master key (32 random bytes in base64) that "
                              "encrypts stored tokens."));
    s.push_back(integer_option("master_key_version", "N", "", &options::master_key_version, 1,
                               std::numeric_limits<std::uint32_t>::max(),
                               "Version number of the key in master_key_file, recorded in every "
                               "wrapped data key. Must match the data directory: rotating the "
                               "master key (rewrapping) is not supported yet."));
    s.push_back(required_path("admin_key_file", "FILE", &options::admin_key_file,
                              "/etc/latchkey/admin.key",
                              "File holding the admin bearer token (at least 16 bytes)."));

    s.push_back(text_option("http_address", "ADDR", "string", &options::http_address,
                            /*allow_empty=*/false, "Address the HTTP gateway listens on."));
    s.push_back(integer_option("http_port", "PORT", "", &options::http_port, 0, 65535,
                               "TCP port the HTTP gateway listens on; 0 picks a free one and "
                               "prints it in the ready line."));
    s.push_back(integer_option("http_threads", "N", "", &options::http_threads, 1, 256,
                               "Threads serving HTTP requests."));
    s.push_back(integer_option("max_body_bytes", "BYTES", "bytes", &options::max_body_bytes, kib,
                               64 * mib, "Largest request body accepted."));
    s.push_back(duration_option("request_timeout_ms", "MS", "milliseconds",
                                &options::request_timeout, 1, one_hour_ms,
                                "How long an HTTP route waits for an answer from the actors."));

    s.push_back(integer_option("outbound_threads", "N", "", &options::outbound_threads, 1, 256,
                               "Threads making outbound calls (token endpoints, task actions)."));
    s.push_back(duration_option("outbound_timeout_ms", "MS", "milliseconds",
                                &options::outbound_timeout, 1, one_hour_ms,
                                "Time limit for one outbound call."));

    s.push_back(integer_option("max_attempts", "N", "", &options::max_attempts, 1, 100,
                               "How many times a task run is tried before it counts as failed."));
    s.push_back(duration_option("retry_base_delay_ms", "MS", "milliseconds",
                                &options::retry_base_delay, 1, one_day_ms,
                                "Delay before the first retry of a failed attempt; later "
                                "retries wait longer."));
    s.push_back(duration_option("retry_max_delay_ms", "MS", "milliseconds",
                                &options::retry_max_delay, 1, one_day_ms,
                                "Longest delay between two attempts; at least "
                                "retry_base_delay_ms."));
    s.push_back(integer_option("max_tasks_per_user", "N", "", &options::max_tasks_per_user, 1,
                               10'000'000, "Most scheduled tasks one user may have."));
    s.push_back(duration_option("token_min_lifetime_s", "SECONDS", "seconds",
                                &options::token_min_lifetime, 0, 24 * 60 * 60,
                                "An access token with less life left than this is refreshed "
                                "before use."));

    s.push_back(choice_option("log_level", "LEVEL", &options::log_level,
                              {"trace", "debug", "info", "warn", "error"},
                              "Least severe log level written."));
    s.push_back(text_option("log_file", "FILE", "path", &options::log_file, /*allow_empty=*/true,
                            "File logs are written to; empty means standard error."));
    return s;
  }();
  return specs;
}

std::string cli_name(std::string_view name) {
  std::string out = "--";
  for (char c : name) {
    out += c == '_' ? '-' : c;
  }
  return out;
}

const option_spec* find_spec(std::string_view name) {
  for (const auto& spec : schema()) {
    if (spec.name == name) {
      return &spec;
    }
  }
  return nullptr;
}

// Keeps an identifier that came from outside (an unknown key, a path) on one short line.
std::string printable(std::string_view text, std::size_t limit = 256) {
  std::string out;
  for (char c : text.substr(0, limit)) {
    const auto byte = static_cast<unsigned char>(c);
    out += byte < 0x20 || byte == 0x7f ? '?' : c;
  }
  return text.size() > limit ? out + "..." : out;
}

failure invalid(std::string message) {
  for (char& c : message) {
    if (c == '\n' || c == '\r') {
      c = ' ';
    }
  }
  return make_failure("invalid_config", std::move(message));
}

std::string default_text(const option_spec& spec) {
  return spec.required ? "(required)" : spec.show(options{});
}

std::string toml_type_name(toml::node_type type) {
  switch (type) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a floating-point number";
    case toml::node_type::boolean:
      return "a boolean";
    default:
      return "a date or time";
  }
}

std::string toml_unknown_key(std::string_view key, const toml::node& node,
                             const std::string& where) {
  std::string message = "unknown option '" + printable(key, 64) + "'" + where;
  std::string underscored;
  for (char c : key) {
    underscored += c == '-' ? '_' : c;
  }
  if (node.is_table()) {
    message += "; sections are not supported, every key is top-level";
  } else if (underscored != key && find_spec(underscored) != nullptr) {
    message += "; the config file spells it " + underscored;
  }
  return message;
}

failure toml_syntax_failure(const std::string& path, const toml::source_region& where) {
  return invalid("--config: " + printable(path) + " is not valid TOML (line " +
                 std::to_string(where.begin.line) + ", column " +
                 std::to_string(where.begin.column) + ")");
}

// Reads the file named by --config into `into`, marking each key it sets in `seen`.
status apply_toml(const std::string& path, options& into, std::vector<bool>& seen) {
  // Read it ourselves so that an unreadable file and a syntax error get different messages.
  std::error_code ignored;
  if (std::filesystem::is_directory(path, ignored)) {
    return invalid("--config: cannot read " + printable(path) + ": it is a directory");
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (!in || in.bad()) {
    return invalid("--config: cannot read " + printable(path));
  }

  // toml++ reports syntax errors by exception or by value depending on how it was built.
  toml::table table;
#if TOML_EXCEPTIONS
  try {
    table = toml::parse(buffer.str(), path);
  } catch (const toml::parse_error& e) {
    return toml_syntax_failure(path, e.source());
  }
#else
  toml::parse_result parsed = toml::parse(buffer.str(), path);
  if (!parsed) {
    return toml_syntax_failure(path, parsed.error().source());
  }
  table = std::move(parsed).table();
#endif

  // Each key goes through the same setter as its command-line twin.
  const std::string where = " (in " + printable(path) + ")";
  for (auto&& [key, node] : table) {
    const option_spec* spec = find_spec(key.str());
    if (spec == nullptr) {
      return invalid(toml_unknown_key(key.str(), node, where));
    }
    const std::string named = spec->name + where;
    std::string text;
    if (spec->kind == value_kind::text) {
      if (!node.is_string()) {
        return invalid(named + ": must be a string, not " + toml_type_name(node.type()));
      }
      text = *node.value<std::string>();
    } else {
      if (!node.is_integer()) {
        return invalid(named + ": must be an integer, not " + toml_type_name(node.type()));
      }
      text = std::to_string(*node.value<std::int64_t>());
    }
    if (auto wrong = spec->set(into, text)) {
      return invalid(named + ": " + *wrong);
    }
    seen[static_cast<std::size_t>(spec - schema().data())] = true;
  }
  return ok_status();
}

// Names what CLI11 left over without echoing a value: "--master-key=..." must not print the
// key, and a stray positional argument may be anything.
failure unexpected_argument(const std::vector<std::string>& extras) {
  const std::string& first = extras.front();
  if (first.size() < 2 || first[0] != '-' || first == "--") {
    return invalid("unexpected argument; every option is written --name=value or --name value");
  }
  const std::string name = first.substr(0, first.find('='));
  std::string message = "unknown option " + printable(name, 64);
  std::string underscored;
  for (char c : name.substr(std::min(name.find_first_not_of('-'), name.size()))) {
    underscored += c == '-' ? '_' : c;
  }
  if (const option_spec* spec = find_spec(underscored); spec && cli_name(spec->name) != name) {
    message += "; the command line spells it " + cli_name(spec->name);
  }
  return invalid(message);
}

std::string cli_description(const option_spec& spec) {
  const std::string status = spec.required ? "required" : "default " + default_text(spec);
  return spec.description + " [" + spec.type + "; " + status + "]";
}

result<options> load(int argc, const char* const* argv) {
  const std::vector<option_spec>& specs = schema();

  // Declare every option to CLI11; values are kept as text and applied after the file.
  CLI::App app{"latchkeyd keeps OAuth refresh tokens encrypted and runs scheduled agent tasks.",
               "latchkeyd"};
  app.allow_extras();
  app.footer(
      "Every option can also be set in the TOML file named by --config, spelled with "
      "underscores (data_dir = \"...\"); the command line wins over the file. Durations are "
      "integers in the unit their name ends with (_ms, _s). See docs/configuration.md.");
  std::string config_path;
  CLI::Option* config_option =
      app.add_option("--config", config_path, "TOML file read before the command line")
          ->type_name("FILE")
          ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  std::vector<std::string> raw(specs.size());
  std::vector<CLI::Option*> given(specs.size());
  for (std::size_t i = 0; i < specs.size(); ++i) {
    given[i] = app.add_option(cli_name(specs[i].name), raw[i], cli_description(specs[i]))
                   ->type_name(specs[i].metavar)
                   ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  }

  // Parse the command line. CLI11 wants the arguments last first, without argv[0]; building
  // the list here keeps argc == 0 safe, which CLI11's own argc/argv overload is not.
  std::vector<std::string> args;
  for (int i = argc - 1; i > 0; --i) {
    args.emplace_back(argv[i]);
  }
  try {
    app.parse(std::move(args));
  } catch (const CLI::CallForHelp&) {
    return make_failure("help", app.help());
  } catch (const CLI::ParseError& e) {
    return invalid(e.what());
  }
  if (!app.remaining().empty()) {
    return unexpected_argument(app.remaining());
  }

  // CLI11 lets a required value swallow the next argument ("--data-dir --http-port=1");
  // no option legitimately takes a value that starts with "--".
  for (std::size_t i = 0; i < specs.size(); ++i) {
    if (given[i]->count() > 0 && raw[i].rfind("--", 0) == 0) {
      return invalid(cli_name(specs[i].name) + ": missing value");
    }
  }
  if (config_option->count() > 0 && config_path.rfind("--", 0) == 0) {
    return invalid("--config: missing value");
  }

  // The file first, then the command line over it.
  options loaded;
  std::vector<bool> seen(specs.size(), false);
  if (config_option->count() > 0) {
    if (status read = apply_toml(config_path, loaded, seen); !read) {
      return read.error();
    }
  }
  for (std::size_t i = 0; i < specs.size(); ++i) {
    if (given[i]->count() == 0) {
      continue;
    }
    if (auto wrong = specs[i].set(loaded, raw[i])) {
      return invalid(cli_name(specs[i].name) + ": " + *wrong);
    }
    seen[i] = true;
  }

  // Checks that need the merged result.
  for (std::size_t i = 0; i < specs.size(); ++i) {
    if (specs[i].required && !seen[i]) {
      return invalid("missing required option " + cli_name(specs[i].name));
    }
  }
  if (loaded.retry_base_delay > loaded.retry_max_delay) {
    return invalid("--retry-base-delay-ms (" + std::to_string(loaded.retry_base_delay.count()) +
                   ") must not exceed --retry-max-delay-ms (" +
                   std::to_string(loaded.retry_max_delay.count()) + ")");
  }
  return loaded;
}

}  // namespace

const std::vector<option_doc>& option_docs() {
  static const std::vector<option_doc> docs = [] {
    std::vector<option_doc> out;
    for (const auto& spec : schema()) {
      out.push_back({spec.name, spec.type, default_text(spec), spec.description});
    }
    return out;
  }();
  return docs;
}

result<options> load_options(int argc, const char* const* argv) {
  // CLI11, toml++ and the standard library throw; start-up wants one line and an exit code.
  try {
    return load(argc, argv);
  } catch (const std::exception& e) {
    return invalid(std::string("cannot read options: ") + e.what());
  } catch (...) {
    return invalid("cannot read options: unexpected error");
  }
}

std::string options_markdown() {
  std::string out =
      "| TOML key | Command line | Type | Default | Description |\n"
      "|---|---|---|---|---|\n";
  for (const auto& spec : schema()) {
    const std::string shown = default_text(spec);
    out += "| `" + spec.name + "` | `" + cli_name(spec.name) + "=" + spec.metavar + "` | " +
           spec.type + " | " + (spec.required ? shown : "`" + shown + "`") + " | " +
           spec.description + " |\n";
  }
  return out;
}

std::string options_example_toml() {
  std::string out =
      "# Example configuration for latchkeyd, generated from the option table in\n"
      "# config/options.cpp. Every option is listed with its default; the three paths marked\n"
      "# required have no default and must be set. Load it with --config=FILE; options given\n"
      "# on the command line (--http-port=9000) override what is set here.\n";
  for (const auto& spec : schema()) {
    out += "\n# " + spec.description + "\n# " + spec.type;
    out += spec.required ? ", required\n" : "\n";
    out += spec.name + " = " + (spec.required ? spec.example : spec.show(options{})) + "\n";
  }
  return out;
}

}  // namespace latchkey
