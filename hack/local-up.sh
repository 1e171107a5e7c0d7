#!/usr/bin/env bash
# Brings the tinykube node up on this machine: `hack/local-up.sh` (or `up`), `hack/local-up.sh down
# [--purge]`. Running `up` again is harmless. The node: the local registry with the sample images,
# the apiserver (embedded SQLite store), the kubelet and the proxy, each its own process. `up`
# merges a `tinykube` context into your kubeconfig (as minikube does) and makes it current;
# `down --purge` takes it out again and leaves the machine as it was before `up`.
set -euo pipefail

# Settings (environment variables, with defaults).
TINYKUBE_STATE="${TINYKUBE_STATE:-/var/lib/tinykube}"          # data: store, certificates, kubeconfigs
TINYKUBE_RUN="${TINYKUBE_RUN:-/run/tinykube}"                   # pid and log files
TINYKUBE_BIND_ADDRESS="${TINYKUBE_BIND_ADDRESS:-127.0.0.1}"
TINYKUBE_PORT="${TINYKUBE_PORT:-6443}"
TINYKUBE_SERVICE_CIDR="${TINYKUBE_SERVICE_CIDR:-10.96.0.0/12}"
TINYKUBE_NODE_PORTS="${TINYKUBE_NODE_PORTS:-30000-32767}"
TINYKUBE_POD_CIDR="${TINYKUBE_POD_CIDR:-10.244.0.0/24}"
TINYKUBE_REGISTRY_ADDR="${TINYKUBE_REGISTRY_ADDR:-127.0.0.1:5000}"   # the local registry (sample images)
TINYKUBE_REGISTRY_DIR="${TINYKUBE_REGISTRY_DIR:-$TINYKUBE_STATE/registry}"
TINYKUBE_NODE_NAME="${TINYKUBE_NODE_NAME:-$(hostname | tr '[:upper:]' '[:lower:]')}"
TINYKUBE_CGROUP_ROOT="${TINYKUBE_CGROUP_ROOT:-tinykube}"        # the parent cgroup of every pod
TINYKUBE_POD_LOG_DIR="${TINYKUBE_POD_LOG_DIR:-/var/log/pods}"   # container logs
TINYKUBE_TKCTL_LINK="${TINYKUBE_TKCTL_LINK-/usr/local/bin/tkctl}" # made if nothing is there; empty: none
TINYKUBE_SKIP_BUILD="${TINYKUBE_SKIP_BUILD:-}"                  # 1: use the binaries already built
TINYKUBE_TIMINGS="${TINYKUBE_TIMINGS:-}"                        # 1: print how long each step took
TINYKUBE_START_TIMEOUT="${TINYKUBE_START_TIMEOUT:-60}"          # s for the apiserver to serve, the node to be Ready
TINYKUBE_START_DELAY="${TINYKUBE_START_DELAY:-}"                # s each daemon waits before its exec (tests)
export TINYKUBE_REGISTRY_ADDR TINYKUBE_REGISTRY_DIR TINYKUBE_RUN TINYKUBE_SKIP_BUILD TINYKUBE_TIMINGS
export TINYKUBE_START_DELAY

cd "$(dirname "$0")/.."
source hack/lib/common.sh
target="${CARGO_TARGET_DIR:-$PWD/target}"
bin="$target/release"
# The kubeconfig `up` merges the tinykube context into: KUBECONFIG's first file, as kubectl writes.
user_cfg="${KUBECONFIG:-}"
user_cfg="${user_cfg%%:*}"
user_cfg="${user_cfg:-$HOME/.kube/config}"
# What `up` made outside its state dir, so that `down --purge` removes exactly that.
made="$TINYKUBE_STATE/local-up"

# What failed, for the message when `up` stops at a failing command (`set -e`): the step under
# way and the log that tells why.
step=""
step_log=""
reported=""
images=""
on_exit() { # exit status
    # A failure anywhere waits for the sample-images job first: nothing it starts goes untracked.
    [ -z "$images" ] || wait "$images" 2>/dev/null || true
    [ "$1" -ne 0 ] && [ -z "$reported" ] || return 0
    echo "hack/local-up.sh: ${step:-a step} failed (exit $1)" >&2
    [ -z "$step_log" ] || show_step_log "$step_log"
    echo "Fix what is named above and run hack/local-up.sh again; hack/local-up.sh down --purge removes everything." >&2
}
trap 'on_exit $?' EXIT

# A step's name and log, for the messages of a failure.
begin() { # step [log]
    step="$1"
    step_log="${2:-}"
}

# The last lines of a step's log: a daemon's journal where it is a systemd unit.
show_step_log() { # log
    local name
    name="$(basename "$1" .log)"
    case "$name" in
        apiserver | kubelet | proxy | registry) show_component_log "$name" "$1" ;;
        *) show_log "$1" ;;
    esac
}

# Fails `up` with a message and the last lines of `log`.
die() { # message [log]
    echo "hack/local-up.sh: $1" >&2
    [ -z "${2:-}" ] || show_step_log "$2"
    echo "Fix what is named above and run hack/local-up.sh again; hack/local-up.sh down --purge removes everything." >&2
    reported=1
    exit 1
}

kubelet_flags=(
    --root-dir "$TINYKUBE_STATE/kubelet"
    --kubeconfig "$TINYKUBE_STATE/apiserver/kubelet.kubeconfig"
    --hostname-override "$TINYKUBE_NODE_NAME"
    --pod-cidr "$TINYKUBE_POD_CIDR"
    --cgroup-root "$TINYKUBE_CGROUP_ROOT"
    --pod-log-dir "$TINYKUBE_POD_LOG_DIR"
    --registry-mirror "gcr.io=http://$TINYKUBE_REGISTRY_ADDR"
    --registry-mirror "docker.io=http://$TINYKUBE_REGISTRY_ADDR"
)
proxy_state=(--state-dir "$TINYKUBE_STATE/proxy")

apiserver_cmd=(
    "$bin/tinykube-apiserver"
    --data-dir "$TINYKUBE_STATE/apiserver"
    --bind-address "$TINYKUBE_BIND_ADDRESS"
    --secure-port "$TINYKUBE_PORT"
    --service-cluster-ip-range "$TINYKUBE_SERVICE_CIDR"
    --service-node-port-range "$TINYKUBE_NODE_PORTS"
    --node-name "$TINYKUBE_NODE_NAME"
)
kubelet_cmd=("$bin/tinykube-kubelet" "${kubelet_flags[@]}")
proxy_cmd=(
    "$bin/tinykube-proxy"
    "${proxy_state[@]}"
    --kubeconfig "$TINYKUBE_STATE/apiserver/proxy.kubeconfig"
    --hostname-override "$TINYKUBE_NODE_NAME"
    --cluster-cidr "$TINYKUBE_POD_CIDR"
)

# This node's instances of a daemon, one pid a line, found by their first two arguments (the
# daemon's own dir): for one whose pidfile is lost.
find_daemon() { # name
    case "$1" in
        apiserver) find_processes tinykube-apiserver --data-dir "$TINYKUBE_STATE/apiserver" ;;
        kubelet) find_processes tinykube-kubelet --root-dir "$TINYKUBE_STATE/kubelet" ;;
        proxy) find_processes tinykube-proxy --state-dir "$TINYKUBE_STATE/proxy" ;;
    esac
}

# The systemd unit of daemon `name` running `command...` (systemd hosts): enabled for boot,
# restarted whenever it exits, ordered after what it needs. The kubelet's unit is delegated and
# stops only the kubelet itself (KillMode=process): the shims in its cgroup, and the pods, live
# on through its restarts, as containerd's unit does.
unit_text() { # name command...
    local name="$1" after="network-online.target" wants="network-online.target" extra=""
    shift
    case "$name" in
        kubelet)
            after+=" tinykube-apiserver.service tinykube-registry.service"
            wants+=" tinykube-apiserver.service"
            extra=$'Delegate=yes\nKillMode=process\nTasksMax=infinity\nLimitNOFILE=1048576'
            ;;
        proxy)
            after+=" tinykube-apiserver.service"
            wants+=" tinykube-apiserver.service"
            ;;
    esac
    cat <<UNIT
# Written by hack/local-up.sh; removed by hack/local-up.sh down --purge.
[Unit]
Description=tinykube $name
Documentation=file://$PWD/README.md
After=$after
Wants=$wants
RequiresMountsFor=$(dirname "$1") $TINYKUBE_STATE
StartLimitIntervalSec=0

[Service]
ExecStart=$(unit_command "$@")
Restart=always
RestartSec=1
$extra

[Install]
WantedBy=multi-user.target
UNIT
}

# Daemon `name`'s pid if it runs (its unit, or its pidfile).
daemon_running() { # name
    if use_systemd; then
        unit_running "$1"
    else
        pidfile_alive "$TINYKUBE_RUN/$1.pid"
    fi
}

# Starts a daemon unless it runs. With systemd: its unit, written and enabled. Without: a
# process of ours, unless one is recorded in its pidfile or one of this node's is found by its
# own dirs (adopted: its pidfile is written again). Prints what it did.
start_daemon() { # name command...
    local name="$1" pid
    shift
    local pidfile="$TINYKUBE_RUN/$name.pid" log="$TINYKUBE_RUN/$name.log"
    begin "starting the $name" "$log"
    [ -x "$1" ] || die "$1 is missing: build it (run hack/local-up.sh without TINYKUBE_SKIP_BUILD)"
    if use_systemd; then
        install_unit "$name" "$(unit_text "$name" "$@")"
        if pid="$(unit_running "$name")"; then
            echo "$name already running (unit tinykube-$name.service, pid $pid)"
            return
        fi
        start_unit "$name" || alive_or_die "$name"
        pid="$(unit_running "$name")" || alive_or_die "$name"
        echo "$name running (unit tinykube-$name.service, pid $pid, journalctl -u tinykube-$name)"
        return
    fi
    if pid="$(pidfile_alive "$pidfile")"; then
        echo "$name already running (pid $pid)"
        return
    fi
    rm -f "$pidfile"
    pid="$(find_daemon "$name" | head -1)"
    if [ -n "$pid" ]; then
        record_pid "$pidfile" "$pid"
        echo "$name already running (pid $pid, adopted: its pid file was gone)"
        return
    fi
    start_process "$pidfile" "$log" "$@"
    pid="$(head -1 "$pidfile")"
    # Running once the program is exec'ed: a slow exec (cold machine, TINYKUBE_START_DELAY)
    # is waited for, a process that is gone fails with its log.
    if ! wait_exec "$pid" "$1" "$TINYKUBE_START_TIMEOUT"; then
        alive_or_die "$name"
        die "the $name (pid $pid) did not start $1 within $TINYKUBE_START_TIMEOUT s" "$log"
    fi
    echo "$name running (pid $pid, log $log)"
}

# Fails `up` if the daemon has exited (its log says why).
alive_or_die() { # name
    local log="$TINYKUBE_RUN/$1.log"
    if use_systemd; then
        unit_running "$1" >/dev/null ||
            die "the $1 is not running (systemctl status tinykube-$1)" "$log"
    else
        pidfile_alive "$TINYKUBE_RUN/$1.pid" >/dev/null ||
            die "the $1 exited (see $log)" "$log"
    fi
}

# Waits until the apiserver serves (it writes its port file as its last step before serving).
wait_apiserver() {
    begin "waiting for the apiserver" "$TINYKUBE_RUN/apiserver.log"
    local deadline=$((SECONDS + TINYKUBE_START_TIMEOUT))
    until [ -f "$TINYKUBE_STATE/apiserver/port" ]; do
        alive_or_die apiserver
        [ "$SECONDS" -lt "$deadline" ] ||
            die "the apiserver did not serve within $TINYKUBE_START_TIMEOUT s" "$TINYKUBE_RUN/apiserver.log"
        sleep 0.05
    done
}

start_apiserver() {
    if ! daemon_running apiserver >/dev/null &&
        { use_systemd || [ -z "$(find_daemon apiserver)" ]; }; then
        rm -f "$TINYKUBE_STATE/apiserver/port"
    fi
    start_daemon apiserver "${apiserver_cmd[@]}"
    wait_apiserver
}

wait_node_ready() {
    # Ready once the kubelet reports KubeletReady (curl with the admin's certificate: no client
    # needed).
    begin "waiting for the node to be Ready" "$TINYKUBE_RUN/kubelet.log"
    local pki="$TINYKUBE_STATE/apiserver" host="$TINYKUBE_BIND_ADDRESS"
    [ "$host" = 0.0.0.0 ] && host=127.0.0.1
    local deadline=$((SECONDS + TINYKUBE_START_TIMEOUT))
    until curl -s --max-time 2 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
        "https://$host:$TINYKUBE_PORT/api/v1/nodes/$TINYKUBE_NODE_NAME" 2>/dev/null |
        tr -d ' \n' | grep -q '"reason":"KubeletReady"'; do
        alive_or_die kubelet
        alive_or_die apiserver
        [ "$SECONDS" -lt "$deadline" ] ||
            die "node $TINYKUBE_NODE_NAME did not become Ready within $TINYKUBE_START_TIMEOUT s" "$TINYKUBE_RUN/kubelet.log"
        sleep 0.1
    done
    echo "node $TINYKUBE_NODE_NAME is Ready"
}

# Stops a daemon: its unit (with --purge: removed), or the one in its pidfile and any other of
# this node's found by its own dirs.
stop_daemon() { # name [--purge]
    if use_systemd; then
        stop_unit "$1" "${2:-}"
    fi
    stop_process "$1" "$TINYKUBE_RUN/$1.pid"
    local pid
    for pid in $(find_daemon "$1"); do
        stop_pid "$1" "$pid"
    done
}

# `config ARGS...` on the user's kubeconfig, with the built tkctl or else kubectl.
kcfg() { # args...
    if [ -x "$bin/tkctl" ]; then
        "$bin/tkctl" config "$@" --kubeconfig "$user_cfg"
    elif command -v kubectl >/dev/null; then
        kubectl config "$@" --kubeconfig "$user_cfg"
    else
        echo "neither $bin/tkctl nor kubectl is there to edit $user_cfg" >&2
        return 1
    fi
}

# Merges the admin kubeconfig into the user's (admin first: its tinykube entries and its
# current-context win; the user's other entries stay), as minikube does.
merge_kubeconfig() {
    begin "merging the tinykube context into $user_cfg"
    local admin="$TINYKUBE_STATE/apiserver/admin.kubeconfig" dir
    dir="$(dirname "$user_cfg")"
    mkdir -p "$made"
    if [ ! -d "$dir" ]; then
        mkdir -p "$dir"
        echo "$dir" >>"$made/kubeconfig-dirs"
    fi
    if [ ! -e "$user_cfg" ]; then
        echo "$user_cfg" >>"$made/kubeconfig-files"
    elif [ ! -e "$made/previous-context" ]; then
        # The context to give back on `down --purge` (only the first `up` records it; never
        # tinykube itself, current when an earlier node's state was removed without `down`).
        local previous
        previous="$(kcfg current-context 2>/dev/null || true)"
        [ "$previous" != tinykube ] || previous=""
        printf '%s' "$previous" >"$made/previous-context"
    fi
    local tmp="$dir/.tinykube-merge.$$"
    KUBECONFIG="$admin:$user_cfg" "$bin/tkctl" config view --flatten >"$tmp"
    install -m 600 "$tmp" "$user_cfg"
    rm -f "$tmp"
    echo "context tinykube merged into $user_cfg (current)"
}

# `config delete-{context,cluster,user} NAME`, content if there is no such entry.
kcfg_delete() { # what name
    local err
    if ! err="$(kcfg "delete-$1" "$2" 2>&1 >/dev/null)"; then
        case "$err" in
            *"cannot delete $1 $2, not in"*) ;;
            *) echo "$err" >&2; return 1 ;;
        esac
    fi
}

# Takes the tinykube entries out of the user's kubeconfig again (down --purge). Finishes
# whatever it finds: entries already gone, the context given back already deleted.
unmerge_kubeconfig() {
    if [ ! -f "$user_cfg" ]; then
        echo "no $user_cfg: no tinykube context to remove"
        return 0
    fi
    local current previous=""
    current="$(kcfg current-context 2>/dev/null || true)"
    kcfg_delete context tinykube
    kcfg_delete cluster tinykube
    kcfg_delete user tinykube-admin
    if [ "$current" = tinykube ]; then
        [ -f "$made/previous-context" ] && previous="$(cat "$made/previous-context")"
        if [ -n "$previous" ] && [ "$previous" != tinykube ] &&
            kcfg get-contexts -o name 2>/dev/null | grep -qxF -- "$previous"; then
            kcfg use-context "$previous" >/dev/null
        else
            [ -z "$previous" ] || echo "the context to give back, $previous, is gone: no current context"
            sed -i 's/^current-context: tinykube$/current-context: ""/' "$user_cfg"
        fi
    fi
    # A file (and dir) `up` made goes again once nothing is left in it.
    if grep -qxF "$user_cfg" "$made/kubeconfig-files" 2>/dev/null &&
        [ "$(kcfg view | grep -cE '^(clusters|contexts|users): null$')" = 3 ]; then
        rm -f "$user_cfg"
        if grep -qxF "$(dirname "$user_cfg")" "$made/kubeconfig-dirs" 2>/dev/null; then
            rmdir "$(dirname "$user_cfg")" 2>/dev/null || true
        fi
    fi
    echo "removed the tinykube context, cluster and user from $user_cfg"
}

# `tkctl` on the PATH: a link to the built one, only where nothing is yet.
link_tkctl() {
    local link="$TINYKUBE_TKCTL_LINK"
    [ -n "$link" ] || return 0
    if [ -L "$link" ] && [ "$(readlink "$link")" = "$bin/tkctl" ]; then
        return 0
    fi
    if [ ! -e "$link" ] && [ ! -L "$link" ] && [ -d "$(dirname "$link")" ] &&
        ln -s "$bin/tkctl" "$link" 2>/dev/null; then
        echo "$link" >"$made/tkctl-link"
        echo "linked $link -> $bin/tkctl"
    fi
}

unlink_tkctl() {
    [ -f "$made/tkctl-link" ] || return 0
    local link; link="$(cat "$made/tkctl-link")"
    if [ -L "$link" ] && [ "$(readlink "$link")" = "$bin/tkctl" ]; then
        rm -f "$link"
        echo "removed $link"
    fi
}

up() {
    begin "installing packages"
    timed packages ensure_packages "${node_packages[@]}"
    if [ -z "$TINYKUBE_SKIP_BUILD" ] && ! command -v cargo >/dev/null; then
        # A tree built elsewhere (a VM given the built binaries): use them as they are.
        [ -x "$bin/tinykube-kubelet" ] ||
            die "cargo is not installed and $bin has no tinykube binaries: install Rust (https://rustup.rs) and run hack/local-up.sh again"
        echo "cargo is not installed: using the binaries in $bin"
        TINYKUBE_SKIP_BUILD=1
    fi
    if [ -z "$TINYKUBE_SKIP_BUILD" ]; then
        begin "building"
        timed build cargo build --release -p tinykube-apiserver -p tinykube-kubelet -p tinykube-proxy -p tinykube-ctl -p tinykube-images
        TINYKUBE_BOOTCAMP_BIN="$(timed build-bootcamp build_bootcamp)"
        export TINYKUBE_BOOTCAMP_BIN
    fi
    mkdir -p "$TINYKUBE_STATE" "$TINYKUBE_RUN"
    # One `up` or `down` at a time from here (not during the build: cargo has its own lock).
    begin "waiting for another hack/local-up.sh"
    hold_lock 8 "$TINYKUBE_RUN/local-up.lock" "hack/local-up.sh"
    # The registry and its images meanwhile (the kubelet needs them only for its first pull).
    # A failure anywhere waits for this job first, so that nothing it starts goes untracked.
    local images_log="$TINYKUBE_RUN/sample-images.out"
    TINYKUBE_SKIP_BUILD=1 timed sample-images hack/sample-images.sh >"$images_log" 2>&1 &
    images=$!
    timed apiserver start_apiserver
    timed kubelet start_daemon kubelet "${kubelet_cmd[@]}"
    timed node-ready wait_node_ready
    timed proxy start_daemon proxy "${proxy_cmd[@]}"
    begin "starting the registry and pushing the sample images" "$images_log"
    if ! wait "$images"; then
        images=""
        cat "$images_log" >&2
        die "starting the registry and pushing the sample images failed (above; the registry's log: $TINYKUBE_RUN/registry.log)"
    fi
    images=""
    cat "$images_log"
    rm -f "$images_log"
    merge_kubeconfig
    begin "linking tkctl"
    link_tkctl
    local tk="$bin/tkctl"
    [ "$(command -v tkctl 2>/dev/null)" = "$TINYKUBE_TKCTL_LINK" ] && [ -n "$TINYKUBE_TKCTL_LINK" ] &&
        [ "$(readlink -f "$TINYKUBE_TKCTL_LINK")" = "$(readlink -f "$bin/tkctl")" ] && tk=tkctl
    cat <<MSG

tinykube is up; your kubeconfig's current context is tinykube (tkctl and kubectl use it). Next:
  $tk get nodes
  $tk run kubernetes-first-app --image=gcr.io/google-samples/kubernetes-bootcamp:v1 --port=8080
  $tk get pods
  $tk expose deployment/kubernetes-first-app --type=NodePort --port 8080
  curl \$($tk ip):\$($tk get services/kubernetes-first-app -o go-template='{{(index .spec.ports 0).nodePort}}')
  kubectl get pods -o wide
Stop it with hack/local-up.sh down (--purge: also its data and the tinykube context).
MSG
}

# Each step of `down` runs whatever the steps before it did; a failed step says so, and `down`
# fails at the end, naming each.
failed=()
try() { # what command...
    local what="$1"
    shift
    begin "$what"
    # A background subshell, waited for: `set -e` holds inside it (it would not in an `if`).
    ("$@") &
    if ! wait "$!"; then
        failed+=("$what")
        echo "down: $what failed; going on" >&2
    fi
}

# The proxy's rules outlive it: cleanup removes its chains and jumps (the host's stay).
proxy_cleanup() {
    [ -x "$bin/tinykube-proxy" ] || { echo "$bin/tinykube-proxy is missing: cannot remove its rules" >&2; return 1; }
    "$bin/tinykube-proxy" cleanup "${proxy_state[@]}"
}

# Containers outlive the kubelet: cleanup stops them and removes every netns, mount, cgroup,
# bridge and rule the kubelet made.
kubelet_cleanup() { # [--purge]
    [ -x "$bin/tinykube-kubelet" ] || { echo "$bin/tinykube-kubelet is missing: cannot stop the pods" >&2; return 1; }
    "$bin/tinykube-kubelet" cleanup "${kubelet_flags[@]}" "$@"
}

remove_dirs() {
    rm -rf "$TINYKUBE_STATE" "$TINYKUBE_RUN"
    echo "removed $TINYKUBE_STATE and $TINYKUBE_RUN"
}

down() {
    local purge=""
    case "${1:-}" in
        "") ;;
        --purge) purge=--purge ;;
        *) echo "usage: $0 down [--purge]" >&2; exit 2 ;;
    esac
    try "stopping the proxy" stop_daemon proxy $purge
    try "removing the proxy's rules" proxy_cleanup
    try "stopping the kubelet" stop_daemon kubelet $purge
    try "stopping the pods" kubelet_cleanup $purge
    try "stopping the apiserver" stop_daemon apiserver $purge
    try "stopping the registry" hack/registry.sh stop $purge
    if [ -n "$purge" ]; then
        try "removing the tinykube context" unmerge_kubeconfig
        try "removing the tkctl link" unlink_tkctl
        # Only when every daemon stopped: a running one would write into them again.
        if [ ${#failed[@]} -eq 0 ]; then
            try "removing $TINYKUBE_STATE and $TINYKUBE_RUN" remove_dirs
        fi
    fi
    if [ ${#failed[@]} -gt 0 ]; then
        echo "hack/local-up.sh down: ${#failed[@]} step(s) failed:" >&2
        printf '  %s\n' "${failed[@]}" >&2
        [ -z "$purge" ] || echo "$TINYKUBE_STATE is kept; fix what is named above and run hack/local-up.sh down --purge again" >&2
        reported=1
        exit 1
    fi
}

case "${1:-up}" in
    up) up ;;
    down) shift; hold_lock 8 "$TINYKUBE_RUN/local-up.lock" "hack/local-up.sh"; down "$@" ;;
    *) echo "usage: $0 [up | down [--purge]]" >&2; exit 2 ;;
esac
