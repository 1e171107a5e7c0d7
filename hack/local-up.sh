#!/usr/bin/env bash
# Brings the tinykube node up on this machine: `hack/local-up.sh` (or `up`), `hack/local-up.sh down
# [--purge]`. Running `up` again is harmless. Today the node is the apiserver (with its embedded
# SQLite store); the kubelet and proxy join it as their issues land.
set -euo pipefail

# Settings (environment variables, with defaults).
TINYKUBE_STATE="${TINYKUBE_STATE:-/var/lib/tinykube}"          # data: store, certificates, kubeconfigs
TINYKUBE_RUN="${TINYKUBE_RUN:-/run/tinykube}"                   # pid and log files
TINYKUBE_BIND_ADDRESS="${TINYKUBE_BIND_ADDRESS:-127.0.0.1}"
TINYKUBE_PORT="${TINYKUBE_PORT:-6443}"
TINYKUBE_SERVICE_CIDR="${TINYKUBE_SERVICE_CIDR:-10.96.0.0/12}"
TINYKUBE_NODE_PORTS="${TINYKUBE_NODE_PORTS:-30000-32767}"

cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
bin="$target/release"

running() { # pidfile -> true if that process is alive
    [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

stop() { # name
    local pidfile="$TINYKUBE_RUN/$1.pid"
    if running "$pidfile"; then
        local pid; pid="$(cat "$pidfile")"
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        echo "stopped $1 (pid $pid)"
    fi
    rm -f "$pidfile"
}

up() {
    cargo build --release -p tinykube-apiserver
    mkdir -p "$TINYKUBE_STATE" "$TINYKUBE_RUN"
    local pidfile="$TINYKUBE_RUN/apiserver.pid"
    if running "$pidfile"; then
        echo "apiserver already running (pid $(cat "$pidfile"))"
    else
        rm -f "$TINYKUBE_STATE/apiserver/port"
        "$bin/tinykube-apiserver" \
            --data-dir "$TINYKUBE_STATE/apiserver" \
            --bind-address "$TINYKUBE_BIND_ADDRESS" \
            --secure-port "$TINYKUBE_PORT" \
            --service-cluster-ip-range "$TINYKUBE_SERVICE_CIDR" \
            --service-node-port-range "$TINYKUBE_NODE_PORTS" \
            >>"$TINYKUBE_RUN/apiserver.log" 2>&1 &
        echo $! >"$pidfile"
        for _ in $(seq 100); do
            [ -f "$TINYKUBE_STATE/apiserver/port" ] && break
            running "$pidfile" || { tail -20 "$TINYKUBE_RUN/apiserver.log" >&2; exit 1; }
            sleep 0.1
        done
        echo "apiserver running (pid $(cat "$pidfile"), log $TINYKUBE_RUN/apiserver.log)"
    fi
    cat <<MSG

tinykube is up. Next:
  export KUBECONFIG=$TINYKUBE_STATE/apiserver/admin.kubeconfig
  kubectl get namespaces
  kubectl get services
MSG
}

down() {
    stop apiserver
    if [ "${1:-}" = "--purge" ]; then
        rm -rf "$TINYKUBE_STATE" "$TINYKUBE_RUN"
        echo "removed $TINYKUBE_STATE and $TINYKUBE_RUN"
    fi
}

case "${1:-up}" in
    up) up ;;
    down) shift; down "$@" ;;
    *) echo "usage: $0 [up | down [--purge]]" >&2; exit 2 ;;
esac
