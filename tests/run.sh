#!/usr/bin/env bash
# Runs EtcdShield's whole test suite: unit tests and end-to-end tests against real etcd, etcdctl,
# SoftHSM2 and Python etcd clients. Installs the system packages it needs first.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

"$root/deploy/install-prerequisites.sh"

results="$root/tests/.results"
rm -rf "$results"
status=0
dotnet build EtcdShield.sln -c Release --nologo -warnaserror 2>&1 | tail -3
for project in tests/EtcdShield.Tests tests/EtcdShield.EndToEnd; do
  log="$results/$(basename "$project").log"
  mkdir -p "$results"
  rc=0
  dotnet test "$project" -c Release --no-build --nologo \
    --logger "trx;LogFilePrefix=$(basename "$project")" --results-directory "$results" \
    --logger "console;verbosity=normal" >"$log" 2>&1 || rc=$?
  # Show failures and the summary, not one line per passing test.
  grep -vE '^\s*$|^\s+Passed ' "$log" || true
  [ "$rc" -eq 0 ] || status=1
done

# Every parser an attacker can feed, fuzzed for a bounded time (FUZZ_SECONDS per target, 0 to skip); a crash fails the run.
if [ "${FUZZ_SECONDS:-60}" != 0 ]; then
  "$root/tests/fuzz.sh" || status=1
fi

# One summary line over every project, from the test result files.
passed=0; failed=0; skipped=0
for trx in "$results"/*.trx; do
  [ -f "$trx" ] || continue
  counters=$(grep -o '<Counters [^>]*>' "$trx" | head -1)
  p=$(sed -E 's/.* passed="([0-9]+)".*/\1/' <<<"$counters"); f=$(sed -E 's/.* failed="([0-9]+)".*/\1/' <<<"$counters")
  n=$(( $(sed -E 's/.* total="([0-9]+)".*/\1/' <<<"$counters") - $(sed -E 's/.* executed="([0-9]+)".*/\1/' <<<"$counters") ))
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + n))
done
echo "tests: $passed passed, $failed failed, $skipped skipped"
if [ "$passed" -eq 0 ]; then echo "no test ran"; exit 1; fi
exit $status
