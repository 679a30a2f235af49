#!/usr/bin/env bash
# HTTP load figures for bench/README.md: /healthz, GET /v1/me and a purpose-bound
# read (consent check, decrypt, audit append), measured in one run with wrk at 16
# concurrent connections against a fresh server on SQLite.
#
#   bash bench/load.sh [DURATION]      (default 10s; needs wrk, curl, jq)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dur=${1:-10s}
tmp=$(mktemp -d)
pid=""
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$tmp"' EXIT
for tool in wrk curl jq; do command -v $tool >/dev/null || { echo "$tool is missing (apt-get install $tool)"; exit 1; }; done

(cd "$here" && go build -o "$tmp/steward" ./cmd/steward)
STEWARD_LOG_LEVEL=error STEWARD_SQLITE_SYNCHRONOUS=${SYNC:-FULL} "$tmp/steward" serve --addr 127.0.0.1:0 --data "$tmp/data" >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 100); do url=$(sed -n 's/^Steward is listening on \(http:[^ ]*\).*/\1/p' "$tmp/out"); [ -n "$url" ] && break; sleep 0.1; done

curl -sf "$url/v1/auth/codes" --json '{"phone":"+8613800138000","purpose":"register"}' >/dev/null
for _ in $(seq 50); do code=$(grep -o 'code is [0-9]*' "$tmp/data/messages.jsonl" 2>/dev/null | tail -n1 | cut -d' ' -f3); [ -n "$code" ] && break; sleep 0.1; done
reg=$(curl -sf "$url/v1/register" --json "{\"phone\":\"+8613800138000\",\"code\":\"$code\",\"fields\":{\"nickname\":\"张伟\",\"birthday\":\"1990-05-17\",\"imei\":\"490154203237518\",\"imsi\":\"460001234567890\"},\"consents\":[{\"purpose\":\"account\",\"separate_consent\":true},{\"purpose\":\"risk_control\",\"separate_consent\":true}]}")
sub=$(jq -r .token <<<"$reg"); id=$(jq -r .subject_id <<<"$reg")
app=$("$tmp/steward" token create --app risk-engine --data "$tmp/data" 2>/dev/null)

run() { # name path token
  local hdr=()
  [ -n "${3:-}" ] && hdr=(-H "Authorization: Bearer $3")
  local out
  out=$(wrk -t2 -c16 -d"$dur" --latency "${hdr[@]}" "$url$2")
  local rps p50 p99 errs
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errs=$(awk '/Non-2xx or 3xx/ {print $5} /Socket errors/ {print}' <<<"$out")
  printf '| %-28s | %10s | %8s | %8s | %s |\n' "$1" "$rps" "$p50" "$p99" "${errs:-0}"
  echo "$rps" >"$tmp/rps.$1"
}
echo "| endpoint (16 connections, $dur) | requests/s | p50 | p99 | non-2xx |"
echo "|---|---|---|---|---|"
run healthz /healthz
run me /v1/me "$sub"
run purpose_read "/v1/subjects/$id/data?purpose=risk_control" "$app"
awk -v h="$(cat "$tmp/rps.healthz")" -v m="$(cat "$tmp/rps.me")" -v r="$(cat "$tmp/rps.purpose_read")" \
  'BEGIN { printf "GET /v1/me: %.0f %% of /healthz; purpose-bound read: %.0f %% of /healthz\n", 100*m/h, 100*r/h }'
"$tmp/steward" audit verify --data "$tmp/data"
