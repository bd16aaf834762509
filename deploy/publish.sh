#!/usr/bin/env bash
# Publishes EtcdShield as the deploy layouts run it: self-contained for linux-x64 (no .NET runtime needed on the
# host or in the image), ReadyToRun so a restarted sidecar does not pay the JIT at full traffic.
# Usage: bash deploy/publish.sh [OUT_DIR]   (default: out/etcdshield); the program is OUT_DIR/EtcdShield.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/out/etcdshield}
dotnet publish "$root/src/EtcdShield" -c Release -r linux-x64 --self-contained -p:PublishReadyToRun=true \
  -o "$out" --nologo -v quiet
echo "$out/EtcdShield"
