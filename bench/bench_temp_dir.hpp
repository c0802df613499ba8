// A directory of a benchmark's own under /tmp, removed with its contents when it goes.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace latchkey::bench {

class temp_dir {
 public:
  explicit temp_dir(const std::string& tag) {
    std::string pattern = "/tmp/latchkey-" + tag + "-XXXXXX";
    if (mkdtemp(pattern.data()) != nullptr)
      path_ = pattern;
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  ~temp_dir() {
    std::error_code ignored;
    if (!path_.empty())
      std::filesystem::remove_all(path_, ignored);
  }

  /// Empty when the directory could not be made.
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace latchkey::bench
