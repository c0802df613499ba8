#include "actors/metrics.hpp"

namespace latchkey {

namespace {

void counter(std::string& out, const char* name, const char* help, const char* label,
             const std::atomic<std::uint64_t>& value) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += " counter\n";
  out += name;
  out += label;
  out += ' ';
  out += std::to_string(value.load(std::memory_order_relaxed));
  out += '\n';
}

}  // namespace

std::string metrics::render() const {
  std::string out;
  // One metric family per outcome keeps the HELP/TYPE lines simple for this small set.
  counter(out, "latchkey_refresh_ok_total", "Token refreshes that succeeded.", "", refresh_ok);
  counter(out, "latchkey_refresh_rotated_total", "Refreshes that rotated the refresh token.", "",
          refresh_rotated);
  counter(out, "latchkey_refresh_invalid_grant_total",
          "Refreshes refused because the grant is dead (user must reconnect).", "",
          refresh_invalid_grant);
  counter(out, "latchkey_refresh_transient_total", "Refreshes that failed and will be retried.", "",
          refresh_transient);
  counter(out, "latchkey_refresh_permanent_total",
          "Refreshes refused for configuration reasons (client credentials, token type).", "",
          refresh_permanent);
  counter(out, "latchkey_token_cache_hits_total", "Access tokens served from memory.", "",
          token_cache_hits);
  counter(out, "latchkey_tasks_created_total", "Tasks accepted.", "", task_created);
  counter(out, "latchkey_task_attempts_total", "Task attempts started.", "", task_attempts);
  counter(out, "latchkey_tasks_succeeded_total", "Tasks that succeeded.", "", task_succeeded);
  counter(out, "latchkey_tasks_failed_total", "Tasks that failed for good.", "", task_failed);
  counter(out, "latchkey_task_retries_total", "Attempts that ended in a scheduled retry.", "",
          task_retried);
  counter(out, "latchkey_tasks_blocked_total", "Tasks parked until the user reconnects.", "",
          task_blocked);
  counter(out, "latchkey_tasks_cancelled_total", "Tasks cancelled by an agent.", "",
          task_cancelled);
  counter(out, "latchkey_connections_needs_reconnect_total",
          "Connections marked as needing the user to reconnect.", "",
          connections_needing_reconnect);
  return out;
}

}  // namespace latchkey
