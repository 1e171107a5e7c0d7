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
export TINYKUBE_REGISTRY_ADDR TINYKUBE_REGISTRY_DIR TINYKUBE_RUN TINYKUBE_SKIP_BUILD TINYKUBE_TIMINGS

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

start_apiserver() {
    local pidfile="$TINYKUBE_RUN/apiserver.pid"
    if running "$pidfile"; then
        echo "apiserver already running (pid $(cat "$pidfile"))"
        return
    fi
    rm -f "$TINYKUBE_STATE/apiserver/port"
    "$bin/tinykube-apiserver" \
        --data-dir "$TINYKUBE_STATE/apiserver" \
        --bind-address "$TINYKUBE_BIND_ADDRESS" \
        --secure-port "$TINYKUBE_PORT" \
        --service-cluster-ip-range "$TINYKUBE_SERVICE_CIDR" \
        --service-node-port-range "$TINYKUBE_NODE_PORTS" \
        --node-name "$TINYKUBE_NODE_NAME" \
        >>"$TINYKUBE_RUN/apiserver.log" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 200); do
        [ -f "$TINYKUBE_STATE/apiserver/port" ] && break
        running "$pidfile" || { tail -20 "$TINYKUBE_RUN/apiserver.log" >&2; exit 1; }
        sleep 0.05
    done
    [ -f "$TINYKUBE_STATE/apiserver/port" ] ||
        { tail -20 "$TINYKUBE_RUN/apiserver.log" >&2; echo "the apiserver did not start" >&2; exit 1; }
    echo "apiserver running (pid $(cat "$pidfile"), log $TINYKUBE_RUN/apiserver.log)"
}

start_kubelet() {
    local pidfile="$TINYKUBE_RUN/kubelet.pid"
    if running "$pidfile"; then
        echo "kubelet already running (pid $(cat "$pidfile"))"
    else
        "$bin/tinykube-kubelet" "${kubelet_flags[@]}" >>"$TINYKUBE_RUN/kubelet.log" 2>&1 &
        echo $! >"$pidfile"
        echo "kubelet running (pid $(cat "$pidfile"), log $TINYKUBE_RUN/kubelet.log)"
    fi
}

wait_node_ready() {
    # Ready once the kubelet reports KubeletReady (curl with the admin's certificate: no client
    # needed).
    local pki="$TINYKUBE_STATE/apiserver" host="$TINYKUBE_BIND_ADDRESS"
    [ "$host" = 0.0.0.0 ] && host=127.0.0.1
    for _ in $(seq 300); do
        if curl -s --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
            "https://$host:$TINYKUBE_PORT/api/v1/nodes/$TINYKUBE_NODE_NAME" 2>/dev/null |
            tr -d ' \n' | grep -q '"reason":"KubeletReady"'; then
            echo "node $TINYKUBE_NODE_NAME is Ready"
            return
        fi
        running "$TINYKUBE_RUN/kubelet.pid" || { tail -20 "$TINYKUBE_RUN/kubelet.log" >&2; exit 1; }
        sleep 0.1
    done
    tail -20 "$TINYKUBE_RUN/kubelet.log" >&2
    echo "node $TINYKUBE_NODE_NAME did not become Ready in 30 s" >&2
    exit 1
}

start_proxy() {
    local pidfile="$TINYKUBE_RUN/proxy.pid"
    if running "$pidfile"; then
        echo "proxy already running (pid $(cat "$pidfile"))"
        return
    fi
    "$bin/tinykube-proxy" \
        --kubeconfig "$TINYKUBE_STATE/apiserver/proxy.kubeconfig" \
        "${proxy_state[@]}" \
        --hostname-override "$TINYKUBE_NODE_NAME" \
        --cluster-cidr "$TINYKUBE_POD_CIDR" \
        >>"$TINYKUBE_RUN/proxy.log" 2>&1 &
    echo $! >"$pidfile"
    echo "proxy running (pid $(cat "$pidfile"), log $TINYKUBE_RUN/proxy.log)"
}

# Merges the admin kubeconfig into the user's (admin first: its tinykube entries and its
# current-context win; the user's other entries stay), as minikube does.
merge_kubeconfig() {
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
        # The context to give back on `down --purge` (only the first `up` records it).
        "$bin/tkctl" config current-context --kubeconfig "$user_cfg" >"$made/previous-context" 2>/dev/null ||
            : >"$made/previous-context"
    fi
    local tmp="$dir/.tinykube-merge.$$"
    KUBECONFIG="$admin:$user_cfg" "$bin/tkctl" config view --flatten >"$tmp"
    install -m 600 "$tmp" "$user_cfg"
    rm -f "$tmp"
    echo "context tinykube merged into $user_cfg (current)"
}

# Takes the tinykube entries out of the user's kubeconfig again (down --purge).
unmerge_kubeconfig() {
    [ -f "$user_cfg" ] && [ -x "$bin/tkctl" ] || return 0
    local cfg=(--kubeconfig "$user_cfg") current
    current="$("$bin/tkctl" config current-context "${cfg[@]}" 2>/dev/null || true)"
    "$bin/tkctl" config delete-context tinykube "${cfg[@]}" >/dev/null 2>&1 || true
    "$bin/tkctl" config delete-cluster tinykube "${cfg[@]}" >/dev/null 2>&1 || true
    "$bin/tkctl" config delete-user tinykube-admin "${cfg[@]}" >/dev/null 2>&1 || true
    if [ "$current" = tinykube ]; then
        local previous=""
        [ -f "$made/previous-context" ] && previous="$(cat "$made/previous-context")"
        if [ -n "$previous" ]; then
            "$bin/tkctl" config use-context "$previous" "${cfg[@]}" >/dev/null
        else
            sed -i 's/^current-context: tinykube$/current-context: ""/' "$user_cfg"
        fi
    fi
    # A file (and dir) `up` made goes again once nothing is left in it.
    if grep -qxF "$user_cfg" "$made/kubeconfig-files" 2>/dev/null &&
        [ "$("$bin/tkctl" config view "${cfg[@]}" | grep -cE '^(clusters|contexts|users): null$')" = 3 ]; then
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
    timed packages ensure_packages conntrack curl docker-registry busybox-static containernetworking-plugins iproute2 iptables libseccomp-dev pkg-config
    if [ -z "$TINYKUBE_SKIP_BUILD" ]; then
        timed build cargo build --release -p tinykube-apiserver -p tinykube-kubelet -p tinykube-proxy -p tinykube-ctl -p tinykube-images
        TINYKUBE_BOOTCAMP_BIN="$(timed build-bootcamp build_bootcamp)"
        export TINYKUBE_BOOTCAMP_BIN
    fi
    mkdir -p "$TINYKUBE_STATE" "$TINYKUBE_RUN"
    # The registry and its images meanwhile (the kubelet needs them only for its first pull).
    local images_log="$TINYKUBE_RUN/sample-images.out"
    TINYKUBE_SKIP_BUILD=1 timed sample-images hack/sample-images.sh >"$images_log" 2>&1 &
    local images=$!
    timed apiserver start_apiserver
    timed kubelet start_kubelet
    timed node-ready wait_node_ready
    timed proxy start_proxy
    wait "$images" || { cat "$images_log" >&2; echo "pushing the sample images failed" >&2; exit 1; }
    cat "$images_log"
    rm -f "$images_log"
    merge_kubeconfig
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

down() {
    stop proxy
    # The proxy's rules outlive it: cleanup removes its chains and jumps (the host's stay).
    if [ -x "$bin/tinykube-proxy" ]; then
        "$bin/tinykube-proxy" cleanup "${proxy_state[@]}"
    fi
    stop kubelet
    # Containers outlive the kubelet: cleanup stops them and removes every netns, mount,
    # cgroup, bridge and rule the kubelet made.
    if [ -x "$bin/tinykube-kubelet" ]; then
        "$bin/tinykube-kubelet" cleanup "${kubelet_flags[@]}" ${1:+--purge}
    fi
    stop apiserver
    hack/registry.sh stop ${1:+--purge}
    if [ "${1:-}" = "--purge" ]; then
        unmerge_kubeconfig
        unlink_tkctl
        rm -rf "$TINYKUBE_STATE" "$TINYKUBE_RUN"
        echo "removed $TINYKUBE_STATE and $TINYKUBE_RUN"
    fi
}

case "${1:-up}" in
    up) up ;;
    down) shift; down "$@" ;;
    *) echo "usage: $0 [up | down [--purge]]" >&2; exit 2 ;;
esac
