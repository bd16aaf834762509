#!/usr/bin/env bash
# Fuzzes every parser an attacker can feed (the harnesses of tests/EtcdShield.Fuzz: envelope, crl, certificate,
# policy, request, json) with afl-fuzz over a SharpFuzz-instrumented copy of EtcdShield.dll, FUZZ_SECONDS (default 60)
# per target, two targets at a time. Exits 1, printing each crashing input and the exception it raises, on any
# crash, and when a fuzzer could not run at all. Findings stay in tests/.fuzz/findings/TARGET/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

seconds=${FUZZ_SECONDS:-60}
targets=(${FUZZ_TARGETS:-envelope crl certificate policy request json})
work="$root/tests/.fuzz"
rm -rf "$work"
mkdir -p "$work/findings"

command -v afl-fuzz >/dev/null || "$root/deploy/install-prerequisites.sh"
dotnet tool restore >/dev/null
dotnet build tests/EtcdShield.Fuzz -c Release --nologo -warnaserror -o "$work/bin" 2>&1 | tail -2
# Instrumented code writes its coverage to afl's shared memory, so it runs only under afl-fuzz: the seeds and the
# replay of crashes use the plain build, afl-fuzz an instrumented copy of the proxy and of the YAML parser under it.
cp -r "$work/bin" "$work/instrumented"
for assembly in EtcdShield.dll YamlDotNet.dll; do
  dotnet tool run sharpfuzz "$work/instrumented/$assembly" >"$work/instrument-$assembly.log" 2>&1 \
    || { cat "$work/instrument-$assembly.log"; echo "fuzz: could not instrument $assembly"; exit 1; }
done
dotnet="$(command -v dotnet)"
harness=("$dotnet" "$work/bin/EtcdShield.Fuzz.dll")
instrumented=("$dotnet" "$work/instrumented/EtcdShield.Fuzz.dll")
"${harness[@]}" seeds "$work"

# As root in CI, on a shared machine: no CPU governor, core_pattern or affinity changes, no UI; the target
# binary is dotnet, which SharpFuzz's own fork server speaks for.
export AFL_SKIP_BIN_CHECK=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 \
  AFL_NO_AFFINITY=1 AFL_FORKSRV_INIT_TMOUT=60000 AFL_SHUFFLE_QUEUE=1

fuzz_one() {
  local target=$1 rc attempt
  for attempt in 1 2 3; do
    rm -rf "$work/findings/$target"
    # -t: .NET starts slowly on the first input; later inputs take milliseconds.
    rc=0
    afl-fuzz -i "$work/seeds/$target" -o "$work/findings/$target" -t 10000 -m none -V "$seconds" \
      -- "${instrumented[@]}" "$target" "$work" >"$work/$target.log" 2>&1 || rc=$?
    # On a loaded machine afl-fuzz's dry run of the first seed now and then sees an empty coverage map from
    # SharpFuzz's fork server and gives up before fuzzing anything; that start is retried, nothing else is.
    grep -aq "No instrumentation detected" "$work/$target.log" || break
  done
  echo "$rc" >"$work/$target.rc"
}

running=0
for target in "${targets[@]}"; do
  if [ "$running" -ge 2 ]; then
    wait -n || true
    running=$((running - 1))
  fi
  echo "== fuzzing $target for ${seconds}s"
  fuzz_one "$target" &
  running=$((running + 1))
done
wait || true

status=0
for target in "${targets[@]}"; do
  stats="$work/findings/$target/default/fuzzer_stats"
  if [ "$(cat "$work/$target.rc" 2>/dev/null || echo 1)" -ne 0 ] || [ ! -f "$stats" ]; then
    echo "fuzz: afl-fuzz did not run $target:"
    tail -20 "$work/$target.log"
    status=1
    continue
  fi
  execs=$(sed -nE 's/^execs_done +: ([0-9]+)/\1/p' "$stats")
  paths=$(sed -nE 's/^corpus_count +: ([0-9]+)/\1/p' "$stats")
  crashes=$(find "$work/findings/$target/default/crashes" -type f -name 'id:*' 2>/dev/null | sort)
  echo "fuzz: $target: $execs executions, $paths inputs in the queue, $(grep -c . <<<"$crashes" || true) crashes"
  for crash in $crashes; do
    status=1
    echo "fuzz: CRASH in $target: $crash"
    "${harness[@]}" "$target" "$work" "$crash" 2>&1 | head -30 || true
  done
done
exit $status
