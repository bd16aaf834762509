#!/usr/bin/env bash
# Where a proxy's CPU time goes under one workload: runs the load generator against one target and samples the
# proxy process with perf (JIT'd .NET frames named through DOTNET_PerfMapEnabled), then prints its CPU split by
# library (kernel networking, OpenSSL TLS, the .NET runtime/GC, managed code) and the hottest functions.
#
#   bash bench/profile.sh --target shield-encrypted --workload put --seconds 15
#   bash bench/profile.sh --target grpc-proxy --workload range-lin
#   bash bench/profile.sh --target shield-plain --workload snapshot --settle 30   # or --workload keepalive
#   bash bench/profile.sh --target shield-encrypted+nosharing --workload watch -- --watchers 10000 --watch-rate 1 \
#     --shield-variant "nosharing=--watch-sharing=false"     # everything after -- goes to the load generator
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

target=shield-encrypted
workload=put
seconds=15
settle=20
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; extra=("$@"); break ;;
    --target) target=$2; shift 2 ;;
    --workload) workload=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --settle) settle=$2; shift 2 ;;
    *) echo "usage: bash bench/profile.sh [--target ID] [--workload ID] [--seconds N] [--settle N] [-- LOADGEN FLAGS]" >&2; exit 2 ;;
  esac
done
command -v perf >/dev/null || { echo "profile: perf is not installed (apt-get install linux-perf)" >&2; exit 2; }

out="$root/bench/out/profile-$(date -u +%Y%m%d-%H%M%S)-$target-$workload"
mkdir -p "$out"
lg=
cleanup() {
  [ -n "$lg" ] && kill "$lg" 2>/dev/null && wait "$lg" 2>/dev/null || true
  [ -f "$out/pids" ] || return 0
  while read -r pid; do
    if [ -n "$pid" ] && grep -qaE 'etcd|EtcdShield' "/proc/$pid/cmdline" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
  done <"$out/pids"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

dotnet build src/EtcdShield -c Release --nologo -v q -warnaserror >/dev/null
dotnet build bench/EtcdShield.LoadGen -c Release --nologo -v q -warnaserror >/dev/null

# Inherited by the proxy the load generator starts: writes /tmp/perf-PID.map so perf can name JIT'd methods, and
# keeps JIT'd code in ordinary memory (W^X double mapping would hide it from the map).
export DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0
# snapshot and keepalive are the streaming scenarios: enough warm 1 GiB snapshots (about 5 s each) or one long
# keep-alive row over 10 streams to cover the settle time and the sampling.
case "$workload" in
  snapshot) load=(--scenario snapshot --warm-snapshots $(((seconds + settle) / 4 + 3))) ;;
  keepalive) load=(--scenario keepalive --keepalive-streams 10 --keepalive-target-warmup 0 --keepalive-duration $((seconds + settle + 5))) ;;
  *) load=(--quick --workloads "$workload" --sizes 1024 --warmup 3 --duration $((seconds + settle + 5))) ;;
esac
dotnet bench/EtcdShield.LoadGen/bin/Release/net10.0/EtcdShield.LoadGen.dll run --targets "$target" "${load[@]}" "${extra[@]}" --out "$out" \
  --command "bash bench/profile.sh --target $target --workload $workload --seconds $seconds" >"$out/loadgen.log" 2>&1 &
lg=$!

# The process to sample: the proxy when the target has one, else etcd itself. A candidate must still be alive
# after the settle time (past set-up, prepopulation and tiered JIT compilation, which on a busy machine takes
# many seconds of load): the PKCS#11 probe is a proxy that lives a second.
find_candidate() {
  local found=
  [ -f "$out/pids" ] || return 0
  for pid in $(cat "$out/pids"); do
    if grep -qaE 'EtcdShield.dll|grpc-proxy' "/proc/$pid/cmdline" 2>/dev/null; then found=$pid; fi
  done
  case "$target" in etcd|etcd-mtls) found=$(head -1 "$out/pids") ;; esac
  echo "$found"
}
proxy=
for _ in $(seq 1 30); do
  candidate=$(find_candidate)
  sleep 3
  # The probe is gone within a second or two; the target's proxy is still there.
  if [ -n "$candidate" ] && [ -r "/proc/$candidate/cmdline" ]; then
    sleep "$settle"
    if [ -r "/proc/$candidate/cmdline" ]; then proxy=$candidate; break; fi
  fi
done
[ -n "$proxy" ] || { echo "profile: the target did not start; see $out/loadgen.log" >&2; exit 1; }

echo "profile: sampling pid $proxy ($(tr '\0' ' ' </proc/$proxy/cmdline | cut -c1-60)...) for $seconds s"
perf record -F 499 -g -p "$proxy" -o "$out/perf.data" -- sleep "$seconds" 2>"$out/perf-record.log"
wait "$lg" || true
lg=

perf report -i "$out/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep -vE '^#|^$' >"$out/by-library.txt" || true
perf report -i "$out/perf.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null | grep -vE '^#|^$' | head -60 >"$out/top-functions.txt" || true
cat "$out/loadgen.log" | grep -E '^\s+r1 ' || true
echo "--- CPU by library (self time)"; head -15 "$out/by-library.txt"
echo "--- hottest functions (self time)"; head -40 "$out/top-functions.txt"
echo "profile: $out"
