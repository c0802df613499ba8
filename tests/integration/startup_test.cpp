// Start-up refusals: a missing or wrong master key, an unusable data directory or a bad option
// exits non-zero with one line that says what is wrong, and leaves the data directory exactly
// as it was.

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <fstream>
#include <map>

#include "tests/integration/support/environment.hpp"

namespace latchkey::testing {
namespace {

namespace fs = std::filesystem;

// Path -> (size, modification time) of every file below `root`.
std::map<std::string, std::pair<std::uintmax_t, fs::file_time_type>> snapshot(
    const fs::path& root) {
  std::map<std::string, std::pair<std::uintmax_t, fs::file_time_type>> out;
  for (const auto& entry : fs::recursive_directory_iterator(root))
    if (entry.is_regular_file())
      out[entry.path().string()] = {entry.file_size(), entry.last_write_time()};
  return out;
}

struct start_result {
  int exit_code = -1;
  std::string stderr_text;
};

start_result start_daemon(const fs::path& work, std::vector<std::string> args) {
  args.insert(args.begin(), LATCHKEYD_PATH);
  auto err = work / "start.stderr";
  fs::remove(err);
  child_process child(args, err.string());
  // A refused start exits at once; give a started one (a test failure) a moment, then stop it.
  for (int i = 0; i < 100 && child.running(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  int status = child.stop(SIGKILL);
  std::ifstream in(err);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text};
}

class startup : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::make_unique<temp_dir>("startup");
    // A data directory that a real node wrote, with a connection in it.
    node_ = std::make_unique<daemon>(dir_->path());
    node_->start();
    ASSERT_EQ(node_->admin("POST", "/v1/agents", R"({"id":"bot","users":["*"]})").status, 201);
    node_->terminate();
    auto [rc, other_key] =
        run_command({"openssl", "rand", "-base64", "32"}, std::chrono::seconds(10));
    ASSERT_EQ(rc, 0);
    std::ofstream(dir_->path() / "other.key") << other_key;
  }

  std::vector<std::string> args(const std::string& master_key_file) {
    return {"--data-dir=" + node_->data_dir().string(), "--http-port=0",
            "--master-key-file=" + master_key_file,
            "--admin-key-file=" + (dir_->path() / "admin.key").string()};
  }

  static void expect_one_line_mentioning(const start_result& r, const std::string& words) {
    EXPECT_EQ(r.exit_code, 1) << r.stderr_text;
    EXPECT_EQ(std::count(r.stderr_text.begin(), r.stderr_text.end(), '\n'), 1) << r.stderr_text;
    EXPECT_NE(r.stderr_text.find(words), std::string::npos) << r.stderr_text;
  }

  std::unique_ptr<temp_dir> dir_;
  std::unique_ptr<daemon> node_;
};

// A wrong master key is refused before a byte of the data directory changes.
TEST_F(startup, wrong_master_key_exits_and_touches_no_data) {
  auto before = snapshot(node_->data_dir());
  auto r = start_daemon(dir_->path(), args((dir_->path() / "other.key").string()));
  expect_one_line_mentioning(r, "master key does not open");
  EXPECT_EQ(snapshot(node_->data_dir()), before);
}

// A missing or malformed master key file is refused with the reason.
TEST_F(startup, missing_or_malformed_master_key_exits) {
  auto before = snapshot(node_->data_dir());
  expect_one_line_mentioning(start_daemon(dir_->path(), args("/nonexistent/master.key")),
                             "does not exist");
  std::ofstream(dir_->path() / "short.key") << "dG9vIHNob3J0\n";
  expect_one_line_mentioning(
      start_daemon(dir_->path(), args((dir_->path() / "short.key").string())), "32 bytes");
  EXPECT_EQ(snapshot(node_->data_dir()), before);
}

// A data directory that is a file, and a bad option, are refused.
TEST_F(startup, unusable_data_dir_and_bad_option_exit) {
  auto file = dir_->path() / "not-a-dir";
  std::ofstream(file) << "x";
  auto a = args((dir_->path() / "master.key").string());
  a[0] = "--data-dir=" + file.string();
  expect_one_line_mentioning(start_daemon(dir_->path(), a), "not a directory");

  auto b = args((dir_->path() / "master.key").string());
  b.push_back("--http-port=70000");
  expect_one_line_mentioning(start_daemon(dir_->path(), b), "http-port");

  auto c = args((dir_->path() / "master.key").string());
  c.push_back("--log-file=" + dir_->path().string());
  expect_one_line_mentioning(start_daemon(dir_->path(), c), "log file");
}

// A port another node already listens on is refused, not shared.
TEST_F(startup, port_in_use_is_refused) {
  node_->start();
  auto port = node_->base().substr(node_->base().rfind(':') + 1);
  auto other = dir_->path() / "other-data";
  auto a = args((dir_->path() / "master.key").string());
  a[0] = "--data-dir=" + other.string();
  a[1] = "--http-port=" + port;
  expect_one_line_mentioning(start_daemon(dir_->path(), a), "cannot listen");
}

// A data directory held by a running node is refused with one line, not a crash.
TEST_F(startup, data_dir_in_use_is_refused) {
  node_->start();
  auto r = start_daemon(dir_->path(), args((dir_->path() / "master.key").string()));
  expect_one_line_mentioning(r, "cannot open the database");
}

// The right key still opens the directory after the refusals (nothing was damaged).
TEST_F(startup, right_key_still_starts_after_refusals) {
  start_daemon(dir_->path(), args((dir_->path() / "other.key").string()));
  node_->start();
  EXPECT_EQ(node_->admin("POST", "/v1/agents", R"({"id":"bot","users":["*"]})").status, 409);
}

}  // namespace
}  // namespace latchkey::testing
