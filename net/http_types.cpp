#include "net/http_types.hpp"

#include <strings.h>

#include "persistence/secret.hpp"

namespace latchkey {

std::optional<std::string> find_header(const header_list& headers, std::string_view name) {
  for (const auto& [key, value] : headers)
    if (key.size() == name.size() && strncasecmp(key.data(), name.data(), name.size()) == 0)
      return value;
  return std::nullopt;
}

namespace {

void wipe_headers(header_list& headers) {
  for (auto& header : headers)
    wipe_string(header.second);
}

}  // namespace

http_request::~http_request() {
  wipe_headers(headers);
  wipe_string(body);
}

http_response::~http_response() {
  wipe_headers(headers);
  wipe_string(body);
}

}  // namespace latchkey
