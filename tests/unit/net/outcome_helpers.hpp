// Test helpers: unwrap a refresh outcome into the alternative a test expects, failing the test
// (not crashing it) when it holds the other one.
#pragma once

#include <gtest/gtest.h>

#include "net/oauth/token_response.hpp"

namespace latchkey::oauth::testing {

// By value: callers pass the temporary outcome straight in.
inline token_set as_tokens(const refresh_outcome& outcome) {
  if (const auto* tokens = std::get_if<token_set>(&outcome))
    return *tokens;
  ADD_FAILURE() << "expected a token set, got failure " << std::get<refresh_failure>(outcome).code;
  return {};
}

inline refresh_failure as_failure(const refresh_outcome& outcome) {
  if (const auto* failed = std::get_if<refresh_failure>(&outcome))
    return *failed;
  ADD_FAILURE() << "expected a failure, got a token set";
  return {refresh_failure_kind::permanent, "<none>", "", std::nullopt};
}

}  // namespace latchkey::oauth::testing
