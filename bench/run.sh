#!/usr/bin/env bash
# The whole benchmark in one command: builds Release, runs the micro-benchmarks, then the load benchmark against
# etcd, direct mTLS etcd, etcd grpc-proxy and EtcdShield (plain and encrypting) on loopback, and writes
# bench/out/<timestamp>/{results.md,results.json,chart.svg}.
#
#   bash bench/run.sh --quick          # one round, 1 KiB, seconds per workload: under three minutes
#   bash bench/run.sh --full           # three rounds, 256 B / 1 KiB / 16 KiB: about 40 minutes
#   bash bench/run.sh --quick --targets etcd-mtls,shield-encrypted --workloads put   # any EtcdShield.LoadGen flag
#   bash bench/run.sh --quick --no-micro                                              # skip the micro-benchmarks
#   bash bench/run.sh --scenario snapshot,keepalive --targets etcd-mtls,grpc-proxy,shield-plain,shield-encrypted
#                                      # 1 GiB snapshot + lease keep-alive CPU, ~6 minutes; add --quick for a smoke test
#   bash bench/run.sh --scenario gateway --targets etcd-mtls,shield-plain,shield-encrypted
#                                      # HTTP/JSON gateway put and range (HTTP/1.1, mTLS) against etcd's own gateway;
#                                      # quick presets (< 2 min); add --full for the measurement (3 rounds, 3 sizes, ~15-20 min)
#   bash bench/run.sh --scenario startup --targets etcd-mtls,grpc-proxy,shield-encrypted
#                                      # start-up and memory (issue #12): exec to first answer, first 10 s vs steady, RSS;
#                                      # EtcdShield as `dotnet EtcdShield.dll` (JIT) and as deploy/publish.sh publishes it
#                                      # (about 1.5 min per row, 70 s of load; --quick 30 s, ~1 min per row; --full 90 s x 3 rounds)
#   bash bench/run.sh --quick --no-micro --workloads watch --watchers 10000 --watch-rate 1 \
#     --targets etcd-mtls,grpc-proxy,shield-encrypted,shield-encrypted+nosharing --shield-variant "nosharing=--watch-sharing=false"
#                                      # watch at scale (issue #13); the exact commands are in bench/RESULTS.md
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

mode=--quick
mode_args=()   # passed on only when given: the streaming scenarios measure at full size unless --quick is explicit
micro=1
scenario=unary
published=
loadgen_args=()
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  arg=${args[i]}
  case "$arg" in
    --quick|--full) mode=$arg; mode_args=("$arg") ;;
    --no-micro) micro=0 ;;
    --scenario) scenario=${args[i + 1]:-}; loadgen_args+=("$arg") ;;
    --shield-published) published=${args[i + 1]:-}; loadgen_args+=("$arg") ;;
    *) loadgen_args+=("$arg") ;;
  esac
done
# The micro-benchmarks belong to the unary workloads' goals; a snapshot, keep-alive or gateway run does without them.
case ",$scenario," in *,unary,*) ;; *) micro=0 ;; esac

for tool in etcd dotnet; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is not installed (bash deploy/install-prerequisites.sh installs it)" >&2; exit 2; }
done

out="$root/bench/out/$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$out"

# The load generator kills what it starts in finally blocks and on SIGTERM/Ctrl-C; this trap covers the rest (a
# SIGKILLed load generator) from the pid file it keeps, checking each pid is still one of our servers first.
cleanup() {
  [ -f "$out/pids" ] || return 0
  while read -r pid; do
    [ -n "$pid" ] || continue
    if grep -qaE 'etcd|EtcdShield' "/proc/$pid/cmdline" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
  done <"$out/pids"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "bench: building Release"
dotnet build bench/EtcdShield.Microbench -c Release --nologo -v q -warnaserror 2>&1 | grep -E 'error|Warn|warn' || true
dotnet build bench/EtcdShield.LoadGen -c Release --nologo -v q -warnaserror 2>&1 | grep -E 'error|Warn|warn' || true
test -f src/EtcdShield/bin/Release/net10.0/EtcdShield.dll || { echo "bench: the proxy did not build" >&2; exit 1; }

dotnet bench/EtcdShield.LoadGen/bin/Release/net10.0/EtcdShield.LoadGen.dll selftest

# The start-up scenario measures the proxy as the deploy layouts run it, next to the framework-dependent build.
case ",$scenario," in
  *,startup,*)
    if [ -z "$published" ]; then
      echo "bench: publishing with deploy/publish.sh (Native AOT)"
      published=$(bash deploy/publish.sh "$root/out/bench-published" | tail -1)
      loadgen_args+=(--shield-published "$published")
    fi ;;
esac

micro_args=()
if [ "$micro" = 1 ]; then
  echo "bench: micro-benchmarks (${mode#--})"
  dotnet bench/EtcdShield.Microbench/bin/Release/net10.0/EtcdShield.Bench.dll "$mode" \
    --json "$out/microbench.json" --artifacts "$out/microbench" >"$out/microbench.log" 2>&1 \
    || { echo "bench: micro-benchmarks failed, see $out/microbench.log" >&2; exit 1; }
  micro_args=(--microbench "$out/microbench.json")
fi

echo "bench: load (${mode_args[0]:-default presets}, scenario $scenario)"
status=0
dotnet bench/EtcdShield.LoadGen/bin/Release/net10.0/EtcdShield.LoadGen.dll run "${mode_args[@]}" --out "$out" \
  --command "bash bench/run.sh $*" "${micro_args[@]}" "${loadgen_args[@]}" || status=$?

echo "bench: results in $out/results.md"
exit $status
