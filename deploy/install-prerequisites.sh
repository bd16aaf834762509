#!/usr/bin/env bash
# Installs the system packages EtcdShield's quickstart, tests and bench use, when they are missing.
set -euo pipefail
# podman, runc and mmdebstrap build and run the container image (deploy/container/): rootful, with the kernel's
# overlay and --network host, so neither uidmap, fuse-overlayfs, slirp4netns nor netavark is needed; runc because
# crun fails on this host's hybrid cgroups. systemd (systemd-analyze), iproute2 (ss) and procps (kill) are what
# the tests run besides; a minimal image with the .NET SDK has none of them. clang and zlib1g-dev link the Native AOT
# program (deploy/publish.sh).
packages=(etcd-server etcd-client softhsm2 opensc openssl python3-etcd3 python3-etcd3gw curl afl++ podman runc mmdebstrap systemd iproute2 procps clang zlib1g-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  # Quiet: dpkg's progress and the packages' own messages go nowhere; errors still reach stderr.
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Prometheus and promtool for the monitoring tests (deploy/monitoring/): Debian's prometheus package, downloaded and
# unpacked into .tools/ (never installed, so no Prometheus daemon is started or enabled on this machine).
root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/.tools"
if [ ! -x "$tools/prometheus/usr/bin/promtool" ] || [ ! -x "$tools/prometheus/usr/bin/prometheus" ]; then
  echo "== unpacking Debian's prometheus into $tools/prometheus"
  mkdir -p "$tools/cache"
  # apt-get download writes into the current directory; as root it warns that _apt cannot write there (quietened on
  # the first try); without package lists yet (a fresh machine) the second try follows apt-get update and speaks.
  if ! ls "$tools/cache"/prometheus_*.deb >/dev/null 2>&1; then
    (cd "$tools/cache" && apt-get download -qq prometheus 2>/dev/null) || {
      sudo_cmd=""
      [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
      $sudo_cmd apt-get update -qq
      (cd "$tools/cache" && apt-get download -qq prometheus)
    }
  fi
  rm -rf "$tools/prometheus"
  dpkg-deb -x "$(ls "$tools/cache"/prometheus_*.deb | tail -1)" "$tools/prometheus"
fi
