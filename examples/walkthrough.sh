#!/usr/bin/env bash
# Steward's main job, end to end, with curl against a real server.
#
#   bash examples/walkthrough.sh
#
# Starts its own server on a free port with a temporary data directory (or uses
# STEWARD_URL, with STEWARD_DATA pointing at that server's data directory for the
# development message sink and the CLI; start that server with
# STEWARD_OTP_RESEND_INTERVAL=1s, since the walkthrough sends two codes to one number
# within a minute). Needs curl and jq. Exits non-zero on the first unexpected answer;
# the last line reports how many steps passed.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
passed=0
total=0
tmp=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  echo "walkthrough: $passed of $total steps passed (stopped at a failure)"
  exit 1
}
step() { total=$((total + 1)); echo "--- step $total: $*"; }
ok() { passed=$((passed + 1)); echo "    ok: $*"; }

for tool in curl jq; do command -v "$tool" >/dev/null || fail "$tool is not installed (apt-get install $tool)"; done

steward=${STEWARD_BIN:-}
if [ -z "$steward" ]; then
  (cd "$here" && go build -o "$tmp/steward" ./cmd/steward) || fail "go build"
  steward="$tmp/steward"
fi

if [ -n "${STEWARD_URL:-}" ]; then
  url=$STEWARD_URL
  data=${STEWARD_DATA:?set STEWARD_DATA to the server data directory when STEWARD_URL is set}
else
  data="$tmp/data"
  # Codes to one number are spaced a minute apart by default; the walkthrough
  # sends two registration codes to one number, so it asks for a second.
  STEWARD_OTP_RESEND_INTERVAL=1s "$steward" serve --addr 127.0.0.1:0 --data "$data" >"$tmp/serve.out" 2>"$tmp/serve.log" &
  server_pid=$!
  for _ in $(seq 100); do
    url=$(sed -n 's/^Steward is listening on \(http:[^ ]*\).*/\1/p' "$tmp/serve.out")
    [ -n "$url" ] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/serve.log" >&2; fail "server exited"; }
    sleep 0.1
  done
  [ -n "$url" ] || fail "server did not start"
fi
sink="$data/messages.jsonl"
echo "server: $url (messages: $sink)"

# call METHOD PATH EXPECTED_STATUS [TOKEN] [BODY]: prints the body; fails on another status.
call() {
  local method=$1 path=$2 want=$3 token=${4:-} body=${5:-}
  local args=(-s -o "$tmp/body" -w '%{http_code}' -X "$method" "$url$path")
  [ -n "$token" ] && args+=(-H "Authorization: Bearer $token")
  [ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data "$body")
  local got
  got=$(curl "${args[@]}") || fail "$method $path: curl failed"
  [ "$got" = "$want" ] || fail "$method $path: status $got, want $want: $(cat "$tmp/body")"
  cat "$tmp/body"
}

# sent E164: how many messages the development sink holds for that number.
sent() { { jq -r --arg to "$1" 'select(.to == $to) | .id' "$sink" 2>/dev/null || true; } | wc -l; }

# code_after E164 N: waits until more than N messages went to E164, prints the last one's code.
code_after() {
  for _ in $(seq 100); do
    if [ "$(sent "$1")" -gt "$2" ]; then
      jq -r --arg to "$1" 'select(.to == $to) | .body' "$sink" | tail -n 1 | grep -o '[0-9]\{6\}' | head -n 1
      return
    fi
    sleep 0.1
  done
  fail "no new message to $1 in $sink"
}

consents='[{"purpose":"account","separate_consent":true},{"purpose":"risk_control","separate_consent":true}]'

# register WRITTEN_NUMBER E164 NICKNAME: prints "subject_id token".
register() {
  local n code
  n=$(sent "$2")
  call POST /v1/auth/codes 202 "" "{\"phone\":\"$1\",\"purpose\":\"register\"}" >/dev/null
  code=$(code_after "$2" "$n")
  local out
  out=$(call POST /v1/register 201 "" "{\"phone\":\"$1\",\"code\":\"$code\",\"fields\":{\"nickname\":\"$3\",\"birthday\":\"1990-05-17\",\"gender\":\"undisclosed\",\"imei\":\"490154203237518\"},\"consents\":$consents}")
  echo "$(jq -r .subject_id <<<"$out") $(jq -r .token <<<"$out")"
}

step "register three people, numbers written three ways; codes read from the development sink"
read -r id1 tok1 < <(register "+86 138 0013 8000" "+8613800138000" "张伟")
read -r id2 tok2 < <(register "0086-139-0013-9000" "+8613900139000" "李娜")
read -r id3 tok3 < <(register "13700137000" "+8613700137000" "王芳")
[ -n "$id1" ] && [ -n "$id2" ] && [ -n "$id3" ] || fail "missing subject ids"
[ "$(call GET /v1/me 200 "$tok2" | jq -r .fields.phone)" = "+8613900139000" ] || fail "phone not normalized to E.164"
ok "subjects $id1, $id2, $id3"

step "the same number in another format is the same person"
sleep 1.1
n=$(sent "+8613800138000")
call POST /v1/auth/codes 202 "" '{"phone":"138 0013 8000","purpose":"register"}' >/dev/null
code=$(code_after "+8613800138000" "$n")
err=$(call POST /v1/register 409 "" "{\"phone\":\"138 0013 8000\",\"code\":\"$code\",\"fields\":{\"birthday\":\"1990-05-17\"},\"consents\":$consents}")
[ "$(jq -r .error.code <<<"$err")" = "ECONFLICT" ] || fail "second registration: $err"
ok "ECONFLICT"

step "grant and withdraw consent for location services, with receipts"
rc=$(call POST /v1/me/consents 201 "$tok1" '{"purpose":"location_services","separate_consent":true}')
[ "$(jq -r .event.action <<<"$rc")" = "grant" ] || fail "grant receipt: $rc"
rc=$(call DELETE /v1/me/consents/location_services 200 "$tok1")
[ "$(jq -r .event.action <<<"$rc")" = "withdraw" ] || fail "withdraw receipt: $rc"
receipt_id=$(jq -r .receipt_id <<<"$rc")
[ "$(call GET "/v1/me/consents/$receipt_id/receipt" 200 "$tok1" | jq -r .event.purpose)" = "location_services" ] || fail "receipt download"
ok "grant and withdrawal recorded; receipt $receipt_id downloadable"

step "a client app reads under risk_control with consent"
if [ -n "${STEWARD_APP_TOKEN:-}" ]; then app=$STEWARD_APP_TOKEN; else
  app=$("$steward" token create --app risk-engine --data "$data" 2>/dev/null) || fail "token create"
fi
read_out=$(call GET "/v1/subjects/$id1/data?purpose=risk_control" 200 "$app")
[ "$(jq -r .fields.imei <<<"$read_out")" = "490154203237518" ] || fail "purpose read: $read_out"
[ "$(jq -r '.fields.nickname // "absent"' <<<"$read_out")" = "absent" ] || fail "nickname leaked outside its purpose"
ok "device id read; nickname not exposed"

step "the same read without the consent is refused"
call DELETE /v1/me/consents/risk_control 200 "$tok1" >/dev/null
err=$(call GET "/v1/subjects/$id1/data?purpose=risk_control" 403 "$app")
[ "$(jq -r .error.code <<<"$err")" = "EFORBIDDEN" ] || fail "read without consent: $err"
grep -q imei <<<"$(jq -c 'del(.error.message)' <<<"$err")" && fail "device id in the refusal"
ok "EFORBIDDEN: $(jq -r .error.message <<<"$err")"

step "export: every field, consent history and the access log"
x=$(call GET /v1/me/export 200 "$tok1")
[ "$(jq -r .schema <<<"$x")" = "steward.export/v1" ] || fail "export schema"
[ "$(jq '[.consents.history[] | select(.purpose == "location_services")] | length' <<<"$x")" = "2" ] || fail "consent history"
[ "$(jq '[.access_log[] | select(.actor == "app:risk-engine" and .action == "subject.read")] | length' <<<"$x")" = "1" ] || fail "access log"
ok "$(jq '.fields | length' <<<"$x") fields, $(jq '.consents.history | length' <<<"$x") consent events, $(jq '.access_log | length' <<<"$x") access-log entries"

step "a second device signs in"
n=$(sent "+8613700137000")
call POST /v1/auth/codes 202 "" '{"phone":"+8613700137000","purpose":"sign_in"}' >/dev/null
code=$(code_after "+8613700137000" "$n")
tok3b=$(call POST /v1/auth/sign-in 200 "" "{\"phone\":\"13700137000\",\"code\":\"$code\"}" | jq -r .token)
call GET /v1/me 200 "$tok3b" >/dev/null
ok "two live sessions for $id3"

step "cancel an account with a fresh one-time code; both devices' tokens are dead at once"
n=$(sent "+8613700137000")
call POST /v1/me/cancellation/code 202 "$tok3" >/dev/null
code=$(code_after "+8613700137000" "$n")
receipt=$(call POST /v1/me/cancellation 200 "$tok3" "{\"code\":\"$code\"}")
[ "$(jq '.key_ids_destroyed | length' <<<"$receipt")" = "1" ] || fail "deletion receipt: $receipt"
call GET /v1/me 401 "$tok3" >/dev/null
call GET /v1/me 401 "$tok3b" >/dev/null
err=$(call GET "/v1/subjects/$id3/data?purpose=risk_control" 410 "$app")
[ "$(jq -r .error.code <<<"$err")" = "EGONE" ] || fail "read of a cancelled subject: $err"
ok "receipt $(jq -r .receipt_id <<<"$receipt"): $(jq -r '.fields_erased | join(",")' <<<"$receipt") erased; tokens answer 401"

step "the audit trail is intact"
"$steward" audit verify --data "$data" >"$tmp/verify.out" || fail "audit verify: $(cat "$tmp/verify.out")"
ok "$(cat "$tmp/verify.out")"


# ---- rights requests (doc/requests.md) ----

step "subject 2 files a deletion; the privacy officer refuses it on an enumerated ground; the subject sees why and where to complain"
officer=$("$steward" token create --staff olivia --role privacy_officer --data "$data" 2>/dev/null) || fail "token create (officer)"
support=$("$steward" token create --staff sam --role support --data "$data" 2>/dev/null) || fail "token create (support)"
r1=$(call POST /v1/me/requests 201 "$tok2" '{"type":"deletion","deletion_ground":"breach_of_agreement","details":"Please delete my account."}')
rid1=$(jq -r .id <<<"$r1")
[ "$(jq -r .state <<<"$r1")" = "received" ] && [ "$(jq -r .due_on <<<"$r1")" != "null" ] || fail "filed request: $r1"
err=$(call POST "/v1/requests/$rid1/refuse" 400 "$officer" '{"ground":"","explanation":"No."}')
[ "$(jq -r .error.code <<<"$err")" = "EINVALID" ] || fail "refusal without a ground: $err"
call POST "/v1/requests/$rid1/refuse" 403 "$support" '{"ground":"highly_impractical","explanation":"No."}' >/dev/null
call POST "/v1/requests/$rid1/refuse" 200 "$officer" '{"ground":"highly_impractical","explanation":"The agreement you name is still being performed."}' >/dev/null
mine=$(call GET "/v1/me/requests/$rid1" 200 "$tok2")
[ "$(jq -r .state <<<"$mine")" = "refused" ] && [ "$(jq -r .refusal.ground <<<"$mine")" = "highly_impractical" ] &&
  [ -n "$(jq -r '.refusal.complaint_channel // empty' <<<"$mine")" ] || fail "the subject's view of the refusal: $mine"
ok "due $(jq -r .due_on <<<"$r1"); refused on $(jq -r .refusal.ground <<<"$mine") ($(jq -r .refusal_ground_title <<<"$mine")); a refusal without a ground is EINVALID, support may not refuse"

step "a second deletion, verified with a fresh one-time code, is fulfilled once: the account is erased and the certificate verifies"
r2=$(call POST /v1/me/requests 201 "$tok2" '{"type":"deletion","deletion_ground":"no_longer_used"}')
rid2=$(jq -r .id <<<"$r2")
call POST "/v1/requests/$rid2/fulfil" 409 "$officer" >/dev/null
n=$(sent "+8613900139000")
call POST "/v1/me/requests/$rid2/verification-code" 200 "$tok2" >/dev/null
code=$(code_after "+8613900139000" "$n")
[ "$(call POST "/v1/me/requests/$rid2/verify" 200 "$tok2" "{\"code\":\"$code\"}" | jq -r .state)" = "identity_verified" ] || fail "verification"
q=$(call GET "/v1/requests?type=deletion" 200 "$support")
[ "$(jq -r '.requests[0].id' <<<"$q")" = "$rid2" ] && [ "$(jq -r .counts.open <<<"$q")" = "1" ] || fail "queue: $q"
done=$(call POST "/v1/requests/$rid2/fulfil" 200 "$officer")
[ "$(jq -r .state <<<"$done")" = "fulfilled" ] || fail "fulfilment: $done"
jq .result <<<"$done" >"$tmp/certificate.json"
"$steward" certificate verify "$tmp/certificate.json" --data "$data" >"$tmp/cert.out" 2>&1 || fail "certificate verify: $(cat "$tmp/cert.out")"
call GET /v1/me 401 "$tok2" >/dev/null
call POST "/v1/requests/$rid2/fulfil" 409 "$officer" >/dev/null
"$steward" requests show "$rid2" --data "$data" >"$tmp/show.json" || fail "steward requests show"
[ "$(jq -r .state "$tmp/show.json")" = "fulfilled" ] || fail "CLI view: $(cat "$tmp/show.json")"
ok "$(jq -r '[.events[].to] | join(" → ")' <<<"$done"); $(head -n 1 "$tmp/cert.out")"
echo "walkthrough: $passed of $total steps passed"
