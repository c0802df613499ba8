#include "net/api_url.hpp"

#include <gtest/gtest.h>

#include <string>

namespace latchkey {
namespace {

// An absolute https URL splits into its lower-cased parts with the default port.
TEST(parse_url, parses_parts_when_https_url_is_plain) {
  const auto url = parse_url("HTTPS://API.Example.COM/v1/me?x=1&y=2");
  ASSERT_TRUE(url.ok()) << url.error().message;
  EXPECT_EQ(url->scheme, "https");
  EXPECT_EQ(url->host, "api.example.com");
  EXPECT_EQ(url->port, 443);
  EXPECT_EQ(url->path, "/v1/me");
  EXPECT_EQ(url->query, "x=1&y=2");
}

// An explicit port is kept; a missing path is "/".
TEST(parse_url, defaults_path_when_url_has_only_authority) {
  const auto url = parse_url("http://localhost:8080");
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url->scheme, "http");
  EXPECT_EQ(url->port, 8080);
  EXPECT_EQ(url->path, "/");
  EXPECT_EQ(url->query, "");
}

// A query right after the authority leaves the path as "/".
TEST(parse_url, splits_query_when_path_is_absent) {
  const auto url = parse_url("http://h?a=b");
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url->path, "/");
  EXPECT_EQ(url->query, "a=b");
}

// IPv6 literals lose their brackets in `host`.
TEST(parse_url, strips_brackets_when_host_is_ipv6) {
  const auto url = parse_url("http://[::1]:9000/token");
  ASSERT_TRUE(url.ok()) << url.error().message;
  EXPECT_EQ(url->host, "::1");
  EXPECT_EQ(url->port, 9000);
  EXPECT_EQ(url->path, "/token");
}

// Userinfo hides the real host from a reader of the config: refused.
TEST(parse_url, fails_when_url_has_userinfo) {
  for (const char* url : {"https://user:pass@example.com/", "https://evil.com@example.com/x",
                          "https://@example.com/"}) {
    const auto parsed = parse_url(url);
    ASSERT_FALSE(parsed.ok()) << url;
    EXPECT_EQ(parsed.error().code, "invalid_url");
  }
}

// Fragments are never part of a request target.
TEST(parse_url, fails_when_url_has_fragment) {
  EXPECT_FALSE(parse_url("https://example.com/a#frag").ok());
  EXPECT_FALSE(parse_url("https://example.com#").ok());
}

// Everything that is not an absolute http(s) URL with a sane host and port is refused.
TEST(parse_url, fails_when_url_is_malformed) {
  for (const char* url : {"",
                          "example.com/x",
                          "/relative",
                          "//example.com/x",
                          "ftp://example.com/",
                          "javascript://x",
                          "https://",
                          "https:///path",
                          "https://exa mple.com/",
                          "https://example.com:/",
                          "https://example.com:0/",
                          "https://example.com:65536/",
                          "https://example.com:80a/",
                          "https://[::1/",
                          "https://[zz]/",
                          "https://[::1]x/",
                          "https://example.com/a b",
                          "https://example.com/\r\nX: y",
                          "https://example.com\\evil",
                          "https://example.com/%zz",
                          "https://example.com/%4",
                          "https://ex\x01"
                          "ample.com/",
                          "https://example.com/\xc3\xa9"}) {
    const auto parsed = parse_url(url);
    ASSERT_FALSE(parsed.ok()) << url;
    EXPECT_EQ(parsed.error().code, "invalid_url") << url;
  }
}

// Loopback means 127.0.0.0/8, ::1 and localhost, in any spelling of those.
TEST(is_loopback_host, true_when_host_is_loopback) {
  for (const char* host : {"localhost", "LocalHost", "127.0.0.1", "127.255.1.2", "::1", "[::1]",
                           "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1"})
    EXPECT_TRUE(is_loopback_host(host)) << host;
}

// Near misses are not loopback: a DNS name containing "localhost", short IPv4 forms, 0.0.0.0.
TEST(is_loopback_host, false_when_host_only_resembles_loopback) {
  for (const char* host : {"localhost.evil.com", "evil-localhost", "128.0.0.1", "127.1", "0.0.0.0",
                           "::", "::2", "example.com", "", "127.0.0.1.nip.io", "::ffff:10.0.0.1"})
    EXPECT_FALSE(is_loopback_host(host)) << host;
}

// https anywhere, http only on loopback.
TEST(check_provider_url, accepts_when_https_or_loopback_http) {
  EXPECT_TRUE(check_provider_url("https://oauth2.example.com/token").ok());
  EXPECT_TRUE(check_provider_url("http://127.0.0.1:8080/token").ok());
  EXPECT_TRUE(check_provider_url("http://localhost/token").ok());
  EXPECT_TRUE(check_provider_url("http://[::1]:1/token").ok());
}

// Plain http to a remote host would put tokens on the wire in clear.
TEST(check_provider_url, fails_when_http_to_remote_host) {
  const auto checked = check_provider_url("http://oauth2.example.com/token");
  ASSERT_FALSE(checked.ok());
  EXPECT_EQ(checked.error().code, "invalid_url");
  EXPECT_NE(checked.error().message.find("https"), std::string::npos);
}

// Unparseable provider URLs fail with the parser's code.
TEST(check_provider_url, fails_when_url_is_invalid) {
  const auto checked = check_provider_url("https://u:p@example.com/token");
  ASSERT_FALSE(checked.ok());
  EXPECT_EQ(checked.error().code, "invalid_url");
}

// The header's own example.
TEST(join_api_url, appends_path_and_query_when_path_is_plain) {
  const auto joined = join_api_url("http://h/api", "/leads?x=1");
  ASSERT_TRUE(joined.ok()) << joined.error().message;
  EXPECT_EQ(*joined, "http://h/api/leads?x=1");
}

// A trailing slash on the base does not double up.
TEST(join_api_url, joins_once_when_base_has_trailing_slash) {
  const auto joined = join_api_url("http://h/api/", "/x");
  ASSERT_TRUE(joined.ok());
  EXPECT_EQ(*joined, "http://h/api/x");
}

// A base of "/" or no path at all joins to the path itself.
TEST(join_api_url, uses_path_alone_when_base_path_is_root) {
  EXPECT_EQ(join_api_url("https://api.example.com/", "/v1/me").value(),
            "https://api.example.com/v1/me");
  EXPECT_EQ(join_api_url("https://api.example.com", "/v1/me").value(),
            "https://api.example.com/v1/me");
}

// The query is passed on byte for byte, '@', '/', encoded bytes and all.
TEST(join_api_url, preserves_query_when_query_has_special_bytes) {
  const auto joined = join_api_url("https://api.example.com/v2", "/search?q=a+b%20c&to=x@y.z/w");
  ASSERT_TRUE(joined.ok()) << joined.error().message;
  EXPECT_EQ(*joined, "https://api.example.com/v2/search?q=a+b%20c&to=x@y.z/w");
}

// Explicit non-default ports and IPv6 hosts survive the join; default ports are dropped.
TEST(join_api_url, keeps_origin_when_base_has_port_or_ipv6) {
  EXPECT_EQ(join_api_url("http://127.0.0.1:8080/api", "/x").value(), "http://127.0.0.1:8080/api/x");
  EXPECT_EQ(join_api_url("http://[::1]:8080", "/x").value(), "http://[::1]:8080/x");
  EXPECT_EQ(join_api_url("https://h:443/a", "/x").value(), "https://h/a/x");
}

// Ordinary encoded bytes and dotted names inside segments are fine.
TEST(join_api_url, accepts_when_segments_only_contain_dots) {
  for (const char* path : {"/files/report.v2.pdf", "/a/...", "/a/.hidden", "/a/b..c",
                           "/users/j%20doe", "/a//b", "/", "/a/%41"})
    EXPECT_TRUE(join_api_url("https://h/api", path).ok()) << path;
}

// Every way out of the base path (or to another host) is refused with one code.
TEST(join_api_url, fails_when_path_could_leave_base) {
  for (const char* path : {
           "",                     // empty
           "leads",                // not starting with '/'
           "https://evil.com/x",   // absolute URL
           "http:/x",              // scheme-ish, no slash first
           "//evil.com/x",         // network-path reference
           "/../admin",            // dot-dot
           "/a/../../x",           // nested dot-dot
           "/a/..",                // trailing dot-dot
           "/./a",                 // dot
           "/a/.",                 // trailing dot
           "/%2e%2e/admin",        // encoded dot-dot
           "/a/%2E./x",            // mixed encoding
           "/a/.%2e/x",            // mixed encoding, other way
           "/%2e/x",               // encoded dot
           "/%252e%252e/x",        // double-encoded dot-dot
           "/..;/x",               // Tomcat-style path parameter
           "/a%2f..%2fb",          // encoded slash
           "/a%2F..",              // encoded slash, upper case
           "/a%5c..%5cb",          // encoded backslash
           "/a%00b",               // encoded NUL
           "/a\\..\\b",            // backslash
           "/\\evil.com",          // backslash authority trick
           "/@evil.com",           // userinfo trick
           "/a@b",                 // '@' in path
           "/x/https://evil.com",  // scheme inside path
           "/a#frag",              // fragment
           "/a?b#frag",            // fragment after query
           "/a\r\nHost: evil",     // CR LF
           "/a\tb",                // control byte
           "/a b",                 // space
           "/a\x7f",               // DEL
           "/caf\xc3\xa9",         // raw non-ASCII
           "/a%",                  // broken escape
           "/a%g1",                // broken escape
       }) {
    const auto joined = join_api_url("https://api.example.com/api", path);
    ASSERT_FALSE(joined.ok()) << "accepted: " << path;
    EXPECT_EQ(joined.error().code, "path_outside_base") << path;
  }
}

// A base that is itself invalid fails as an invalid URL, not as a path problem.
TEST(join_api_url, fails_when_base_is_invalid) {
  for (const char* base :
       {"https://u:p@h/api", "https://h/api#x", "not a url", "https://h/api?k=1"}) {
    const auto joined = join_api_url(base, "/x");
    ASSERT_FALSE(joined.ok()) << base;
    EXPECT_EQ(joined.error().code, "invalid_url") << base;
  }
}

// Whatever is accepted starts with the base path followed by '/'.
TEST(join_api_url, stays_under_base_when_accepted) {
  for (const char* path : {"/x", "/a/b?c=d", "/%2e%2ex", "/x%2e", "/-/.../", "/a/b/"}) {
    const auto joined = join_api_url("https://h/api", path);
    ASSERT_TRUE(joined.ok()) << path;
    EXPECT_EQ(joined->rfind("https://h/api/", 0), 0u) << *joined;
  }
}

}  // namespace
}  // namespace latchkey
