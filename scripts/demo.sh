#!/usr/bin/env bash
# The main job, end to end on one node, narrated step by step:
#   the bundled OAuth server (oidc-provider, 5-second access tokens, refresh tokens rotated on
#   every use) and its resource API; latchkeyd on a fresh embedded RocksDB directory with a
#   generated dev master key; a user logged in without a browser; the tokens imported; a task
#   that comes due after the access token expired; the refresh, the stored rotation, and the
#   action succeeding. Everything listens on 127.0.0.1 and is stopped at the end.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
build_dir="${BUILD_DIR:-$root/build}"
[ "${SKIP_SETUP:-0}" = 1 ] || "$root/scripts/setup.sh"

work="$(mktemp -d /tmp/latchkey-demo.XXXXXX)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say() { printf '   %s\n' "$*"; }
# Waits until FILE has a line starting with PREFIX, then prints that line.
wait_line() {
  for _ in $(seq 1 300); do
    if line=$(grep -m1 "^$2" "$1" 2>/dev/null); then echo "$line"; return 0; fi
    sleep 0.1
  done
  echo "demo: timed out waiting for '$2' in $1" >&2
  return 1
}

step "1. Start the bundled OAuth server (access tokens live 5 s, refresh tokens rotate)"
node "$root/tests/oauth-server/server.mjs" --port=0 --resource-port=0 --access-ttl=5 \
  >"$work/oauth.out" 2>"$work/oauth.log" &
pids+=($!)
ready=$(wait_line "$work/oauth.out" "READY ")
info=${ready#READY }
issuer=$(jq -r .issuer <<<"$info")
token_url=$(jq -r .token_url <<<"$info")
api_base=$(jq -r .resource_base <<<"$info")
client_secret=$(jq -r '.clients["latchkey-basic"]' <<<"$info")
say "issuer $issuer, resource API $api_base"

step "2. Start latchkeyd on a fresh data directory with a generated dev master key"
# --token-min-lifetime-s=1: the bundled server's tokens live 5 s, less than the default 30 s
# safety margin, which would make every task refresh; 1 s lets the imported token be used
# until it really expires, so the refresh after expiry is visible.
openssl rand -base64 32 >"$work/master.key"
openssl rand -hex 32 >"$work/admin.key"
chmod 600 "$work/master.key" "$work/admin.key"
"$build_dir/latchkeyd" --data-dir="$work/data" --http-address=127.0.0.1 --http-port=0 \
  --master-key-file="$work/master.key" --admin-key-file="$work/admin.key" \
  --log-file="$work/latchkeyd.log" --token-min-lifetime-s=1 \
  >"$work/latchkeyd.out" 2>"$work/latchkeyd.err" &
pids+=($!)
port=$(wait_line "$work/latchkeyd.out" "latchkeyd ready" | sed 's/.*port=//')
api="http://127.0.0.1:$port"
admin="Authorization: Bearer $(cat "$work/admin.key")"
json="Content-Type: application/json"
say "latchkeyd listening on $api, data in $work/data"

step "3. Register the provider and an agent (admin key)"
curl -sf -X POST "$api/v1/providers" -H "$admin" -H "$json" -d "$(jq -n \
  --arg t "$token_url" --arg a "$api_base" --arg s "$client_secret" \
  '{id:"demo", token_url:$t, api_base_url:$a, client_id:"latchkey-basic", client_secret:$s,
    auth_method:"client_secret_basic", scopes:["openid","offline_access","leads.read","leads.write"]}')" \
  | jq -c '{id, auth_method, api_base_url}'
agent_key=$(curl -sf -X POST "$api/v1/agents" -H "$admin" -H "$json" -d '{"id":"sales-bot","users":["alice"]}' \
  | jq -r .key)
agent="Authorization: Bearer $agent_key"
say "agent sales-bot created; its key is shown once and only its hash is stored"

step "4. Log alice in at the OAuth server, without a browser (authorization code + PKCE)"
tokens=$(node "$root/tests/oauth-server/login.mjs" --issuer="$issuer" --client=latchkey-basic \
  --secret="$client_secret" --user=alice --scope="openid offline_access leads.read leads.write")
say "got an access token (expires in $(jq -r .expires_in <<<"$tokens") s) and a refresh token"

step "5. Import the tokens into latchkeyd (the reply never echoes a token)"
curl -sf -X PUT "$api/v1/users/alice/connections/demo" -H "$agent" -H "$json" -d "$(jq -c \
  '{refresh_token, access_token, expires_in, scope}' <<<"$tokens")" | jq -c .

step "6. Schedule a task that comes due after the access token has expired (in 8 s)"
task=$(curl -sf -X POST "$api/v1/users/alice/tasks" -H "$agent" -H "$json" -d '{
  "provider":"demo", "scopes":["leads.write"], "delay_seconds":8,
  "action":{"method":"POST","path":"/leads/42/follow-up","body":{"note":"call back"}}}')
task_id=$(jq -r .id <<<"$task")
jq -c '{id, status, run_at}' <<<"$task"

step "7. Wait: the access token expires, the task comes due"
for _ in $(seq 1 40); do
  status=$(curl -sf "$api/v1/users/alice/tasks/$task_id" -H "$agent" | jq -r .status)
  say "task status: $status"
  case "$status" in succeeded|failed|blocked) break ;; esac
  sleep 1
done

step "8. What happened, step by step (the audit trail; no secret in it)"
curl -sf "$api/v1/users/alice/audit" -H "$agent" \
  | jq -r '.records[] | "   \(.at)  \(.event)  \(.outcome)  \(.detail // "")"'

step "9. The refresh and the rotation, as the provider saw them"
curl -sf "$issuer/__test/stats" | jq -c '{refresh_calls: .token_requests.refresh_token, rotations}'
curl -sf "$api/v1/users/alice/connections/demo" -H "$agent" \
  | jq -c '{status, rotations, last_refresh_at}'
say "the resource API received:"
curl -sf "$issuer/__test/resource-log" | jq -c '.[] | {method, path, status, idempotency_key}'

step "10. The task's final state"
curl -sf "$api/v1/users/alice/tasks/$task_id" -H "$agent" \
  | jq -c '{status, attempts, response_status, idempotency_key}'

step "11. Stop latchkeyd and search its data directory and log for the tokens"
kill "${pids[1]}"; wait "${pids[1]}" 2>/dev/null || true
found=0
# Every token the OAuth server issued (the rotated ones too), and the client secret.
for secret in $(curl -sf "$issuer/__test/issued-tokens" | jq -r '.[]') "$client_secret"; do
  if grep -rqF -- "$secret" "$work/data" "$work/latchkeyd.log"; then found=1; fi
done
if [ "$found" = 0 ]; then say "no token or client secret found on disk or in the log"; else
  say "SECRET FOUND ON DISK"; exit 1; fi

[ "$status" = succeeded ] || { echo "demo: the task did not succeed (status $status)"; exit 1; }
step "Done: the task ran after its access token expired, with a freshly minted one."
say "files of this run: $work"
