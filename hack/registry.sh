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

# The registry this script started or adopted, if it still runs: prints its pid.
running() {
    pidfile_alive "$pidfile"
}

# A registry started with tinykube's own config (by an earlier run whose pidfile is lost, e.g. a
# killed local-up): prints its pid.
ours() {
    find_processes docker-registry serve "$config" | head -1
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

# How long a registry may take from its start to answering GET /v2/ (a cold machine reads the
# 20 MB binary from disk first).
TINYKUBE_REGISTRY_START_TIMEOUT="${TINYKUBE_REGISTRY_START_TIMEOUT:-30}"

# The registry's unit (systemd hosts): enabled for boot, restarted when it exits.
unit_text() {
    cat <<UNIT
# Written by hack/registry.sh; removed by hack/registry.sh stop --purge.
[Unit]
Description=tinykube's local image registry
After=network-online.target
Wants=network-online.target
RequiresMountsFor=$TINYKUBE_REGISTRY_DIR
StartLimitIntervalSec=0

[Service]
ExecStart=$(unit_command "$registry" serve "$config")
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target
UNIT
}

start() {
    local pid
    if use_systemd && pid="$(unit_running registry)"; then
        wait_ready "$pid" "registry already running (unit tinykube-registry.service, pid $pid)"
        return
    fi
    if ! use_systemd && pid="$(running)"; then
        wait_ready "$pid" "registry already running (pid $pid)"
        return
    fi
    rm -f "$pidfile"
    if ! use_systemd && pid="$(ours)" && [ -n "$pid" ]; then
        # Ours by its config: adopted, so that `stop` (and local-up's down) can stop it.
        mkdir -p "$TINYKUBE_RUN_DIR"
        record_pid "$pidfile" "$pid"
        wait_ready "$pid" "adopted the registry already running with $config (pid $pid)"
        return
    fi
    local others
    others="$(listeners "$TINYKUBE_REGISTRY_ADDR" | tr '\n' ' ')"
    if [ -n "${others// }" ] || ready; then
        echo "cannot start the registry: $TINYKUBE_REGISTRY_ADDR is already in use" >&2
        for p in $others; do
            echo "  by pid $p: $(proc_cmdline "$p")" >&2
        done
        [ -n "${others// }" ] || echo "  (by a process this script cannot see)" >&2
        echo "Stop that process (Debian's own registry service: systemctl disable --now docker-registry)," >&2
        echo "or give tinykube's registry another address: TINYKUBE_REGISTRY_ADDR=127.0.0.1:5001 $0 start" >&2
        exit 1
    fi
    ensure_packages docker-registry
    write_config
    if use_systemd; then
        install_unit registry "$(unit_text)"
        start_unit registry || { show_component_log registry "$log"; echo "the registry's unit did not start" >&2; exit 1; }
        pid="$(unit_running registry)"
        wait_ready "$pid" "registry running (unit tinykube-registry.service, pid $pid)"
        return
    fi
    start_process "$pidfile" "$log" "$registry" serve "$config"
    pid="$(head -1 "$pidfile")"
    wait_ready "$pid" "registry running (pid $pid)"
}

# Waits until the registry `pid` answers; it failed only if it exited or never answered in time.
wait_ready() { # pid message
    local pid="$1" deadline=$((SECONDS + TINYKUBE_REGISTRY_START_TIMEOUT)) start
    start="$(proc_start_time "$pid" || true)"
    until ready; do
        if [ -z "$start" ] || [ "$(proc_start_time "$pid" || true)" != "$start" ]; then
            echo "the registry (pid $pid) exited before it answered on $TINYKUBE_REGISTRY_ADDR" >&2
            show_component_log registry "$log"
            rm -f "$pidfile"
            exit 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "the registry (pid $pid) did not answer on $TINYKUBE_REGISTRY_ADDR within ${TINYKUBE_REGISTRY_START_TIMEOUT} s; it still runs (stop it with $0 stop)" >&2
            show_component_log registry "$log"
            exit 1
        fi
        sleep 0.05
    done
    echo "$2 on $TINYKUBE_REGISTRY_ADDR, data $TINYKUBE_REGISTRY_DIR/data, log $log"
}

stop() {
    local pid stopped=""
    if use_systemd; then
        [ -z "$(unit_running registry || true)" ] || stopped=1
        stop_unit registry "${1:-}"
    fi
    if pid="$(running)"; then
        stop_pid registry "$pid" || return 1
        stopped=1
    fi
    rm -f "$pidfile"
    # A registry of ours whose pidfile was lost.
    for pid in $(find_processes docker-registry serve "$config"); do
        stop_pid registry "$pid" || return 1
        stopped=1
    done
    [ -n "$stopped" ] || echo "registry not running"
    if [ "${1:-}" = "--purge" ]; then
        rm -rf "$TINYKUBE_REGISTRY_DIR"
        rm -f "$log" "$TINYKUBE_RUN_DIR/registry.lock"
        echo "removed $TINYKUBE_REGISTRY_DIR and $log"
    fi
}

status() {
    local pid
    if pid="$({ use_systemd && unit_running registry; } || running)"; then
        local state=ready; ready || state="not answering"
        echo "registry running (pid $pid) on $TINYKUBE_REGISTRY_ADDR ($state), data $TINYKUBE_REGISTRY_DIR/data"
    else
        echo "registry not running"
        exit 3
    fi
}

case "${1:-}" in
    start) hold_lock 9 "$TINYKUBE_RUN_DIR/registry.lock" "hack/registry.sh"; start ;;
    stop) shift; hold_lock 9 "$TINYKUBE_RUN_DIR/registry.lock" "hack/registry.sh"; stop "$@" ;;
    status) status ;;
    *) echo "usage: $0 start | stop [--purge] | status" >&2; exit 2 ;;
esac
