#!/usr/bin/env bash
# Runs Steward's whole test suite: every package on SQLite and on PostgreSQL, the
# end-to-end walkthrough against the real binary, and a short fuzz run of the
# address-book parser. Fails if the PostgreSQL suite did not run.
#
# Needs Go, PostgreSQL on 127.0.0.1:5432 with trust auth (or STEWARD_TEST_POSTGRES_URL
# pointing at a server where the user may create databases), curl and jq. On Debian:
#   apt-get install postgresql curl jq
set -euo pipefail
cd "$(dirname "$0")"

export STEWARD_TEST_POSTGRES_URL=${STEWARD_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
export STEWARD_REQUIRE_POSTGRES=1

if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "PostgreSQL is not answering; starting it" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
    for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    echo "test.sh: PostgreSQL does not answer on 127.0.0.1:5432." >&2
    echo "Install and start it (apt-get install postgresql), or set STEWARD_TEST_POSTGRES_URL." >&2
    exit 1
  fi
fi
for tool in curl jq; do
  command -v "$tool" >/dev/null || { echo "test.sh: $tool is missing (apt-get install $tool)" >&2; exit 1; }
done

# The address-book tests read real exports from the shared corpus beside the repository.
if [ ! -d ../shared/testdata/addressbooks ]; then
  echo "test.sh: ../shared/testdata/addressbooks is missing: the tests read the shared address-book" >&2
  echo "corpus from beside the repository (clone the repository next to shared/)." >&2
  exit 1
fi

go vet ./...
out=$(mktemp)
trap 'rm -f "$out"' EXIT
set +e
go test -count=1 -timeout 30m -v ./... >"$out" 2>&1
status=$?
set -e
grep -E '^(ok|FAIL|---|panic|\s+\S+_test.go)' "$out" | grep -v -- '--- PASS' || true
if [ $status -ne 0 ]; then
  # Failures reported from helpers, fatal runtime errors and panics: the end of the log.
  echo "--- last 80 lines of go test's output:" >&2
  tail -n 80 "$out" >&2
  echo "test.sh: go test failed" >&2
  exit $status
fi
pg=$(grep -cE -- '--- PASS: \S+/postgres' "$out" || true)
skipped=$(grep -cE -- '--- SKIP: \S+/postgres' "$out" || true)
echo "PostgreSQL subtests passed: $pg (skipped: $skipped)"
if [ "$pg" -lt 10 ] || [ "$skipped" -gt 0 ]; then
  echo "test.sh: the PostgreSQL suite did not run in full" >&2
  exit 1
fi

go test -run '^$' -fuzz '^FuzzParse$' -fuzztime 20s ./contacts
echo "test.sh: all tests passed"
