#include "config/options.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace latchkey {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

const std::filesystem::path repo_root =
    std::filesystem::path(LATCHKEY_CASES_DIR).parent_path().parent_path();

// Runs load_options as the daemon would, with a program name in front.
result<options> load(std::vector<std::string> args) {
  args.insert(args.begin(), "latchkeyd");
  std::vector<const char*> argv;
  for (const auto& arg : args) {
    argv.push_back(arg.c_str());
  }
  argv.push_back(nullptr);
  return load_options(static_cast<int>(args.size()), argv.data());
}

const std::vector<std::string> required_args = {"--data-dir=/srv/lk", "--master-key-file=/k/master",
                                                "--admin-key-file=/k/admin"};

std::vector<std::string> with_required(std::vector<std::string> args) {
  args.insert(args.begin(), required_args.begin(), required_args.end());
  return args;
}

// A file in the test's temporary directory, named after the test so tests do not collide.
std::string write_temp(const std::string& text) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::filesystem::path path = std::filesystem::path(::testing::TempDir()) /
                                     (std::string("latchkey_") + info->name() + ".toml");
  std::ofstream(path, std::ios::binary) << text;
  return path.string();
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Golden files are rewritten instead of compared when this is set, after a schema change.
bool updating_golden_files() {
  return std::getenv("LATCHKEY_UPDATE_GOLDEN") != nullptr;
}

void expect_same(const options& actual, const options& expected) {
  EXPECT_EQ(actual.data_dir, expected.data_dir);
  EXPECT_EQ(actual.master_key_file, expected.master_key_file);
  EXPECT_EQ(actual.master_key_version, expected.master_key_version);
  EXPECT_EQ(actual.admin_key_file, expected.admin_key_file);
  EXPECT_EQ(actual.http_address, expected.http_address);
  EXPECT_EQ(actual.http_port, expected.http_port);
  EXPECT_EQ(actual.http_threads, expected.http_threads);
  EXPECT_EQ(actual.max_body_bytes, expected.max_body_bytes);
  EXPECT_EQ(actual.request_timeout, expected.request_timeout);
  EXPECT_EQ(actual.outbound_threads, expected.outbound_threads);
  EXPECT_EQ(actual.outbound_timeout, expected.outbound_timeout);
  EXPECT_EQ(actual.max_attempts, expected.max_attempts);
  EXPECT_EQ(actual.retry_base_delay, expected.retry_base_delay);
  EXPECT_EQ(actual.retry_max_delay, expected.retry_max_delay);
  EXPECT_EQ(actual.max_tasks_per_user, expected.max_tasks_per_user);
  EXPECT_EQ(actual.token_min_lifetime, expected.token_min_lifetime);
  EXPECT_EQ(actual.log_level, expected.log_level);
  EXPECT_EQ(actual.log_file, expected.log_file);
}

// Every option set to something other than its default, as (TOML key, value) pairs with the
// value spelled for the command line, and the options that should result.
struct every_option {
  std::vector<std::pair<std::string, std::string>> values = {
      {"data_dir", "/srv/latchkey"},
      {"master_key_file", "/etc/lk/master.key"},
      {"master_key_version", "3"},
      {"admin_key_file", "/etc/lk/admin.key"},
      {"http_address", "0.0.0.0"},
      {"http_port", "9443"},
      {"http_threads", "4"},
      {"max_body_bytes", "65536"},
      {"request_timeout_ms", "2500"},
      {"outbound_threads", "16"},
      {"outbound_timeout_ms", "30000"},
      {"max_attempts", "7"},
      {"retry_base_delay_ms", "500"},
      {"retry_max_delay_ms", "60000"},
      {"max_tasks_per_user", "250"},
      {"token_min_lifetime_s", "120"},
      {"log_level", "debug"},
      {"log_file", "/var/log/latchkey.log"},
  };

  options expected() const {
    options o;
    o.data_dir = "/srv/latchkey";
    o.master_key_file = "/etc/lk/master.key";
    o.master_key_version = 3;
    o.admin_key_file = "/etc/lk/admin.key";
    o.http_address = "0.0.0.0";
    o.http_port = 9443;
    o.http_threads = 4;
    o.max_body_bytes = 65536;
    o.request_timeout = 2500ms;
    o.outbound_threads = 16;
    o.outbound_timeout = 30000ms;
    o.max_attempts = 7;
    o.retry_base_delay = 500ms;
    o.retry_max_delay = 60000ms;
    o.max_tasks_per_user = 250;
    o.token_min_lifetime = 120s;
    o.log_level = "debug";
    o.log_file = "/var/log/latchkey.log";
    return o;
  }
};

std::string dashed(std::string name) {
  for (char& c : name) {
    c = c == '_' ? '-' : c;
  }
  return "--" + name;
}

bool is_text_option(const std::string& name) {
  for (const auto& doc : option_docs()) {
    if (doc.name == name) {
      return doc.type == "path" || doc.type == "string" || doc.type.rfind("one of", 0) == 0;
    }
  }
  return false;
}

// Asserts a rejection: the right code, one line, and the option named.
void expect_invalid(const result<options>& loaded, const std::string& named) {
  ASSERT_FALSE(loaded.ok()) << "accepted, expected an error naming " << named;
  EXPECT_EQ(loaded.error().code, "invalid_config");
  EXPECT_THAT(loaded.error().message, HasSubstr(named));
  EXPECT_EQ(loaded.error().message.find('\n'), std::string::npos) << loaded.error().message;
}

// Only the required options given: everything else keeps the defaults declared in options.
TEST(load_options, returns_defaults_when_only_required_options_given) {
  auto loaded = load(required_args);

  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  options expected;
  expected.data_dir = "/srv/lk";
  expected.master_key_file = "/k/master";
  expected.admin_key_file = "/k/admin";
  expect_same(*loaded, expected);
}

// External tools start the daemon with exactly these flags; they must keep working.
TEST(load_options, accepts_launcher_flags_when_spelled_exactly) {
  auto loaded = load({"--data-dir=/d", "--http-address=10.0.0.1", "--http-port=18080",
                      "--master-key-file=/m", "--admin-key-file=/a"});

  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ(loaded->data_dir, "/d");
  EXPECT_EQ(loaded->http_address, "10.0.0.1");
  EXPECT_EQ(loaded->http_port, 18080);
  EXPECT_EQ(loaded->master_key_file, "/m");
  EXPECT_EQ(loaded->admin_key_file, "/a");
}

// Every option reaches its own field when written --name=value.
TEST(load_options, sets_every_field_when_given_with_equals) {
  every_option all;
  std::vector<std::string> args;
  for (const auto& [name, value] : all.values) {
    args.push_back(dashed(name) + "=" + value);
  }

  auto loaded = load(args);

  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  expect_same(*loaded, all.expected());
}

// Every option reaches its own field when written --name value.
TEST(load_options, sets_every_field_when_given_as_separate_argument) {
  every_option all;
  std::vector<std::string> args;
  for (const auto& [name, value] : all.values) {
    args.push_back(dashed(name));
    args.push_back(value);
  }

  auto loaded = load(args);

  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  expect_same(*loaded, all.expected());
}

// The tests above cover the whole schema, so a new option cannot go untested.
TEST(option_docs, lists_exactly_the_options_the_tests_set_when_compared) {
  std::vector<std::string> declared;
  for (const auto& doc : option_docs()) {
    declared.push_back(doc.name);
  }

  std::vector<std::string> tested;
  for (const auto& [name, value] : every_option{}.values) {
    tested.push_back(name);
  }
  EXPECT_EQ(declared, tested);
}

// Every option reaches its own field from the TOML file too.
TEST(load_options, sets_every_field_when_read_from_config_file) {
  every_option all;
  std::string toml;
  for (const auto& [name, value] : all.values) {
    toml += name + " = " + (is_text_option(name) ? "\"" + value + "\"" : value) + "\n";
  }
  const std::string path = write_temp(toml);

  auto loaded = load({"--config=" + path});

  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  expect_same(*loaded, all.expected());
}

// The command line wins over the file; what the command line leaves alone comes from the file.
TEST(load_options, prefers_command_line_when_file_sets_same_option) {
  const std::string path = write_temp(
      "data_dir = \"/from/file\"\n"
      "http_port = 9000\n"
      "log_level = \"warn\"\n");

  auto loaded =
      load({"--config", path, "--http-port=9100", "--master-key-file=/m", "--admin-key-file=/a"});

  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ(loaded->http_port, 9100);
  EXPECT_EQ(loaded->data_dir, "/from/file");
  EXPECT_EQ(loaded->log_level, "warn");
}

// The file is read before the command line even when --config comes last.
TEST(load_options, prefers_command_line_when_config_given_last) {
  const std::string path = write_temp("http_threads = 2\n");

  auto loaded = load(with_required({"--http-threads=3", "--config=" + path}));

  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ(loaded->http_threads, 3);
}

// A wrapper script may append an override; the last value of a repeated option wins.
TEST(load_options, keeps_last_value_when_option_repeated) {
  auto loaded = load(with_required({"--http-port=1000", "--http-port", "2000"}));

  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ(loaded->http_port, 2000);
}

// --help is not an error for the operator, but the daemon must not start: its own code.
TEST(load_options, returns_help_text_when_help_requested) {
  auto loaded = load({"--help"});

  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.error().code, "help");
  EXPECT_THAT(loaded.error().message, HasSubstr("Usage"));
  for (const auto& doc : option_docs()) {
    EXPECT_THAT(loaded.error().message, HasSubstr(dashed(doc.name)));
  }
  EXPECT_THAT(loaded.error().message, HasSubstr("--config"));
}

// An unknown option is named without its value, which might be a key pasted on the command line.
TEST(load_options, rejects_unknown_option_when_given_on_command_line) {
  auto loaded = load(with_required({"--master-key=c2VjcmV0LWtleS1ieXRlcw=="}));

  expect_invalid(loaded, "unknown option --master-key");
  EXPECT_THAT(loaded.error().message, Not(HasSubstr("c2VjcmV0")));

  auto spaced = load(with_required({"--master-key", "c2VjcmV0LWtleS1ieXRlcw=="}));

  expect_invalid(spaced, "unknown option --master-key");
  EXPECT_THAT(spaced.error().message, Not(HasSubstr("c2VjcmV0")));
}

// The TOML spelling on the command line is rejected, with the right spelling suggested.
TEST(load_options, rejects_underscored_name_when_given_on_command_line) {
  auto loaded = load(with_required({"--http_port=9000"}));

  expect_invalid(loaded, "--http_port");
  EXPECT_THAT(loaded.error().message, HasSubstr("--http-port"));
}

// Odd spellings that are neither an option nor a value are still named, not a crash.
TEST(load_options, rejects_malformed_option_when_only_dashes) {
  expect_invalid(load(with_required({"---"})), "unknown option ---");
  expect_invalid(load(with_required({"-"})), "unexpected argument");
}

// A stray positional argument is rejected without being echoed.
TEST(load_options, rejects_positional_argument_when_given) {
  auto loaded = load(with_required({"stray-value-123"}));

  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.error().code, "invalid_config");
  EXPECT_THAT(loaded.error().message, Not(HasSubstr("stray-value-123")));
}

// An unknown key in the file is named, and its value is not echoed.
TEST(load_options, rejects_unknown_key_when_read_from_config_file) {
  const std::string path = write_temp("admin_key = \"c2VjcmV0LWtleS1ieXRlcw==\"\n");

  auto loaded = load(with_required({"--config=" + path}));

  expect_invalid(loaded, "admin_key");
  EXPECT_THAT(loaded.error().message, HasSubstr(path));
  EXPECT_THAT(loaded.error().message, Not(HasSubstr("c2VjcmV0")));
}

// The command-line spelling in the file is rejected, with the right spelling suggested.
TEST(load_options, rejects_dashed_key_when_read_from_config_file) {
  const std::string path = write_temp("http-port = 9000\n");

  auto loaded = load(with_required({"--config=" + path}));

  expect_invalid(loaded, "http-port");
  EXPECT_THAT(loaded.error().message, HasSubstr("http_port"));
}

// Keys are flat: a [section] is an unknown key, with a hint why.
TEST(load_options, rejects_section_when_read_from_config_file) {
  const std::string path = write_temp("[http]\nport = 9000\n");

  auto loaded = load(with_required({"--config=" + path}));

  expect_invalid(loaded, "'http'");
  EXPECT_THAT(loaded.error().message, HasSubstr("sections"));
}

// Integers are plain digits: words, units and fractions are rejected with the option named.
TEST(load_options, rejects_bad_integer_when_given_on_command_line) {
  for (const std::string value : {"abc", "", "10s", " 5", "5 ", "0x10", "1.5", "+5"}) {
    SCOPED_TRACE(value);

    auto loaded = load(with_required({"--request-timeout-ms", value}));

    expect_invalid(loaded, "--request-timeout-ms");
  }
}

// An integer too large for 64 bits is out of range, not a crash or a wrap-around.
TEST(load_options, rejects_overflowing_integer_when_given_on_command_line) {
  auto loaded = load(with_required({"--http-port=99999999999999999999999"}));

  expect_invalid(loaded, "--http-port");
}

// A TOML value of the wrong type is rejected rather than converted.
TEST(load_options, rejects_wrong_toml_type_when_read_from_config_file) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"http_port = \"8080\"\n", "http_port"},   {"http_threads = 4.0\n", "http_threads"},
      {"log_level = 3\n", "log_level"},          {"http_address = [\"a\"]\n", "http_address"},
      {"max_attempts = true\n", "max_attempts"},
  };
  for (const auto& [toml, named] : cases) {
    SCOPED_TRACE(toml);
    const std::string path = write_temp(toml);

    auto loaded = load(with_required({"--config=" + path}));

    expect_invalid(loaded, named);
  }
}

// Each range is enforced at both ends, from either source, and its bounds are accepted.
TEST(load_options, rejects_value_when_out_of_range) {
  struct bound {
    std::string name;
    std::string too_low;
    std::string lowest;
    std::string highest;
    std::string too_high;
  };
  const std::vector<bound> bounds = {
      {"master_key_version", "0", "1", "4294967295", "4294967296"},
      {"http_port", "-1", "0", "65535", "65536"},
      {"http_threads", "0", "1", "256", "257"},
      {"max_body_bytes", "1023", "1024", "67108864", "67108865"},
      {"request_timeout_ms", "0", "1", "3600000", "3600001"},
      {"outbound_threads", "0", "1", "256", "257"},
      {"outbound_timeout_ms", "0", "1", "3600000", "3600001"},
      {"max_attempts", "0", "1", "100", "101"},
      {"retry_base_delay_ms", "0", "1", "86400000", "86400001"},
      {"retry_max_delay_ms", "0", "1", "86400000", "86400001"},
      {"max_tasks_per_user", "0", "1", "10000000", "10000001"},
      {"token_min_lifetime_s", "-1", "0", "86400", "86401"},
  };
  for (const auto& b : bounds) {
    SCOPED_TRACE(b.name);
    // Retry delays are also checked against each other; keep both ends wide open.
    const std::vector<std::string> delays = {"--retry-base-delay-ms=1",
                                             "--retry-max-delay-ms=86400000"};
    auto with_value = [&](const std::string& value) {
      auto args = with_required(delays);
      args.push_back(dashed(b.name) + "=" + value);
      return load(args);
    };

    expect_invalid(with_value(b.too_low), dashed(b.name));
    expect_invalid(with_value(b.too_high), dashed(b.name));
    EXPECT_TRUE(with_value(b.lowest).ok());
    EXPECT_TRUE(with_value(b.highest).ok());

    const std::string path = write_temp(b.name + " = " + b.too_high + "\n");
    expect_invalid(load(with_required({"--config=" + path})), b.name);
  }
}

// The first retry may not wait longer than the cap on every retry.
TEST(load_options, rejects_retry_delays_when_base_exceeds_max) {
  auto loaded = load(with_required({"--retry-base-delay-ms=5000", "--retry-max-delay-ms=1000"}));

  expect_invalid(loaded, "--retry-base-delay-ms");
  EXPECT_THAT(loaded.error().message, HasSubstr("--retry-max-delay-ms"));
}

// Only the five level names are accepted, exactly as spelled.
TEST(load_options, rejects_log_level_when_not_a_known_level) {
  for (const std::string level : {"trace", "debug", "info", "warn", "error"}) {
    auto loaded = load(with_required({"--log-level=" + level}));

    ASSERT_TRUE(loaded.ok()) << level;
    EXPECT_EQ(loaded->log_level, level);
  }

  for (const std::string level : {"verbose", "INFO", "warning", ""}) {
    SCOPED_TRACE(level);

    expect_invalid(load(with_required({"--log-level", level})), "--log-level");
  }
}

// Each required option missing is reported by its command-line name.
TEST(load_options, rejects_start_when_required_option_missing) {
  for (std::size_t skipped = 0; skipped < required_args.size(); ++skipped) {
    std::vector<std::string> args;
    for (std::size_t i = 0; i < required_args.size(); ++i) {
      if (i != skipped) {
        args.push_back(required_args[i]);
      }
    }
    const std::string name = required_args[skipped].substr(0, required_args[skipped].find('='));

    auto loaded = load(args);

    ASSERT_FALSE(loaded.ok());
    EXPECT_EQ(loaded.error().code, "invalid_config");
    EXPECT_EQ(loaded.error().message, "missing required option " + name);
  }
}

// No arguments at all (argc 0 or only the program name) is a missing option, not a crash.
TEST(load_options, rejects_start_when_no_arguments_given) {
  expect_invalid(load({}), "missing required option --data-dir");
  expect_invalid(load_options(0, nullptr), "missing required option --data-dir");
}

// A required path set to nothing is as bad as a missing one.
TEST(load_options, rejects_required_path_when_empty) {
  const std::string path = write_temp("data_dir = \"\"\n");

  expect_invalid(load({"--config=" + path, "--master-key-file=/m", "--admin-key-file=/a"}),
                 "data_dir");
  expect_invalid(load({"--data-dir=", "--master-key-file=/m", "--admin-key-file=/a"}),
                 "--data-dir");
}

// An option without its value must not swallow the next option as its value.
TEST(load_options, rejects_option_when_value_missing) {
  expect_invalid(load(with_required({"--data-dir", "--http-port=1"})), "--data-dir");
  expect_invalid(load(with_required({"--http-port"})), "--http-port");
}

// A config file that cannot be read is named, whether missing or a directory.
TEST(load_options, rejects_config_when_file_unreadable) {
  const std::string missing = repo_root.string() + "/no/such/latchkey.toml";

  expect_invalid(load(with_required({"--config=" + missing})), "--config");
  expect_invalid(load(with_required({"--config=" + missing})), missing);
  expect_invalid(load(with_required({"--config=" + ::testing::TempDir()})), "--config");
}

// A syntax error gives the line but not the text around it, which may hold a pasted secret.
TEST(load_options, rejects_config_when_toml_syntax_invalid) {
  const std::string path = write_temp(
      "http_port = 8080\n"
      "\n"
      "master_key = c2VjcmV0LWtleS1ieXRlcw==\n");

  auto loaded = load(with_required({"--config=" + path}));

  expect_invalid(loaded, "--config");
  EXPECT_THAT(loaded.error().message, HasSubstr("line 3"));
  EXPECT_THAT(loaded.error().message, Not(HasSubstr("c2VjcmV0")));
  EXPECT_THAT(loaded.error().message, Not(HasSubstr("master_key")));
}

// Secrets are never options: anything about a key is a path to a file (or the key's version).
TEST(option_docs, names_only_key_files_when_option_concerns_a_key) {
  std::set<std::string> seen;
  for (const auto& doc : option_docs()) {
    EXPECT_TRUE(seen.insert(doc.name).second) << "declared twice: " << doc.name;
    const bool about_key = doc.name.find("key") != std::string::npos ||
                           doc.name.find("secret") != std::string::npos ||
                           doc.name.find("token") != std::string::npos;
    const bool is_file = doc.name.size() > 5 && doc.name.ends_with("_file");
    if (about_key && !is_file) {
      EXPECT_TRUE(doc.name == "master_key_version" || doc.name == "token_min_lifetime_s")
          << doc.name << " looks like a secret given as a value";
    }
  }
}

// docs/configuration.md carries the generated table verbatim between its markers.
TEST(options_markdown, matches_docs_when_compared_with_configuration_md) {
  const std::filesystem::path doc = repo_root / "docs" / "configuration.md";
  const std::string begin = "<!-- options:begin -->\n";
  const std::string end = "<!-- options:end -->";
  std::string text = read_file(doc);
  const auto from = text.find(begin);
  const auto to = text.find(end);
  ASSERT_NE(from, std::string::npos) << doc;
  ASSERT_NE(to, std::string::npos) << doc;
  ASSERT_LT(from, to);

  if (updating_golden_files()) {
    text.replace(from + begin.size(), to - from - begin.size(), options_markdown());
    std::ofstream(doc, std::ios::binary) << text;
    return;
  }
  EXPECT_EQ(text.substr(from + begin.size(), to - from - begin.size()), options_markdown())
      << "regenerate with LATCHKEY_UPDATE_GOLDEN=1 config_tests";
}

// The committed example file is exactly what the schema generates.
TEST(options_example_toml, matches_committed_file_when_compared) {
  const std::filesystem::path example = repo_root / "config" / "latchkey.example.toml";

  if (updating_golden_files()) {
    std::ofstream(example, std::ios::binary) << options_example_toml();
    return;
  }
  EXPECT_EQ(read_file(example), options_example_toml())
      << "regenerate with LATCHKEY_UPDATE_GOLDEN=1 config_tests";
}

// Loading the example file yields the defaults, plus the sample paths for required options.
TEST(load_options, returns_defaults_when_example_file_loaded) {
  const std::filesystem::path example = repo_root / "config" / "latchkey.example.toml";

  auto loaded = load({"--config=" + example.string()});

  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  options expected;
  expected.data_dir = "/var/lib/latchkey";
  expected.master_key_file = "/etc/latchkey/master.key";
  expected.admin_key_file = "/etc/latchkey/admin.key";
  expect_same(*loaded, expected);
}

}  // namespace
}  // namespace latchkey
