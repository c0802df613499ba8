#include "net/oauth/token_request.hpp"

#include "net/ascii.hpp"

#include "persistence/envelope.hpp"

namespace latchkey::oauth {

namespace {

constexpr char upper_hex[] = "0123456789ABCDEF";

using ascii::hex_value;

bool is_unreserved_form_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '*';
}

void append_param(std::string& body, std::string_view name, std::string_view value) {
  if (!body.empty())
    body += '&';
  body += form_urlencode(name);
  body += '=';
  std::string encoded = form_urlencode(value);
  body += encoded;
  wipe_string(encoded);
}

}  // namespace

std::optional<client_auth_method> parse_client_auth_method(std::string_view name) {
  if (name == "client_secret_basic")
    return client_auth_method::client_secret_basic;
  if (name == "client_secret_post")
    return client_auth_method::client_secret_post;
  return std::nullopt;
}

std::string_view to_string(client_auth_method method) {
  switch (method) {
    case client_auth_method::client_secret_basic:
      return "client_secret_basic";
    case client_auth_method::client_secret_post:
      return "client_secret_post";
  }
  return "client_secret_basic";
}

std::string form_urlencode(std::string_view text) {
  std::string out;
  out.reserve(text.size() * 3);
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (is_unreserved_form_byte(byte)) {
      out.push_back(c);
    } else if (c == ' ') {
      out.push_back('+');
    } else {
      out.push_back('%');
      out.push_back(upper_hex[byte >> 4]);
      out.push_back(upper_hex[byte & 0x0f]);
    }
  }
  return out;
}

std::string form_urldecode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%' && i + 2 < text.size() && hex_value(text[i + 1]) >= 0 &&
               hex_value(text[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2])));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

secret_string basic_authorization(std::string_view client_id, std::string_view client_secret) {
  // RFC 6749 §2.3.1: each of id and secret is form-urlencoded (Appendix B) before they are
  // joined with ':' for HTTP Basic (RFC 7617 §2), so a ':' in the id cannot shift the split.
  std::string pair = form_urlencode(client_id);
  pair += ':';
  std::string encoded_secret = form_urlencode(client_secret);
  pair += encoded_secret;
  wipe_string(encoded_secret);

  std::string encoded = base64_encode(pair);
  wipe_string(pair);

  secret_string header(std::string("Basic ") + encoded);
  wipe_string(encoded);
  return header;
}

http_request build_refresh_request(const refresh_request_params& params) {
  http_request request;
  request.method = "POST";
  request.url = params.token_url;
  request.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");

  // GitHub answers form-encoded unless asked for JSON (tests/cases/case-05.json).
  request.headers.emplace_back("Accept", "application/json");

  // The grant (RFC 6749 §6); a narrower scope only when one was asked for.
  std::string body;
  append_param(body, "grant_type", "refresh_token");
  append_param(body, "refresh_token", params.refresh_token.reveal());
  if (!params.scopes.empty()) {
    std::string scope;
    for (const auto& item : params.scopes) {
      if (!scope.empty())
        scope += ' ';
      scope += item;
    }
    append_param(body, "scope", scope);
  }

  // Client authentication (RFC 6749 §2.3.1). With Basic the body carries no client fields:
  // some servers refuse a request that authenticates the client twice. With post, a public
  // client (no secret) sends its id only (§3.2.1).
  switch (params.auth_method) {
    case client_auth_method::client_secret_basic: {
      auto header = basic_authorization(params.client_id, params.client_secret.reveal());
      request.headers.emplace_back("Authorization", header.reveal());
      break;
    }
    case client_auth_method::client_secret_post:
      append_param(body, "client_id", params.client_id);
      if (!params.client_secret.empty())
        append_param(body, "client_secret", params.client_secret.reveal());
      break;
  }

  request.body = std::move(body);
  return request;
}

}  // namespace latchkey::oauth
