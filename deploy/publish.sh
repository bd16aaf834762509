#!/usr/bin/env bash
# Publishes EtcdShield as the deploy layouts run it: one Native AOT executable for linux-x64. No .NET runtime on the
# host or in the image, no JIT at start (a restarted sidecar serves at full speed at once), and the memory of one
# native image: at 1,000 watchers 80 MiB against grpc-proxy's 82 (bench/RESULTS.md, "Native AOT"). The build's trim
# and AOT analyzers (EtcdShield.csproj, IsAotCompatible) and warnings-as-errors keep it safe: a warning fails the
# publish. Needs clang and zlib1g-dev (deploy/install-prerequisites.sh).
# Usage: bash deploy/publish.sh [OUT_DIR]   (default: out/etcdshield); the program is OUT_DIR/EtcdShield.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/out/etcdshield}
dotnet publish "$root/src/EtcdShield" -c Release -r linux-x64 -p:PublishAot=true -o "$out" --nologo -v quiet
# The program is the one file a layout needs. Its native debug symbols (EtcdShield.dbg, ~50 MB) and the managed
# build's leftovers stay out of the output; `dotnet publish` above without this line keeps the symbols for a debugger.
find "$out" -maxdepth 1 -type f \( -name '*.dbg' -o -name '*.pdb' -o -name '*.xml' \) -delete
echo "$out/EtcdShield"
