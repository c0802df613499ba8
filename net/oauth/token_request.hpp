// Building the refresh request (RFC 6749 §6) with the provider's client authentication
// (§2.3.1). The request carries secrets in its body or Authorization header and nowhere else:
// never in the URL.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "net/http_types.hpp"
#include "persistence/secret.hpp"

namespace latchkey::oauth {

enum class client_auth_method {
  /// HTTP Basic with id and secret each form-urlencoded first (RFC 6749 §2.3.1).
  client_secret_basic,
  /// client_id and client_secret in the form body.
  client_secret_post,
};

/// "client_secret_basic" / "client_secret_post"; nullopt for anything else.
std::optional<client_auth_method> parse_client_auth_method(std::string_view name);
std::string_view to_string(client_auth_method method);

/// application/x-www-form-urlencoded encoding of one name or value: ALPHA DIGIT and "-._*"
/// stay, space becomes '+', every other byte %XX with upper-case hex (the "plain form" of
/// tests/cases/case-10.json, which keeps '-' '_' '.' unescaped for non-decoding servers).
std::string form_urlencode(std::string_view text);

/// The inverse, for form bodies; '+' is a space. Malformed escapes are kept literally.
std::string form_urldecode(std::string_view text);

/// "Basic " + base64(form_urlencode(id) ":" form_urlencode(secret)).
secret_string basic_authorization(std::string_view client_id, std::string_view client_secret);

struct refresh_request_params {
  std::string token_url;
  client_auth_method auth_method = client_auth_method::client_secret_basic;
  std::string client_id;
  secret_string client_secret;
  secret_string refresh_token;
  /// Optional narrower scope (RFC 6749 §6); empty means "as granted" and is not sent.
  std::vector<std::string> scopes;
};

/// POST token_url, Content-Type application/x-www-form-urlencoded, Accept application/json,
/// body grant_type=refresh_token&refresh_token=...[&scope=...][&client_id=..&client_secret=..].
http_request build_refresh_request(const refresh_request_params& params);

}  // namespace latchkey::oauth
