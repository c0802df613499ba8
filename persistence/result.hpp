// result<T>: a value or a failure, returned by storage, crypto and protocol code instead of
// throwing. A failure carries a stable machine-readable code (used verbatim as the HTTP
// `error` field and in audit records) and a human message. Messages must never contain a
// secret: callers build them from identifiers only, never from tokens or response bodies.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace latchkey {

struct failure {
  std::string code;
  std::string message;
};

template <class T>
class [[nodiscard]] result {
 public:
  result(T value) : state_(std::move(value)) {}
  result(failure f) : state_(std::move(f)) {}

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(state_); }
  const T& value() const& { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const failure& error() const { return std::get<1>(state_); }

 private:
  std::variant<T, failure> state_;
};

/// A result with no value: success or a failure.
using status = result<std::monostate>;

inline status ok_status() {
  return status{std::monostate{}};
}

inline failure make_failure(std::string code, std::string message) {
  return failure{std::move(code), std::move(message)};
}

}  // namespace latchkey
