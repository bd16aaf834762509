#!/usr/bin/env bash
# Quickstart on a fresh Debian machine with the .NET SDK: installs etcd and SoftHSM2 if missing, makes a
# development CA and certificates (valid for a year) and a SoftHSM2 token holding the key-encryption key under
# .dev/, starts etcd with its client listener on a unix socket in .dev/ (no etcd TCP client port: clients reach
# etcd only through the proxy) and EtcdShield (encrypting) in front of it, and prints etcdctl command lines to try.
# Ctrl-C stops both. ETCD_PORT only names the socket file (etcd's unix://NAME:PORT form) and, plus one, etcd's
# loopback peer port.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dev="$root/.dev"
etcd_port=${ETCD_PORT:-22379}
shield_port=${SHIELD_PORT:-23790}
metrics_port=${METRICS_PORT:-23791}

"$root/deploy/install-prerequisites.sh"

mkdir -p "$dev/pki" "$dev/etcd"
pki="$dev/pki"
if [ ! -f "$pki/ca.pem" ]; then
  echo "== making a development CA and certificates in $pki"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
    -subj "/CN=EtcdShield dev CA" -keyout "$pki/ca-key.pem" -out "$pki/ca.pem" 2>/dev/null
  issue() { # name, subject, extensions
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$2" \
      -keyout "$pki/$1-key.pem" -out "$pki/$1.csr" 2>/dev/null
    openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca-key.pem" -CAcreateserial \
      -days 365 -out "$pki/$1.pem" -extfile <(printf '%s\n' "$3") 2>/dev/null
    rm -f "$pki/$1.csr"
  }
  issue server "/CN=etcdshield" "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth,clientAuth"
  issue client "/CN=quickstart-client" "extendedKeyUsage=clientAuth"
  issue stranger "/CN=not-on-the-allowlist" "extendedKeyUsage=clientAuth"
fi

dotnet build "$root/src/EtcdShield" -c Release --nologo -v quiet
shield="$root/src/EtcdShield/bin/Release/net10.0/EtcdShield.dll"

# The key-encryption key lives in a SoftHSM2 token (a real HSM in production: same flags, its own module).
export SOFTHSM2_CONF="$dev/softhsm2.conf"
if [ ! -f "$SOFTHSM2_CONF" ]; then
  echo "== making a SoftHSM2 token with a non-extractable AES-256 key-encryption key"
  mkdir -p "$dev/tokens"
  printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$dev/tokens" >"$SOFTHSM2_CONF"
  softhsm2-util --init-token --free --label etcdshield --pin 1234 --so-pin 5678 >/dev/null
  printf '1234' >"$dev/pin"; chmod 600 "$dev/pin"
  dotnet "$shield" keys create --pkcs11-module /usr/lib/softhsm/libsofthsm2.so --pkcs11-token-label etcdshield \
    --pkcs11-pin-file "$dev/pin" --pkcs11-key-label kek
fi
hsm=(--pkcs11-module /usr/lib/softhsm/libsofthsm2.so --pkcs11-token-label etcdshield --pkcs11-pin-file "$dev/pin" --pkcs11-key-label kek)

# etcd 3.4 takes a unix listener only as unix://NAME:PORT and creates the file NAME:PORT in its working directory.
socket_name="etcd-client:$etcd_port"
socket="$dev/$socket_name"
# etcd removes the file when it stops cleanly; after a crash 3.4 refuses to start ("address already in use").
rm -f "$socket"
echo "== starting etcd on the unix socket $socket (no TCP client port)"
# etcd serves its client API on a plain peer listener too, so that one is a socket as well (one member: no peer
# ever dials it). Member lists advertise the proxy, so clients that sync endpoints never learn the socket.
rm -f "$dev/etcd-peer:$((etcd_port + 1))"
(cd "$dev" && exec etcd --name quickstart --data-dir "$dev/etcd" \
  --listen-client-urls "unix://$socket_name" --advertise-client-urls "https://127.0.0.1:$shield_port" \
  --listen-peer-urls "unix://etcd-peer:$((etcd_port + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((etcd_port + 1))" \
  --initial-cluster "quickstart=http://127.0.0.1:$((etcd_port + 1))" >"$dev/etcd.log" 2>&1) &
etcd_pid=$!
trap 'kill $etcd_pid ${shield_pid:-} 2>/dev/null || true' EXIT

echo "== starting EtcdShield on https://127.0.0.1:$shield_port (values encrypted under the HSM's KEK)"
dotnet "$shield" \
  --listen-client-urls "https://127.0.0.1:$shield_port" \
  --cert-file "$pki/server.pem" --key-file "$pki/server-key.pem" --trusted-ca-file "$pki/ca.pem" \
  --upstream-endpoints "unix://$socket" \
  --allow-cn quickstart-client \
  --metrics-listen-url "http://127.0.0.1:$metrics_port" \
  "${hsm[@]}" &
shield_pid=$!

ctl="etcdctl --endpoints=https://127.0.0.1:$shield_port --cacert=$pki/ca.pem"
cat <<MSG

== try it (in another terminal):
  $ctl --cert=$pki/client.pem --key=$pki/client-key.pem put /registry/secrets/demo s3cr3t
  $ctl --cert=$pki/client.pem --key=$pki/client-key.pem get /registry/secrets/demo
  $ctl --cert=$pki/client.pem --key=$pki/client-key.pem member list
  $ctl --cert=$pki/stranger.pem --key=$pki/stranger-key.pem get /registry/secrets/demo   # refused
  etcdctl --endpoints=unix://$socket get /registry/secrets/demo   # etcd holds only ciphertext
  SOFTHSM2_CONF=$SOFTHSM2_CONF dotnet $shield keys rotate ${hsm[*]}      # new writes move to KEK version 2
  SOFTHSM2_CONF=$SOFTHSM2_CONF dotnet $shield migrate --upstream-endpoints unix://$socket ${hsm[*]}
  curl -s http://127.0.0.1:$metrics_port/health; curl -s http://127.0.0.1:$metrics_port/metrics

MSG
wait $shield_pid
