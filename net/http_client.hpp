// Blocking HTTP client for outbound calls (token endpoints, task actions). Call it only from
// threads that may block (the outbound pool's detached actors), never from CAF's scheduler.
#pragma once

#include "net/http_types.hpp"

namespace latchkey {

/// Performs `request` with its timeout (connect, read and write each). Never throws: transport
/// failures come back as status 0 with `transport_error` set to a short reason such as
/// "connection refused", "timeout" or "invalid url" (never a header or body byte).
/// http and https URLs are supported; redirects are not followed (a token must not follow one).
http_response perform(const http_request& request);

}  // namespace latchkey
