// JSON views of records for API replies. They list what an agent may see and never a token:
// sealed values are not rendered at all.
#pragma once

#include <boost/json/value.hpp>

#include "persistence/records.hpp"

namespace latchkey::api {

boost::json::value connection_view(const connection_record& r);
boost::json::value task_view(const task_record& r);
boost::json::value audit_view(const audit_record& r);
boost::json::value provider_view(const provider_record& r);

}  // namespace latchkey::api
