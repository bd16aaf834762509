#!/usr/bin/env bash
# Builds the image EtcdShield's Containerfile starts from, localhost/etcdshield-base:bookworm, without a registry:
# a minimal Debian rootfs made by mmdebstrap from this machine's own apt sources, then `podman import`.
# It is the preparation stage only (it has dpkg and a shell); the runtime stage copies out of it just the
# files of the packages the self-contained program needs (see Containerfile).
# Cached: the image is labelled with a digest of its inputs (this script, the package list, the apt sources) and
# reused while they are unchanged. --rebuild forces a new one.
# Usage: bash deploy/container/build-base.sh [--rebuild]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
podman=("$here/podman.sh")
image=localhost/etcdshield-base:bookworm
suite=bookworm
# libc6, libgcc-s1 and libstdc++6 for the .NET runtime, libssl3 for TLS, ca-certificates and tzdata; ICU is not
# needed (the program runs with invariant globalization), nor zlib (.NET ships its own).
packages=ca-certificates,libssl3,tzdata,libgcc-s1,libstdc++6

shopt -s nullglob
sources=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources)
shopt -u nullglob
existing=()
for f in "${sources[@]}"; do [ -f "$f" ] && existing+=("$f"); done
[ ${#existing[@]} -gt 0 ] || { echo "build-base.sh: no apt sources under /etc/apt" >&2; exit 1; }

inputs=$( { cat "$0"; echo "$packages"; cat "${existing[@]}"; } | sha256sum | cut -c1-32)
if [ "${1:-}" != --rebuild ] &&
   [ "$("${podman[@]}" image inspect --format '{{index .Labels "org.etcdshield.base.inputs"}}' "$image" 2>/dev/null || true)" = "$inputs" ]; then
  echo "$image (cached, inputs $inputs)"
  exit 0
fi

work=$(mktemp -d /var/tmp/etcdshield-base.XXXXXX)
trap 'rm -rf "$work"' EXIT
# minbase: Essential packages and apt only; merged-usr as bookworm's debootstrap makes it; no documentation,
# man pages or locales (nothing reads them, and they would only grow the preparation layer).
# Its output (the merged-usr hook is chatty) goes to a log shown only when it fails.
if ! mmdebstrap --quiet --variant=minbase --include="$packages" \
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
  "$suite" "$work/rootfs.tar" "${existing[@]}" >"$work/mmdebstrap.log" 2>&1; then
  cat "$work/mmdebstrap.log" >&2
  exit 1
fi
previous=$("${podman[@]}" image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
"${podman[@]}" import --quiet \
  --change "LABEL org.etcdshield.base.inputs=$inputs" \
  --change 'LABEL org.opencontainers.image.title="etcdshield-base"' \
  --change 'CMD ["/bin/bash"]' \
  "$work/rootfs.tar" "$image" >/dev/null
# The replaced base, unless an image built on it still holds it (podman then refuses, and it stays).
[ -z "$previous" ] || "${podman[@]}" rmi "$previous" >/dev/null 2>&1 || true
echo "$image (built, inputs $inputs)"
