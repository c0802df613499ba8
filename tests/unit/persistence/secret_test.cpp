#include "persistence/secret.hpp"

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <utility>

namespace latchkey {
namespace {

// A secret must not reach a stream by accident: there is no operator<< to find.
template <class T>
concept streamable = requires(std::ostream& os, const T& value) {
  os << value;
};
static_assert(!streamable<secret_string>);

// A copy holds the same bytes and leaves the original untouched.
TEST(secret_string, copy_keeps_value_in_both) {
  const secret_string original{"refresh-token-value"};

  const secret_string copy{original};
  secret_string assigned;
  assigned = original;

  EXPECT_EQ(copy.reveal(), "refresh-token-value");
  EXPECT_EQ(assigned.reveal(), "refresh-token-value");
  EXPECT_EQ(original.reveal(), "refresh-token-value");
}

// Moving hands the bytes over and leaves the source empty, for short and long values alike.
TEST(secret_string, move_transfers_value_and_empties_source) {
  for (const std::string& value : {std::string("short"), std::string(100, 'x')}) {
    secret_string source{value};

    const secret_string moved{std::move(source)};

    EXPECT_EQ(moved.reveal(), value);
    EXPECT_TRUE(source.empty());  // NOLINT(bugprone-use-after-move): the state under test
    EXPECT_EQ(source.size(), 0u);
  }
}

// Move assignment replaces the old value and leaves the source empty.
TEST(secret_string, move_assignment_transfers_value_and_empties_source) {
  secret_string source{"new-value"};
  secret_string target{"old-value"};

  target = std::move(source);

  EXPECT_EQ(target.reveal(), "new-value");
  EXPECT_TRUE(source.empty());  // NOLINT(bugprone-use-after-move): the state under test
}

// Assigning a secret to itself keeps its value.
TEST(secret_string, self_assignment_keeps_value) {
  secret_string value{"same"};
  secret_string& alias = value;

  value = alias;
  value = std::move(alias);

  EXPECT_EQ(value.reveal(), "same");
}

// equals and == compare bytes, including different lengths and embedded NULs.
TEST(secret_string, equals_compares_bytes_exactly) {
  const secret_string value{std::string("ab\0cd", 5)};

  EXPECT_TRUE(value.equals(std::string_view("ab\0cd", 5)));
  EXPECT_FALSE(value.equals(std::string_view("ab\0ce", 5)));
  EXPECT_FALSE(value.equals("ab"));
  EXPECT_FALSE(value.equals(std::string_view("ab\0cdx", 6)));
  EXPECT_TRUE(value == secret_string(std::string("ab\0cd", 5)));
  EXPECT_FALSE(value == secret_string("abxcd"));
  EXPECT_TRUE(secret_string{}.equals(""));
}

// The only printable form is a fixed placeholder.
TEST(secret_string, redacted_is_fixed_placeholder) {
  EXPECT_EQ(secret_string::redacted(), "[redacted]");
}

// A default secret is empty.
TEST(secret_string, default_is_empty) {
  const secret_string value;

  EXPECT_TRUE(value.empty());
  EXPECT_EQ(value.size(), 0u);
}

// wipe_string leaves an empty string behind.
TEST(secret_string, wipe_string_clears_value) {
  std::string buffer = "temporary secret bytes";

  wipe_string(buffer);

  EXPECT_TRUE(buffer.empty());
}

}  // namespace
}  // namespace latchkey
