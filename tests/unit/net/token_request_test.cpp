#include "net/oauth/token_request.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <string>

namespace latchkey::oauth {
namespace {

// Strict base64 decode for assertions (OpenSSL pads the output; trim by the '=' count).
std::string decode_base64(const std::string& text) {
  std::string out(text.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0)
    return "<invalid>";
  std::size_t size = static_cast<std::size_t>(n);
  if (!text.empty() && text.back() == '=')
    --size;
  if (text.size() > 1 && text[text.size() - 2] == '=')
    --size;
  out.resize(size);
  return out;
}

refresh_request_params sample_params(client_auth_method method) {
  refresh_request_params params;
  params.token_url = "https://oauth2.example.com/token";
  params.auth_method = method;
  params.client_id = "client-1";
  params.client_secret = secret_string("s3cr3t");
  params.refresh_token = secret_string("rt-1");
  return params;
}

// Only the two exact names parse.
TEST(parse_client_auth_method, parses_when_name_is_known) {
  EXPECT_EQ(parse_client_auth_method("client_secret_basic"),
            client_auth_method::client_secret_basic);
  EXPECT_EQ(parse_client_auth_method("client_secret_post"), client_auth_method::client_secret_post);
  EXPECT_EQ(parse_client_auth_method("basic"), std::nullopt);
  EXPECT_EQ(parse_client_auth_method("private_key_jwt"), std::nullopt);
  EXPECT_EQ(parse_client_auth_method(""), std::nullopt);
}

// to_string and parse round-trip.
TEST(to_string, round_trips_when_parsed_back) {
  for (auto method :
       {client_auth_method::client_secret_basic, client_auth_method::client_secret_post})
    EXPECT_EQ(parse_client_auth_method(to_string(method)), method);
}

// Unreserved bytes stay, space is '+', the rest %XX upper-case.
TEST(form_urlencode, escapes_when_bytes_are_reserved) {
  EXPECT_EQ(form_urlencode("AZaz09-._*"), "AZaz09-._*");
  EXPECT_EQ(form_urlencode("a b"), "a+b");
  EXPECT_EQ(form_urlencode("+/:=&%$~!'()"), "%2B%2F%3A%3D%26%25%24%7E%21%27%28%29");
  EXPECT_EQ(form_urlencode(std::string("\0\n\xff", 3)), "%00%0A%FF");
  EXPECT_EQ(form_urlencode(""), "");
}

// '+' is space, escapes of either case decode, broken escapes stay literal.
TEST(form_urldecode, decodes_when_escapes_are_valid_or_broken) {
  EXPECT_EQ(form_urldecode("a+b%2Bc%2fd"), "a b+c/d");
  EXPECT_EQ(form_urldecode("100%"), "100%");
  EXPECT_EQ(form_urldecode("%zz%4"), "%zz%4");
  EXPECT_EQ(form_urldecode("%00"), std::string("\0", 1));
}

// decode(encode(x)) == x for every byte value.
TEST(form_urldecode, round_trips_when_given_every_byte) {
  std::string all;
  for (int i = 0; i < 256; ++i)
    all.push_back(static_cast<char>(i));
  EXPECT_EQ(form_urldecode(form_urlencode(all)), all);
}

// The RFC 6749 §2.3.1 form: each half form-encoded before base64.
TEST(basic_authorization, encodes_halves_when_they_hold_reserved_bytes) {
  const auto header = basic_authorization("a:b", "c d");
  ASSERT_EQ(header.reveal().rfind("Basic ", 0), 0u);
  EXPECT_EQ(decode_base64(header.reveal().substr(6)), "a%3Ab:c+d");
}

// An empty secret still yields a well-formed header.
TEST(basic_authorization, produces_header_when_secret_is_empty) {
  const auto header = basic_authorization("id", "");
  EXPECT_EQ(decode_base64(header.reveal().substr(6)), "id:");
}

// Basic: POST, form content type, JSON accepted, Authorization, no client fields in the body.
TEST(build_refresh_request, uses_header_when_auth_is_basic) {
  const auto request =
      build_refresh_request(sample_params(client_auth_method::client_secret_basic));
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(request.url, "https://oauth2.example.com/token");
  EXPECT_EQ(find_header(request.headers, "Content-Type"), "application/x-www-form-urlencoded");
  EXPECT_EQ(find_header(request.headers, "Accept"), "application/json");
  EXPECT_EQ(find_header(request.headers, "Authorization"),
            basic_authorization("client-1", "s3cr3t").reveal());
  EXPECT_EQ(request.body, "grant_type=refresh_token&refresh_token=rt-1");
}

// Post: no Authorization header, client fields after the grant.
TEST(build_refresh_request, puts_client_in_body_when_auth_is_post) {
  const auto request = build_refresh_request(sample_params(client_auth_method::client_secret_post));
  EXPECT_EQ(find_header(request.headers, "Authorization"), std::nullopt);
  EXPECT_EQ(request.body,
            "grant_type=refresh_token&refresh_token=rt-1&client_id=client-1&client_secret=s3cr3t");
}

// A public client (no secret) sends its id only.
TEST(build_refresh_request, omits_secret_when_post_client_has_none) {
  auto params = sample_params(client_auth_method::client_secret_post);
  params.client_secret = secret_string();
  EXPECT_EQ(build_refresh_request(params).body,
            "grant_type=refresh_token&refresh_token=rt-1&client_id=client-1");
}

// Narrowed scopes are space-joined, encoded, and placed before the client fields.
TEST(build_refresh_request, adds_scope_when_scopes_given) {
  auto params = sample_params(client_auth_method::client_secret_post);
  params.scopes = {"read:user", "repo"};
  EXPECT_EQ(build_refresh_request(params).body,
            "grant_type=refresh_token&refresh_token=rt-1&scope=read%3Auser+repo"
            "&client_id=client-1&client_secret=s3cr3t");
}

// Secrets go in the body or header only, never the URL; reserved bytes are encoded once.
TEST(build_refresh_request, keeps_secrets_out_of_url_when_token_has_reserved_bytes) {
  auto params = sample_params(client_auth_method::client_secret_post);
  params.refresh_token = secret_string("a&b=c+d");
  const auto request = build_refresh_request(params);
  EXPECT_EQ(request.url, params.token_url);
  EXPECT_NE(request.body.find("refresh_token=a%26b%3Dc%2Bd&"), std::string::npos);
  EXPECT_EQ(request.url.find("s3cr3t"), std::string::npos);
}

}  // namespace
}  // namespace latchkey::oauth
