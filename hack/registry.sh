#!/usr/bin/env bash
# Runs a local image registry for tinykube: Debian's docker-registry (CNCF distribution 2.8) with
# a config of its own, on loopback, without auth. `hack/registry.sh start | stop [--purge] |
# status`. Starting it again is harmless. Debian's own config (/etc/docker/registry, htpasswd auth,
# all interfaces) is never used.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"

# Settings (environment variables, with defaults).
TINYKUBE_REGISTRY_ADDR="${TINYKUBE_REGISTRY_ADDR:-127.0.0.1:5000}"         # host:port to listen on
TINYKUBE_REGISTRY_DIR="${TINYKUBE_REGISTRY_DIR:-/var/lib/tinykube/registry}" # config.yml and data/
TINYKUBE_RUN_DIR="${TINYKUBE_RUN_DIR:-${TINYKUBE_RUN:-/run/tinykube}}"        # registry.pid and .log

registry=/usr/bin/docker-registry
config="$TINYKUBE_REGISTRY_DIR/config.yml"
pidfile="$TINYKUBE_RUN_DIR/registry.pid"
log="$TINYKUBE_RUN_DIR/registry.log"

running() { # true if the recorded pid is alive and is the registry
    [ -f "$pidfile" ] || return 1
    local pid; pid="$(cat "$pidfile")"
    kill -0 "$pid" 2>/dev/null && grep -qa docker-registry "/proc/$pid/cmdline" 2>/dev/null
}

ready() { # true once GET /v2/ answers 200
    if command -v curl >/dev/null; then
        curl -fsS -o /dev/null --max-time 1 "http://$TINYKUBE_REGISTRY_ADDR/v2/" 2>/dev/null
    else
        (exec 3<>"/dev/tcp/${TINYKUBE_REGISTRY_ADDR%:*}/${TINYKUBE_REGISTRY_ADDR##*:}" &&
            printf 'GET /v2/ HTTP/1.0\r\n\r\n' >&3 && head -1 <&3 | grep -q ' 200 ') 2>/dev/null
    fi
}

write_config() {
    mkdir -p "$TINYKUBE_REGISTRY_DIR/data" "$TINYKUBE_RUN_DIR"
    cat >"$config" <<YAML
# Written by hack/registry.sh: tinykube's local registry (plain HTTP, no auth).
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $TINYKUBE_REGISTRY_DIR/data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: $TINYKUBE_REGISTRY_ADDR
  secret: tinykube-local-registry  # signs upload state; a fixed one silences a warning
  headers:
    X-Content-Type-Options: [nosniff]
YAML
}

start() {
    if running; then
        echo "registry already running (pid $(cat "$pidfile")) on $TINYKUBE_REGISTRY_ADDR"
        return
    fi
    if ready; then
        echo "something else already serves a registry on $TINYKUBE_REGISTRY_ADDR (not $pidfile)" >&2
        exit 1
    fi
    ensure_packages docker-registry
    write_config
    nohup "$registry" serve "$config" >>"$log" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 100); do
        running || { tail -20 "$log" >&2; rm -f "$pidfile"; echo "registry failed to start" >&2; exit 1; }
        ready && break
        sleep 0.1
    done
    ready || { tail -20 "$log" >&2; stop; echo "registry did not answer on $TINYKUBE_REGISTRY_ADDR" >&2; exit 1; }
    echo "registry running (pid $(cat "$pidfile")) on $TINYKUBE_REGISTRY_ADDR, data $TINYKUBE_REGISTRY_DIR/data, log $log"
}

stop() {
    if running; then
        local pid; pid="$(cat "$pidfile")"
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        echo "stopped registry (pid $pid)"
    else
        echo "registry not running"
    fi
    rm -f "$pidfile"
    if [ "${1:-}" = "--purge" ]; then
        rm -rf "$TINYKUBE_REGISTRY_DIR"
        rm -f "$log"
        echo "removed $TINYKUBE_REGISTRY_DIR and $log"
    fi
}

status() {
    if running; then
        local state=ready; ready || state="not answering"
        echo "registry running (pid $(cat "$pidfile")) on $TINYKUBE_REGISTRY_ADDR ($state), data $TINYKUBE_REGISTRY_DIR/data"
    else
        echo "registry not running"
        exit 3
    fi
}

case "${1:-}" in
    start) start ;;
    stop) shift; stop "$@" ;;
    status) status ;;
    *) echo "usage: $0 start | stop [--purge] | status" >&2; exit 2 ;;
esac
