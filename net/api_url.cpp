#include "net/api_url.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <optional>

#include "net/ascii.hpp"

namespace latchkey {

namespace {

using ascii::hex_value;
using ascii::is_digit;

// Bytes that never belong in a URL we send: controls, space and non-ASCII (RFC 3986 §2 wants
// them percent-encoded), and '\', which WHATWG parsers and some servers treat as '/'. A raw
// CR or LF would also split the request line.
bool is_forbidden_url_byte(char c) {
  const auto byte = static_cast<unsigned char>(c);
  return byte <= 0x20 || byte >= 0x7f || c == '\\';
}

// Every '%' starts a complete escape (RFC 3986 §2.1); a stray one is read differently by
// different servers.
bool has_valid_escapes(std::string_view text) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%')
      continue;
    if (i + 2 >= text.size())
      return false;
    if (hex_value(text[i + 1]) < 0 || hex_value(text[i + 2]) < 0)
      return false;
    i += 2;
  }
  return true;
}

// One round of percent-decoding; assumes has_valid_escapes(text).
std::string percent_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && hex_value(text[i + 1]) >= 0 &&
        hex_value(text[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2])));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

// reg-name restricted to what DNS names and IPv4 literals use (RFC 3986 §3.2.2, RFC 1123).
bool is_valid_reg_name(std::string_view host) {
  if (host.empty() || host.size() > 253)
    return false;
  for (char c : host)
    if (!ascii::is_alpha(c) && !ascii::is_digit(c) && c != '-' && c != '.' && c != '_')
      return false;
  return true;
}

bool is_valid_ipv6(std::string_view host) {
  in6_addr addr{};
  const std::string text(host);
  return inet_pton(AF_INET6, text.c_str(), &addr) == 1;
}

std::optional<int> parse_port(std::string_view text) {
  if (text.empty() || text.size() > 5)
    return std::nullopt;
  int port = 0;
  for (char c : text) {
    if (!ascii::is_digit(c))
      return std::nullopt;
    port = port * 10 + (c - '0');
  }
  if (port < 1 || port > 65535)
    return std::nullopt;
  return port;
}

int default_port(std::string_view scheme) {
  return scheme == "https" ? 443 : 80;
}

failure invalid_url(std::string message) {
  return make_failure("invalid_url", std::move(message));
}

failure outside_base(std::string message) {
  return make_failure("path_outside_base", std::move(message));
}

// The origin part of a URL in a canonical form: the default port is left out, IPv6 literals
// get their brackets back (RFC 3986 §3.2.2).
std::string origin_of(const parsed_url& url) {
  std::string out = url.scheme + "://";
  if (url.host.find(':') != std::string::npos)
    out += "[" + url.host + "]";
  else
    out += url.host;
  if (url.port != default_port(url.scheme))
    out += ":" + std::to_string(url.port);
  return out;
}

// A path segment that a server could resolve as "." or ".." (RFC 3986 §5.2.4), also once or
// twice percent-decoded (servers and proxies that decode more than once exist) and with a
// ";params" suffix cut off (Tomcat-style servers read "..;" as "..").
bool is_dot_segment_like(std::string_view segment) {
  std::string text(segment);
  for (int round = 0; round < 3; ++round) {
    const auto params = text.find(';');
    const std::string_view bare = std::string_view(text).substr(0, params);
    if (bare == "." || bare == "..")
      return true;
    if (!has_valid_escapes(text))
      return false;
    auto decoded = percent_decode(text);
    if (decoded == text)
      return false;
    text = std::move(decoded);
  }
  return false;
}

// A segment that turns into a separator or a control byte once decoded (%2f, %5c, %00,
// %252f, ...): servers disagree on whether such bytes split the path.
bool decodes_to_separator(std::string_view segment) {
  std::string text(segment);
  for (int round = 0; round < 3; ++round) {
    if (!has_valid_escapes(text))
      return false;
    auto decoded = percent_decode(text);
    if (decoded == text)
      return false;
    for (char c : decoded) {
      const auto byte = static_cast<unsigned char>(c);
      if (c == '/' || c == '\\' || byte < 0x20 || byte == 0x7f)
        return true;
    }
    text = std::move(decoded);
  }
  return false;
}

}  // namespace

result<parsed_url> parse_url(std::string_view url) {
  parsed_url out;

  // Bytes that are never valid anywhere in the URL, and fragments (never sent on the wire,
  // RFC 9110 §4.2.1) are refused up front.
  for (char c : url)
    if (is_forbidden_url_byte(c))
      return invalid_url("URL contains a control byte, space, backslash or non-ASCII byte");
  if (url.find('#') != std::string_view::npos)
    return invalid_url("URL must not contain a fragment");

  // Scheme (RFC 3986 §3.1): only http and https, case-insensitive.
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos)
    return invalid_url("URL is not absolute");
  out.scheme = ascii::to_lower(url.substr(0, scheme_end));
  if (out.scheme != "http" && out.scheme != "https")
    return invalid_url("URL scheme must be http or https");
  const auto rest = url.substr(scheme_end + 3);

  // Authority (RFC 3986 §3.2): no userinfo, which only serves to hide the real host.
  const auto authority_end = rest.find_first_of("/?");
  const auto authority = rest.substr(0, authority_end);
  if (authority.find('@') != std::string_view::npos)
    return invalid_url("URL must not contain userinfo");

  // Host and port; an IPv6 literal is bracketed (RFC 3986 §3.2.2).
  std::string_view host;
  std::string_view port_text;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos)
      return invalid_url("URL has an unterminated IPv6 literal");
    host = authority.substr(1, close - 1);
    if (!is_valid_ipv6(host))
      return invalid_url("URL has an invalid IPv6 literal");
    const auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':')
        return invalid_url("URL has bytes after the IPv6 literal");
      has_port = true;
      port_text = after.substr(1);
    }
  } else {
    const auto colon = authority.find(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      has_port = true;
      port_text = authority.substr(colon + 1);
    }
    if (!is_valid_reg_name(host))
      return invalid_url("URL has an empty or invalid host");
  }
  out.host = ascii::to_lower(host);
  if (has_port) {
    const auto port = parse_port(port_text);
    if (!port)
      return invalid_url("URL has an invalid port");
    out.port = *port;
  } else {
    out.port = default_port(out.scheme);
  }

  // Path and query (RFC 3986 §3.3, §3.4); an empty path is "/".
  const auto path_and_query =
      authority_end == std::string_view::npos ? std::string_view{} : rest.substr(authority_end);
  const auto query_start = path_and_query.find('?');
  const auto path = path_and_query.substr(0, query_start);
  out.path = path.empty() ? "/" : std::string(path);
  if (query_start != std::string_view::npos)
    out.query = std::string(path_and_query.substr(query_start + 1));
  if (!has_valid_escapes(out.path) || !has_valid_escapes(out.query))
    return invalid_url("URL has a malformed percent-escape");

  return out;
}

bool is_loopback_host(std::string_view host) {
  if (host.size() == 9 && ascii::to_lower(host) == "localhost")
    return true;

  // IPv6 may arrive with or without brackets.
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  const std::string text(host);

  // inet_pton takes only the full dotted-quad form, so "127.1" or "0x7f.0.0.1" (which some
  // resolvers accept) are not treated as loopback.
  in_addr v4{};
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1)
    return (ntohl(v4.s_addr) >> 24) == 127;

  in6_addr v6{};
  if (inet_pton(AF_INET6, text.c_str(), &v6) == 1) {
    if (std::memcmp(&v6, &in6addr_loopback, sizeof v6) == 0)
      return true;
    // An IPv4-mapped loopback address (::ffff:127.x.y.z) also reaches this machine only.
    static constexpr unsigned char mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return std::memcmp(v6.s6_addr, mapped_prefix, sizeof mapped_prefix) == 0 &&
           v6.s6_addr[12] == 127;
  }
  return false;
}

status check_provider_url(std::string_view url) {
  const auto parsed = parse_url(url);
  if (!parsed)
    return parsed.error();

  // Tokens and client secrets cross this URL, so it must be TLS (RFC 6749 §3.2, §10.9);
  // plain http is allowed only on loopback, for local development and tests.
  if (parsed->scheme == "https")
    return ok_status();
  if (is_loopback_host(parsed->host))
    return ok_status();
  return invalid_url("provider URL must use https (http is allowed only for loopback hosts)");
}

result<std::string> join_api_url(std::string_view base_url, std::string_view path) {
  const auto base = parse_url(base_url);
  if (!base)
    return base.error();
  if (!base->query.empty() || base_url.find('?') != std::string_view::npos)
    return invalid_url("API base URL must not contain a query");

  // The path must be origin-relative and must not become network-path ("//host") or
  // absolute ("https://...") once joined.
  if (path.empty())
    return outside_base("path is empty");
  if (path.front() != '/')
    return outside_base("path must start with '/'");
  if (path.size() >= 2 && path[1] == '/')
    return outside_base("path must not start with '//'");
  for (char c : path)
    if (is_forbidden_url_byte(c))
      return outside_base("path contains a control byte, space, backslash or non-ASCII byte");
  if (path.find('#') != std::string_view::npos)
    return outside_base("path must not contain a fragment");

  const auto query_start = path.find('?');
  const auto path_part = path.substr(0, query_start);
  const auto query_part =
      query_start == std::string_view::npos ? std::string_view{} : path.substr(query_start);
  if (!has_valid_escapes(path_part) || !has_valid_escapes(query_part))
    return outside_base("path has a malformed percent-escape");

  // '@' and "://" in the path only appear in attempts to smuggle another authority past a
  // lax parser; a legitimate API path has no need for them unescaped.
  if (path_part.find('@') != std::string_view::npos)
    return outside_base("path must not contain '@'");
  if (path_part.find("://") != std::string_view::npos)
    return outside_base("path must not contain a scheme");

  // Segment by segment: no dot segments and nothing that decodes to a separator, so that no
  // normalisation by any server along the way can climb out of the base path (RFC 3986 §5.2.4).
  std::size_t start = 1;
  while (start <= path_part.size()) {
    const auto end = path_part.find('/', start);
    const auto segment = path_part.substr(start, end == std::string_view::npos ? end : end - start);
    if (is_dot_segment_like(segment))
      return outside_base("path contains a '.' or '..' segment");
    if (decodes_to_separator(segment))
      return outside_base("path contains an encoded separator or control byte");
    if (end == std::string_view::npos)
      break;
    start = end + 1;
  }

  // Join: the base path without its trailing '/', then the path (which starts with '/').
  std::string base_path = base->path;
  while (!base_path.empty() && base_path.back() == '/')
    base_path.pop_back();
  return origin_of(*base) + base_path + std::string(path_part) + std::string(query_part);
}

}  // namespace latchkey
