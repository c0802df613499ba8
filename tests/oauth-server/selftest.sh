#!/usr/bin/env bash
# Self-test of the test OAuth server: starts server.mjs on free loopback ports, logs users in
# with login.mjs, and checks rotation, reuse detection, injected failures, revocation, the
# resource API and the exact stats with curl. Stops by itself within 60 s; kills the server on
# every exit path. Prints "N passed, N failed" last.
set -euo pipefail
export LC_ALL=C

# Everything runs under timeout(1), which signals its whole process group (this shell, curl and
# the server) when the deadline passes.
if [[ -z "${LK_SELFTEST_UNDER_TIMEOUT:-}" ]]; then
  LK_SELFTEST_UNDER_TIMEOUT=1 exec timeout -k 5 60 bash "$0" "$@"
fi

cd "$(dirname "$0")"
if [[ ! -d node_modules/oidc-provider ]]; then
  npm ci --no-audit --no-fund >&2
fi

WORK=$(mktemp -d)
SERVER_PID=""
PASSED=0

stop_server() {
  if [[ -n "$SERVER_PID" ]]; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
}
cleanup() {
  stop_server
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 124' TERM INT

fail() {
  echo "not ok - $*" >&2
  echo "--- server stderr (tail) ---" >&2
  tail -n 20 "$WORK/server.err" >&2 2>/dev/null || true
  echo "$PASSED passed, 1 failed"
  exit 1
}
pass() {
  PASSED=$((PASSED + 1))
  echo "ok $PASSED - $*"
}
check_eq() { # actual expected what
  [[ "$1" == "$2" ]] || fail "$3: expected '$2', got '$1'"
}

# js EXPR: evaluates EXPR with j = the JSON document on stdin; strings print raw.
js() {
  node -e '
    const j = JSON.parse(require("fs").readFileSync(0, "utf8"));
    const v = eval(process.argv[1]);
    process.stdout.write(typeof v === "string" ? v : JSON.stringify(v) ?? "undefined");
  ' "$1"
}

# application/x-www-form-urlencoded encoding (RFC 6749 §2.3.1 / Appendix B).
formenc() {
  local s="$1" out="" c i
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case "$c" in
      [A-Za-z0-9._*-]) out+="$c" ;;
      ' ') out+='+' ;;
      *) out+=$(printf '%%%02X' "'$c") ;;
    esac
  done
  printf '%s' "$out"
}

# http ARGS...: curl; sets STATUS, BODY and HEADERS (file).
http() {
  STATUS=$(curl -sS --max-time 5 -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' "$@") \
    || fail "curl ${*: -1}"
  BODY=$(cat "$WORK/body")
}
control_get() { http "$ISSUER/__test/$1"; }
control_post() { http -X POST -H 'Content-Type: application/json' -d "$2" "$ISSUER/__test/$1"; }

# refresh RT CLIENT MODE: MODE basic (form-encoded Basic), post (form body) or raw-basic
# (unencoded id:secret, the RFC-violating variant).
refresh() {
  local rt="$1" client="$2" mode="$3" secret pair
  secret=$(printf '%s' "$READY" | js "j.clients['$client']")
  local -a auth=()
  case "$mode" in
    basic) pair="$(formenc "$client"):$(formenc "$secret")" ;;
    raw-basic) pair="$client:$secret" ;;
    post) auth=(--data-urlencode "client_id=$client" --data-urlencode "client_secret=$secret") ;;
  esac
  if [[ "$mode" != post ]]; then
    auth=(-H "Authorization: Basic $(printf '%s' "$pair" | base64 -w0)")
  fi
  http -X POST -H 'Accept: application/json' "${auth[@]}" \
    --data-urlencode grant_type=refresh_token --data-urlencode "refresh_token=$rt" "$TOKEN_URL"
}

# api METHOD PATH TOKEN [curl args...]
api() {
  local method="$1" path="$2" token="$3"
  shift 3
  http -X "$method" -H "Authorization: Bearer $token" "$@" "$RESOURCE_BASE$path"
}

login() { # CLIENT USER [SCOPE]
  local secret
  secret=$(printf '%s' "$READY" | js "j.clients['$1']")
  LK_TEST_CLIENT_SECRET="$secret" node login.mjs --issuer="$ISSUER" --client="$1" --user="$2" \
    --scope="${3:-openid offline_access leads.read leads.write}" 2>>"$WORK/login.err" \
    || fail "login.mjs $1 $2: $(cat "$WORK/login.err")"
}

start_server() { # extra flags...
  : >"$WORK/server.out"
  node server.mjs "$@" >"$WORK/server.out" 2>>"$WORK/server.err" &
  SERVER_PID=$!
  for _ in $(seq 200); do
    if grep -q '^READY ' "$WORK/server.out"; then break; fi
    kill -0 "$SERVER_PID" 2>/dev/null || fail "server exited: $(cat "$WORK/server.err")"
    sleep 0.1
  done
  grep -q '^READY ' "$WORK/server.out" || fail "no READY line within 20 s"
  check_eq "$(wc -l <"$WORK/server.out")" 1 "stdout holds only the READY line"
  READY=$(sed 's/^READY //' "$WORK/server.out")
  ISSUER=$(printf '%s' "$READY" | js j.issuer)
  TOKEN_URL=$(printf '%s' "$READY" | js j.token_url)
  RESOURCE_BASE=$(printf '%s' "$READY" | js j.resource_base)
}

# Long enough that a loaded machine cannot expire a token in the middle of a check; expiry
# itself is tested after the restart, with a short TTL.
ACCESS_TTL=30
start_server --port=0 --resource-port=0 --access-ttl=$ACCESS_TTL --state-file="$WORK/state.json"
[[ "$ISSUER" =~ ^http://127\.0\.0\.1:[0-9]+$ ]] || fail "issuer $ISSUER"
check_eq "$TOKEN_URL" "$ISSUER/token" "token_url"
[[ "$RESOURCE_BASE" =~ ^http://127\.0\.0\.1:[0-9]+/api$ ]] || fail "resource_base $RESOURCE_BASE"
pass "server READY: $ISSUER, resource API $RESOURCE_BASE"

http "$ISSUER/.well-known/openid-configuration"
check_eq "$(printf '%s' "$BODY" | js j.issuer)" "$ISSUER" "discovery issuer"
check_eq "$(printf '%s' "$BODY" | js j.revocation_endpoint)" "$ISSUER/token/revocation" \
  "revocation endpoint"
pass "discovery document"

# --- login --------------------------------------------------------------------------------
TOKENS=$(login latchkey-basic alice)
AT1=$(printf '%s' "$TOKENS" | js j.access_token)
RT1=$(printf '%s' "$TOKENS" | js j.refresh_token)
check_eq "$(printf '%s' "$TOKENS" | js j.expires_in)" "$ACCESS_TTL" "expires_in"
check_eq "$(printf '%s' "$TOKENS" | js j.token_type)" Bearer "token_type"
check_eq "$(printf '%s' "$TOKENS" | js j.scope)" "openid offline_access leads.read leads.write" \
  "granted scope"
pass "login.mjs: alice via latchkey-basic (code + PKCE, Basic auth at the token endpoint)"

# --- resource API ---------------------------------------------------------------------------
api GET /leads?limit=1 "$AT1"
check_eq "$STATUS" 200 "GET /api/leads"
check_eq "$(printf '%s' "$BODY" | js '[j.ok, j.sub, j.method, j.path, j.body,
  j.idempotency_key]')" '[true,"alice","GET","/api/leads",null,null]' "GET echo"
check_eq "$(printf '%s' "$BODY" | js 'j.scopes.includes("leads.write")')" true "scopes"
api POST /reports/send "$AT1" -H 'Idempotency-Key: k-1' -H 'Content-Type: application/json' \
  -d '{"n":1}'
check_eq "$STATUS" 200 "POST /api/reports/send"
check_eq "$(printf '%s' "$BODY" | js '[j.method, j.idempotency_key, j.body]')" \
  '["POST","k-1",{"n":1}]' "POST echo"
api POST /notes "$AT1" -d 'plain text'
check_eq "$(printf '%s' "$BODY" | js j.body)" "plain text" "non-JSON body echoed as a string"
pass "resource API: 200 with sub, scopes, Idempotency-Key and body"

http "$RESOURCE_BASE/leads"
check_eq "$STATUS:$BODY" '401:{"error":"invalid_token"}' "no Authorization"
grep -qi '^WWW-Authenticate: Bearer' "$WORK/headers" || fail "401 without WWW-Authenticate"
http -H "Authorization: bearer $AT1" "$RESOURCE_BASE/leads"
check_eq "$STATUS" 401 "lower-case scheme 'bearer'"
api GET /leads "not-a-token"
check_eq "$STATUS" 401 "unknown token"
api GET /../other "$AT1" --path-as-is
check_eq "$STATUS" 404 "path outside /api/"
pass "resource API: 401 for missing, mis-spelled and unknown tokens; 404 outside /api/"

# --- refresh, rotation, Basic decoding --------------------------------------------------------
control_post reset-stats '{}'
refresh "$RT1" latchkey-basic basic
check_eq "$STATUS" 200 "refresh with form-encoded Basic credentials"
RT2=$(printf '%s' "$BODY" | js j.refresh_token)
AT2=$(printf '%s' "$BODY" | js j.access_token)
[[ -n "$RT2" && "$RT2" != "$RT1" ]] || fail "refresh token did not rotate"
check_eq "$(printf '%s' "$BODY" | js j.expires_in)" "$ACCESS_TTL" "refresh expires_in"
api GET /leads "$AT2"
check_eq "$STATUS" 200 "new access token works"
pass "refresh (curl, Basic with id:secret form-encoded) rotates the refresh token"

refresh "$RT2" latchkey-basic raw-basic
# oidc-provider form-decodes Basic credentials: the raw secret's '%2=' is a malformed escape.
check_eq "$STATUS:$(printf '%s' "$BODY" | js j.error)" 400:invalid_request "raw Basic credentials"
refresh "$RT2" latchkey-basic post
check_eq "$STATUS:$(printf '%s' "$BODY" | js j.error)" 401:invalid_client \
  "client_secret_post for a client_secret_basic client"
control_get grant-valid?account=alice
check_eq "$BODY" '{"valid":true}' "grant still valid after rejected client auth"
pass "unencoded Basic credentials and the wrong auth method are rejected"

# --- injected token endpoint failures ---------------------------------------------------------
control_post fail-token '{"count":2,"status":503,"headers":{"Retry-After":"1"}}'
refresh "$RT2" latchkey-basic basic
check_eq "$STATUS:$BODY" '503:{"error":"server_error"}' "injected failure 1"
grep -qi '^Retry-After: 1' "$WORK/headers" || fail "injected Retry-After missing"
refresh "$RT2" latchkey-basic basic
check_eq "$STATUS" 503 "injected failure 2"
control_post fail-token '{"count":1,"status":200,"body":{"error":"bad_refresh_token"}}'
refresh "$RT2" latchkey-basic basic
check_eq "$STATUS:$BODY" '200:{"error":"bad_refresh_token"}' "injected 200 error body"
control_post fail-token '{"count":1,"status":502,"body":"<html>bad gateway</html>"}'
refresh "$RT2" latchkey-basic basic
check_eq "$STATUS:$BODY" '502:<html>bad gateway</html>' "injected non-JSON body"
control_get grant-valid?account=alice
check_eq "$BODY" '{"valid":true}' "grant valid: injected failures never reached oidc-provider"
refresh "$RT2" latchkey-basic basic
check_eq "$STATUS" 200 "refresh after the injected failures, same refresh token"
RT3=$(printf '%s' "$BODY" | js j.refresh_token)
AT3=$(printf '%s' "$BODY" | js j.access_token)
pass "fail-token: injected 503/200/502 responses leave the refresh token usable"

# --- reuse detection ----------------------------------------------------------------------------
refresh "$RT1" latchkey-basic basic
check_eq "$STATUS:$BODY" \
  '400:{"error":"invalid_grant","error_description":"grant request is invalid"}' \
  "reuse of a rotated-out refresh token"
control_get grant-valid?account=alice
check_eq "$BODY" '{"valid":false}' "grant revoked by reuse detection"
refresh "$RT3" latchkey-basic basic
check_eq "$STATUS:$(printf '%s' "$BODY" | js j.error)" 400:invalid_grant \
  "newest token of the family"
api GET /leads "$AT3"
check_eq "$STATUS" 401 "access token of the revoked family"
pass "reuse detection: an old refresh token revokes the whole grant"

EXPECTED='{"token_requests":{"authorization_code":0,"refresh_token":10,"other":0},'
EXPECTED+='"refresh_results":{"ok":2,"error":8},"refresh_errors":{"invalid_request":1,'
EXPECTED+='"invalid_client":1,"server_error":2,"bad_refresh_token":1,"http_502":1,'
EXPECTED+='"invalid_grant":2},"rotations":2,"resource_requests":2,"revocation_requests":0}'
control_get stats
check_eq "$BODY" "$EXPECTED" "stats after the refresh block"
pass "stats: exact token, refresh and resource counts"

# --- resource failures and the log ----------------------------------------------------------------
TOKENS=$(login latchkey-basic alice "openid offline_access leads.read")
AT4=$(printf '%s' "$TOKENS" | js j.access_token)
RT4=$(printf '%s' "$TOKENS" | js j.refresh_token)
control_get grant-valid?account=alice
check_eq "$BODY" '{"valid":true}' "a fresh login gives a valid grant"
control_post reset-stats '{}'
control_post fail-resource '{"count":1,"status":429,"headers":{"Retry-After":"1"}}'
api POST /leads "$AT4" -H 'Idempotency-Key: idem-7' -d '{"name":"x"}'
check_eq "$STATUS:$BODY" '429:{"error":"rate_limited"}' "injected 429"
grep -qi '^Retry-After: 1' "$WORK/headers" || fail "injected Retry-After missing"
api POST /leads "$AT4" -H 'Idempotency-Key: idem-7' -d '{"name":"x"}'
check_eq "$STATUS" 200 "retry after the injected 429"
check_eq "$(printf '%s' "$BODY" | js j.scopes)" '["openid","offline_access","leads.read"]' \
  "narrower scope"
http -H 'Authorization: Basic Zm9vOmJhcg==' "$RESOURCE_BASE/leads"
control_get resource-log
LOG=$BODY
check_eq "$(printf '%s' "$LOG" | js 'j.map((e) => [e.method, e.path, e.status, e.sub,
  e.idempotency_key]).join(";")')" "POST,/api/leads,429,alice,idem-7;\
POST,/api/leads,200,alice,idem-7;GET,/api/leads,401,,"  "resource log entries"
SHA=$(printf '%s' "$AT4" | sha256sum | cut -d' ' -f1)
check_eq "$(printf '%s' "$LOG" | js 'j[0].token_sha256')" "$SHA" "token_sha256"
check_eq "$(printf '%s' "$LOG" | js 'j[1].body.name')" x "logged body"
[[ "$LOG" != *"$AT4"* ]] || fail "raw access token in the resource log"
control_get stats
check_eq "$(printf '%s' "$BODY" | js j.resource_requests)" 3 "resource_requests"
control_post fail-resource '{"count":1,"status":401}'
api GET /leads "$AT4"
check_eq "$STATUS:$BODY" '401:{"error":"invalid_token"}' "injected 401"
grep -qi '^WWW-Authenticate: Bearer error="invalid_token"' "$WORK/headers" \
  || fail "injected 401 without WWW-Authenticate"
pass "fail-resource and resource-log (sub, Idempotency-Key, token hash, never the token)"

# --- revoke ---------------------------------------------------------------------------------------
TOKENS=$(login latchkey-post bob "openid offline_access reports.send")
RTB=$(printf '%s' "$TOKENS" | js j.refresh_token)
refresh "$RTB" latchkey-post post
check_eq "$STATUS" 200 "refresh with client_secret_post"
RTB=$(printf '%s' "$BODY" | js j.refresh_token)
ATB=$(printf '%s' "$BODY" | js j.access_token)
control_post revoke '{"account":"bob"}'
check_eq "$BODY" '{"ok":true,"revoked_grants":1}' "revoke bob"
refresh "$RTB" latchkey-post post
check_eq "$STATUS:$BODY" \
  '400:{"error":"invalid_grant","error_description":"grant request is invalid"}' \
  "refresh after revoke"
api GET /reports "$ATB"
check_eq "$STATUS" 401 "access token after revoke"
control_get grant-valid?account=bob
check_eq "$BODY" '{"valid":false}' "bob's grant"
control_get grant-valid?account=alice
check_eq "$BODY" '{"valid":true}' "alice untouched by bob's revocation"
pass "revoke: refresh gives invalid_grant, access tokens fail, other accounts untouched"

# --- revocation endpoint --------------------------------------------------------------------------
SECRET_B=$(printf '%s' "$READY" | js "j.clients['latchkey-basic']")
http -X POST -H "Authorization: Basic $(printf '%s:%s' latchkey-basic "$(formenc "$SECRET_B")" \
  | base64 -w0)" --data-urlencode "token=$RT4" "$ISSUER/token/revocation"
check_eq "$STATUS" 200 "RFC 7009 revocation"
control_get grant-valid?account=alice
check_eq "$BODY" '{"valid":false}' "grant after revoking its refresh token"
pass "revocation endpoint"

TOKENS=$(login latchkey-basic carol)
RTC=$(printf '%s' "$TOKENS" | js j.refresh_token)
control_get issued-tokens
for token in "$AT1" "$RT1" "$RT2" "$AT3" "$RT4" "$ATB" "$RTC"; do
  check_eq "$(printf '%s' "$BODY" | js "j.includes('$token')")" true "token in issued-tokens"
done
pass "issued-tokens lists every access and refresh token issued"

# --- restart with the state file, and access token expiry -----------------------------------
OLD_ISSUER=$ISSUER
stop_server
SHORT_TTL=3
start_server --access-ttl=$SHORT_TTL --state-file="$WORK/state.json"
check_eq "$ISSUER" "$OLD_ISSUER" "issuer after restart"
refresh "$RTC" latchkey-basic basic
check_eq "$STATUS" 200 "refresh token survives a restart"
# sed, not node: the token has to be used well within its lifetime.
ATC=$(printf '%s' "$BODY" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
api GET /x "$ATC"
check_eq "$STATUS" 200 "access token after restart"
pass "--state-file: grants, tokens, secrets and ports survive a restart"
sleep $((SHORT_TTL + 1))
api GET /x "$ATC"
check_eq "$STATUS" 401 "access token after $SHORT_TTL s"
check_eq "$(printf '%s' "$BODY" | js 'j.error')" invalid_token "expired token error"
pass "access tokens expire after --access-ttl"

# --- hygiene and shutdown ---------------------------------------------------------------------
for secret in "$AT1" "$RT1" "$RT2" "$AT4" "$RTC" "$SECRET_B"; do
  if grep -qF -- "$secret" "$WORK/server.err"; then
    fail "a token or secret appears on server stderr"
  fi
done
PID=$SERVER_PID
kill -TERM "$PID"
for _ in $(seq 30); do
  kill -0 "$PID" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$PID" 2>/dev/null; then fail "server still running 3 s after SIGTERM"; fi
wait "$PID" && RC=0 || RC=$?
SERVER_PID=""
check_eq "$RC" 0 "exit status after SIGTERM"
pass "no token or secret on stderr; clean exit on SIGTERM"

echo "$PASSED passed, 0 failed"
