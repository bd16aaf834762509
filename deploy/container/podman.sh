#!/usr/bin/env bash
# Runs podman with EtcdShield's own configuration and storage, never the host's: CONTAINERS_CONF and
# CONTAINERS_STORAGE_CONF point at files written under ETCDSHIELD_CONTAINERS_ROOT (default
# /var/tmp/etcdshield-containers, outside any clone so a fresh checkout on the same machine reuses the cached base
# image). Usage: bash deploy/container/podman.sh PODMAN-ARGS...   (build-base.sh, build.sh and the tests use it).
set -euo pipefail
root=${ETCDSHIELD_CONTAINERS_ROOT:-/var/tmp/etcdshield-containers}
mkdir -p "$root/storage" "$root/run" "$root/tmp"

# Written each time (cheap, and atomically: the tests run several of these at once), so a change here takes effect.
# runc, not crun: crun fails on this host's hybrid cgroups. cgroupfs and a file event log: PID 1 need not be systemd.
# Explicit ulimits: podman's default rlimits are refused on this host, and a proxy needs a known nofile anyway.
conf=$(mktemp "$root/.containers.conf.XXXXXX")
storage=$(mktemp "$root/.storage.conf.XXXXXX")
cat >"$conf" <<CONF
[containers]
default_ulimits = ["nofile=16384:16384", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$root/run/events.log"
tmp_dir = "$root/tmp"
static_dir = "$root/storage/libpod"
volume_path = "$root/storage/volumes"
CONF
cat >"$storage" <<CONF
[storage]
driver = "overlay"
graphroot = "$root/storage"
runroot = "$root/run"
CONF
chmod 644 "$conf" "$storage"
mv -f "$conf" "$root/containers.conf"
mv -f "$storage" "$root/storage.conf"

export CONTAINERS_CONF="$root/containers.conf"
export CONTAINERS_STORAGE_CONF="$root/storage.conf"
exec podman "$@"
