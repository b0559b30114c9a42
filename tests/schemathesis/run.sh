#!/usr/bin/env bash
# Schemathesis against the release binary: generates requests from the served OpenAPI document
# (valid and invalid ones) and fails on any 5xx, any status, content type, header or body the
# document does not describe, and any schema-violating request that is accepted.
#
# Three passes over one fresh server (temporary data directory, free port, email and SMS to the
# outbox, per-IP throttling off so the generated wrong passwords do not lock the run out): no
# session; a password-only session of a user who must enroll a second factor; a fully signed-in
# administrator (sessions.py changes the first administrator's temporary password and enrolls
# an authenticator).
#
# Usage: tests/schemathesis/run.sh [path to the twofold binary]   (default target/release/twofold)
# Environment: SCHEMATHESIS_EXAMPLES (cases per operation and pass, default 25),
# SCHEMATHESIS_VENV (where schemathesis is installed, default ~/.cache/twofold-schemathesis-VERSION).
set -euo pipefail
cd "$(dirname "$0")/../.."

VERSION=4.32.5
VENV="${SCHEMATHESIS_VENV:-$HOME/.cache/twofold-schemathesis-$VERSION}"
BIN="$(realpath "${1:-target/release/twofold}")"
EXAMPLES="${SCHEMATHESIS_EXAMPLES:-25}"

if [ ! -x "$VENV/bin/schemathesis" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION"
fi

DATA="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$DATA"
}
trap cleanup EXIT

env -u TWOFOLD_SMTP_URL -u TWOFOLD_SMS_URL -u TWOFOLD_DATABASE_URL -u TWOFOLD_PUBLIC_URL \
  -u TWOFOLD_MASTER_KEY_FILE -u TWOFOLD_SMS_INBOUND_NUMBER -u TWOFOLD_SMS_INBOUND_TOKEN \
  TWOFOLD_LISTEN="127.0.0.1:$PORT" TWOFOLD_DATA_DIR="$DATA" TWOFOLD_IP_FREE_FAILURES=0 \
  RUST_LOG=warn "$BIN" serve >"$DATA/stdout" 2>"$DATA/stderr" &
SERVER_PID=$!

for _ in $(seq 1 100); do
  if curl -fsS "$BASE/healthz" >/dev/null 2>&1; then break; fi
  sleep 0.1
done
curl -fsS "$BASE/healthz" >/dev/null || { cat "$DATA/stderr"; exit 1; }
TEMPORARY="$(grep -m1 'admin@localhost' "$DATA/stdout" | awk '{print $NF}')"
[ -n "$TEMPORARY" ] || { echo "no first administrator line on stdout" >&2; exit 1; }

SESSIONS="$(python3 tests/schemathesis/sessions.py "$BASE" "$TEMPORARY")"
ADMIN_COOKIE="$(sed -n 's/^admin=//p' <<<"$SESSIONS")"
ENROLLING_COOKIE="$(sed -n 's/^enrolling=//p' <<<"$SESSIONS")"

CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection
# One worker: with several, Hypothesis (4.32.5's) sometimes fails in its own lambda-source cache
# ("AST constructor recursion depth mismatch"), an error of the tool, not of the server.
run_pass() {
  local name="$1"
  shift
  printf '\n--- schemathesis: %s\n' "$name"
  # From the temporary directory, where its example database (.schemathesis/) goes too.
  (cd "$DATA" && "$VENV/bin/schemathesis" run "$BASE/api/openapi.json" \
    --checks "$CHECKS" \
    --max-examples "$EXAMPLES" \
    --phases examples,coverage,fuzzing \
    --workers 1 \
    --seed 6 \
    --suppress-health-check all \
    --request-timeout 10 \
    --warnings off \
    "$@")
}

# The status `curl` gets for METHOD PATH with the session cookie.
status_with() {
  curl -s -o /dev/null -w '%{http_code}' -X "$2" -H "Cookie: twofold_session=$1" \
    -H 'Content-Type: application/json' --data '{}' "$BASE$3"
}

status=0
run_pass "no session" || status=1
# Signing out or in again would end the session the pass is about.
[ "$(status_with "$ENROLLING_COOKIE" POST /api/v1/account/totp)" = 200 ] ||
  { echo "the enrollment session does not work" >&2; exit 1; }
run_pass "password-only session (enrollment_required)" \
  --header "Cookie: twofold_session=$ENROLLING_COOKIE" \
  --exclude-path /api/v1/logout --exclude-path /api/v1/login || status=1
[ "$(status_with "$ADMIN_COOKIE" GET /api/v1/admin/policy)" = 200 ] ||
  { echo "the administrator's session does not work" >&2; exit 1; }
run_pass "administrator" \
  --header "Cookie: twofold_session=$ADMIN_COOKIE" \
  --exclude-path /api/v1/logout --exclude-path /api/v1/login || status=1
echo "after the administrator pass, GET /api/v1/admin/policy with its session: $(status_with "$ADMIN_COOKIE" GET /api/v1/admin/policy)"

if grep -q 'panicked' "$DATA/stderr"; then
  echo "the server panicked:" >&2
  grep -A5 'panicked' "$DATA/stderr" >&2
  status=1
fi
exit "$status"
