// Scope lists: RFC 6749 §3.3 scope strings are space-separated, case-sensitive tokens.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace latchkey {

/// Splits on spaces, dropping empty pieces and duplicates (order kept).
std::vector<std::string> split_scopes(std::string_view text);

std::string join_scopes(const std::vector<std::string>& scopes);

/// True if every scope in `wanted` is in `granted`.
bool scopes_granted(const std::vector<std::string>& wanted,
                    const std::vector<std::string>& granted);

}  // namespace latchkey
