#include "net/http_client.hpp"

#include <httplib.h>
#include <strings.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <string_view>

#include "net/api_url.hpp"
#include "persistence/secret.hpp"

namespace latchkey {

namespace {

using std::chrono::milliseconds;

http_response transport_failure(std::string reason) {
  http_response out;
  out.status = 0;
  out.transport_error = std::move(reason);
  return out;
}

bool is_supported_method(std::string_view method) {
  static constexpr std::array<std::string_view, 6> methods = {"GET",   "POST",   "PUT",
                                                              "PATCH", "DELETE", "HEAD"};
  for (auto known : methods)
    if (method == known)
      return true;
  return false;
}

bool equals_ignore_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

// A header name is a token (RFC 9110 §5.1) and a value holds no CR, LF or NUL (§5.5): anything
// else would let a value inject headers or split the request.
bool is_valid_header(std::string_view name, std::string_view value) {
  if (name.empty())
    return false;
  for (char c : name) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte <= 0x20 || byte >= 0x7f || c == ':')
      return false;
  }
  for (char c : value)
    if (c == '\r' || c == '\n' || c == '\0')
      return false;
  return true;
}

// Framing and routing headers come from the URL and the body, never from the caller: a
// mismatched Content-Length or Host would desynchronise or misroute the request.
bool is_managed_header(std::string_view name) {
  return equals_ignore_case(name, "Content-Length") ||
         equals_ignore_case(name, "Transfer-Encoding") || equals_ignore_case(name, "Host") ||
         equals_ignore_case(name, "Connection");
}

std::string scheme_host_port(const parsed_url& url) {
  std::string out = url.scheme + "://";
  if (url.host.find(':') != std::string::npos)
    out += "[" + url.host + "]";
  else
    out += url.host;
  out += ":" + std::to_string(url.port);
  return out;
}

// httplib reports a read that waited out its timeout and one cut short by the peer alike;
// the elapsed time tells them apart.
std::string describe_error(httplib::Error error, milliseconds elapsed, milliseconds timeout) {
  const bool waited_out = elapsed + milliseconds(10) >= timeout;
  switch (error) {
    case httplib::Error::Connection:
      return "connection failed";
    case httplib::Error::ConnectionTimeout:
      return "timeout";
    case httplib::Error::Read:
      return waited_out ? "timeout" : "read failed";
    case httplib::Error::Write:
      return waited_out ? "timeout" : "write failed";
    case httplib::Error::SSLConnection:
      return "tls handshake failed";
    case httplib::Error::SSLServerVerification:
      return "tls certificate verification failed";
    case httplib::Error::SSLLoadingCerts:
      return "tls setup failed";
    case httplib::Error::ExceedRedirectCount:
      return "too many redirects";
    case httplib::Error::Canceled:
      return "canceled";
    case httplib::Error::Compression:
      return "decompression failed";
    default:
      return "transport error";
  }
}

void set_timeouts(httplib::Client& client, milliseconds timeout) {
  const auto ms = timeout.count() < 1 ? 1 : timeout.count();
  const auto sec = static_cast<time_t>(ms / 1000);
  const auto usec = static_cast<time_t>((ms % 1000) * 1000);
  client.set_connection_timeout(sec, usec);
  client.set_read_timeout(sec, usec);
  client.set_write_timeout(sec, usec);
}

http_response perform_checked(const http_request& request, const parsed_url& url) {
  httplib::Client client(scheme_host_port(url));
  if (!client.is_valid())
    return transport_failure("invalid url");

  // No redirects (a token must not follow one), no keep-alive (one request per client), the
  // path sent exactly as validated, and certificates verified against the system store.
  set_timeouts(client, request.timeout);
  client.set_follow_location(false);
  client.set_keep_alive(false);
  client.set_url_encode(false);
  client.enable_server_certificate_verification(true);

  // The request, with the caller's headers as given: a Content-Type among them is the only
  // one sent, since httplib adds its own only when none is present.
  httplib::Request req;
  req.method = request.method;
  req.path = url.path;
  if (!url.query.empty())
    req.path += "?" + url.query;
  for (const auto& [name, value] : request.headers)
    if (!is_managed_header(name))
      req.headers.emplace(name, value);
  req.body = request.body;

  // Keep at most max_response_bytes of the body; read and drop the rest.
  // The timeout bounds each read; a server trickling its body byte by byte would otherwise
  // hold the worker for ever, so the whole body must also arrive within twice the timeout.
  std::string body;
  const auto limit = request.max_response_bytes;
  const auto body_deadline = std::chrono::steady_clock::now() + 2 * request.timeout;
  req.content_receiver = [&body, limit, body_deadline](const char* data, std::size_t length,
                                                       std::uint64_t, std::uint64_t) {
    if (body.size() < limit)
      body.append(data, std::min(length, limit - body.size()));
    return std::chrono::steady_clock::now() < body_deadline;
  };

  // Send.
  httplib::Response res;
  auto error = httplib::Error::Success;
  const auto started = std::chrono::steady_clock::now();
  const bool sent = client.send(req, res, error);
  const auto elapsed =
      std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - started);
  wipe_string(req.body);
  for (auto& header : req.headers)
    wipe_string(header.second);

  if (!sent) {
    wipe_string(res.body);
    wipe_string(body);
    return transport_failure(describe_error(error, elapsed, request.timeout));
  }

  // Copy the reply out; its body may hold tokens, so the library's copy is wiped.
  http_response out;
  out.status = res.status;
  for (const auto& [name, value] : res.headers)
    out.headers.emplace_back(name, value);
  out.body = std::move(body);
  wipe_string(res.body);
  return out;
}

}  // namespace

http_response perform(const http_request& request) {
  // Validate before any byte is sent: the URL (no userinfo, fragment or control byte), the
  // method and the headers.
  const auto url = parse_url(request.url);
  if (!url)
    return transport_failure("invalid url");
  if (!is_supported_method(request.method))
    return transport_failure("unsupported method");
  for (const auto& [name, value] : request.headers)
    if (!is_valid_header(name, value))
      return transport_failure("invalid header");

  // httplib may throw (std::regex in its constructor, allocation); nothing escapes.
  try {
    return perform_checked(request, *url);
  } catch (...) {
    return transport_failure("transport error");
  }
}

}  // namespace latchkey
