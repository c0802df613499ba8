#include "actors/scopes.hpp"

#include <algorithm>

namespace latchkey {

std::vector<std::string> split_scopes(std::string_view text) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto end = text.find(' ', pos);
    if (end == std::string_view::npos)
      end = text.size();
    std::string piece(text.substr(pos, end - pos));
    if (!piece.empty() && std::find(out.begin(), out.end(), piece) == out.end())
      out.push_back(std::move(piece));
    pos = end + 1;
  }
  return out;
}

std::string join_scopes(const std::vector<std::string>& scopes) {
  std::string out;
  for (const auto& scope : scopes) {
    if (!out.empty())
      out += ' ';
    out += scope;
  }
  return out;
}

bool scopes_granted(const std::vector<std::string>& wanted,
                    const std::vector<std::string>& granted) {
  return std::all_of(wanted.begin(), wanted.end(), [&](const std::string& scope) {
    return std::find(granted.begin(), granted.end(), scope) != granted.end();
  });
}

}  // namespace latchkey
