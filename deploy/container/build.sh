#!/usr/bin/env bash
# Builds EtcdShield's container image, localhost/etcdshield:dev (or IMAGE), from this checkout: publishes the
# program (deploy/publish.sh), makes or reuses the base image (build-base.sh), then `podman build --pull=never`
# (no registry is needed or asked). Podman runs with the project's own configuration and storage (podman.sh).
# Usage: bash deploy/container/build.sh [IMAGE]        Prints the image id on its last line.
# ETCDSHIELD_PUBLISHED=DIR uses an existing deploy/publish.sh output instead of publishing again.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
image=${1:-localhost/etcdshield:dev}

# The build context is the published program alone, never the checkout (bin/ and obj/ would be sent along); one
# fresh directory per build, so no file of an older publish ends up in the image.
mkdir -p "$root/out/container"
context=$(mktemp -d "$root/out/container/context.XXXXXX")
trap 'rm -rf "$context"' EXIT
if [ -n "${ETCDSHIELD_PUBLISHED:-}" ]; then
  cp -a "$ETCDSHIELD_PUBLISHED" "$context/etcdshield"
else
  bash "$root/deploy/publish.sh" "$context/etcdshield" >/dev/null
fi
[ -x "$context/etcdshield/EtcdShield" ] || { echo "build.sh: no program at $context/etcdshield/EtcdShield" >&2; exit 1; }

# One build at a time per storage (two checkouts on one machine share it): the prune below must not remove what
# another build is still making.
lock="${ETCDSHIELD_CONTAINERS_ROOT:-/var/tmp/etcdshield-containers}/build.lock"
mkdir -p "$(dirname "$lock")"
exec 9>"$lock"
flock 9

bash "$here/build-base.sh" >&2

revision=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)
# The commit's time, not now: rebuilding the same commit gives the same image configuration.
created=$(git -C "$root" log -1 --format=%cI 2>/dev/null || echo unknown)
bash "$here/podman.sh" build --pull=never --network host --quiet \
  --file "$here/Containerfile" --tag "$image" \
  --build-arg "REVISION=$revision" --build-arg "CREATED=$created" \
  "$context"
# The images this build replaced (the previous image, its layout stage, a replaced base) are dangling now:
# removed, so that repeated builds keep the storage at one base, one layout stage and one image.
bash "$here/podman.sh" image prune --force >/dev/null
