#!/bin/sh
# Make a local container registry answer on 127.0.0.1 for jupyter-berth's tests and for
# air-gapped sites; print its address (HOST:PORT) as the last line.
#
#   REGISTRY=$(bash scripts/registry-up.sh | tail -n 1)     # 127.0.0.1:5000
#
# Idempotent and fast when the registry already answers (one HTTP round trip). Otherwise,
# as root on Debian/Ubuntu: installs Debian's `docker-registry` package if missing (apt-get
# update only when apt knows no candidate), writes /etc/berth-registry/config.yml
# (listen on 127.0.0.1 only, filesystem storage under /var/lib/berth-registry, deletes
# allowed) and starts `docker-registry serve` in the background (log:
# /var/log/berth-registry.log, pid: /run/berth-registry.pid). Docker trusts plain HTTP on
# 127.0.0.0/8, so no insecure-registries setting is needed.
# Environment: BERTH_REGISTRY_PORT (default 5000), BERTH_REGISTRY_DIR (storage).
set -eu

PORT=${BERTH_REGISTRY_PORT:-5000}
ADDR="127.0.0.1:$PORT"
STORAGE=${BERTH_REGISTRY_DIR:-/var/lib/berth-registry}
CONFIG_DIR=/etc/berth-registry
CONFIG=$CONFIG_DIR/config.yml
LOG=/var/log/berth-registry.log
PIDFILE=/run/berth-registry.pid

say() { echo "registry-up: $*" >&2; }
die() { say "$*"; exit 1; }

answers() {
    curl -fsS -m 3 -o /dev/null "http://$ADDR/v2/" 2>/dev/null
}

if answers; then
    echo "$ADDR"
    exit 0
fi

[ "$(id -u)" = 0 ] || die "no registry answers on $ADDR and only root can install or start one; run this script as root"

if ! command -v docker-registry >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || die "docker-registry is not installed and this is not a Debian-like system; run a registry on $ADDR yourself"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-cache policy docker-registry 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        say "apt-get update"
        apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
    fi
    say "installing docker-registry"
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends docker-registry >&2
fi

mkdir -p "$CONFIG_DIR" "$STORAGE"
cat > "$CONFIG.tmp" <<YAML
# Written by jupyter-berth's scripts/registry-up.sh: a registry for this host only.
version: 0.1
log:
  level: info
  fields:
    service: berth-registry
storage:
  filesystem:
    rootdirectory: $STORAGE
  delete:
    enabled: true
http:
  addr: $ADDR
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
YAML
mv "$CONFIG.tmp" "$CONFIG"

# A registry started earlier by this script that no longer answers: stop it first.
if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    say "stopping the unresponsive registry (pid $(cat "$PIDFILE"))"
    kill "$(cat "$PIDFILE")" 2>/dev/null || true
    sleep 1
fi

say "starting docker-registry on $ADDR (storage $STORAGE, log $LOG)"
nohup docker-registry serve "$CONFIG" >>"$LOG" 2>&1 &
echo $! > "$PIDFILE"

i=0
until answers; do
    i=$((i + 1))
    if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
        die "docker-registry exited; see $LOG: $(tail -n 3 "$LOG" | tr '\n' ' ')"
    fi
    [ $i -lt 60 ] || die "docker-registry did not answer on $ADDR within 15 s; see $LOG"
    sleep 0.25
done
echo "$ADDR"
