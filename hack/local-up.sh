#!/usr/bin/env bash
# Brings the tinykube node up on this machine: `hack/local-up.sh` (or `up`), `hack/local-up.sh down
# [--purge]`. Running `up` again is harmless. The node: the local registry with the sample images,
# the apiserver (embedded SQLite store), the kubelet and the proxy, each its own process.
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
TINYKUBE_NODE_NAME="${TINYKUBE_NODE_NAME:-$(hostname | tr '[:upper:]' '[:lower:]')}"
export TINYKUBE_REGISTRY_ADDR TINYKUBE_RUN

cd "$(dirname "$0")/.."
source hack/lib/common.sh
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

kubelet_flags=(
    --root-dir "$TINYKUBE_STATE/kubelet"
    --kubeconfig "$TINYKUBE_STATE/apiserver/kubelet.kubeconfig"
    --hostname-override "$TINYKUBE_NODE_NAME"
    --pod-cidr "$TINYKUBE_POD_CIDR"
    --registry-mirror "gcr.io=http://$TINYKUBE_REGISTRY_ADDR"
    --registry-mirror "docker.io=http://$TINYKUBE_REGISTRY_ADDR"
)

up() {
    ensure_packages conntrack curl docker-registry busybox-static containernetworking-plugins iproute2 iptables libseccomp-dev pkg-config
    cargo build --release -p tinykube-apiserver -p tinykube-kubelet -p tinykube-proxy
    mkdir -p "$TINYKUBE_STATE" "$TINYKUBE_RUN"
    hack/sample-images.sh
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
            --node-name "$TINYKUBE_NODE_NAME" \
            >>"$TINYKUBE_RUN/apiserver.log" 2>&1 &
        echo $! >"$pidfile"
        for _ in $(seq 100); do
            [ -f "$TINYKUBE_STATE/apiserver/port" ] && break
            running "$pidfile" || { tail -20 "$TINYKUBE_RUN/apiserver.log" >&2; exit 1; }
            sleep 0.1
        done
        echo "apiserver running (pid $(cat "$pidfile"), log $TINYKUBE_RUN/apiserver.log)"
    fi
    pidfile="$TINYKUBE_RUN/kubelet.pid"
    if running "$pidfile"; then
        echo "kubelet already running (pid $(cat "$pidfile"))"
    else
        "$bin/tinykube-kubelet" "${kubelet_flags[@]}" >>"$TINYKUBE_RUN/kubelet.log" 2>&1 &
        echo $! >"$pidfile"
        echo "kubelet running (pid $(cat "$pidfile"), log $TINYKUBE_RUN/kubelet.log)"
    fi
    # Ready once the kubelet reports KubeletReady (curl with the admin's certificate: no kubectl
    # needed).
    local pki="$TINYKUBE_STATE/apiserver"
    for _ in $(seq 100); do
        curl -s --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
            "https://127.0.0.1:$TINYKUBE_PORT/api/v1/nodes/$TINYKUBE_NODE_NAME" 2>/dev/null |
            tr -d ' \n' | grep -q '"reason":"KubeletReady"' && break
        running "$pidfile" || { tail -20 "$TINYKUBE_RUN/kubelet.log" >&2; exit 1; }
        sleep 0.2
    done
    echo "node $TINYKUBE_NODE_NAME is Ready"
    pidfile="$TINYKUBE_RUN/proxy.pid"
    if running "$pidfile"; then
        echo "proxy already running (pid $(cat "$pidfile"))"
    else
        "$bin/tinykube-proxy" \
            --kubeconfig "$TINYKUBE_STATE/apiserver/proxy.kubeconfig" \
            --hostname-override "$TINYKUBE_NODE_NAME" \
            --cluster-cidr "$TINYKUBE_POD_CIDR" \
            >>"$TINYKUBE_RUN/proxy.log" 2>&1 &
        echo $! >"$pidfile"
        echo "proxy running (pid $(cat "$pidfile"), log $TINYKUBE_RUN/proxy.log)"
    fi
    cat <<MSG

tinykube is up. Next:
  export KUBECONFIG=$TINYKUBE_STATE/apiserver/admin.kubeconfig
  kubectl get nodes
  kubectl run web --image=gcr.io/google-samples/kubernetes-bootcamp:v1 --restart=Never --labels=app=web
  kubectl get pods -o wide
  kubectl expose pod web --type=NodePort --port=8080
  curl 127.0.0.1:\$(kubectl get service web -o go-template='{{(index .spec.ports 0).nodePort}}')
MSG
}

down() {
    stop proxy
    # The proxy's rules outlive it: cleanup removes its chains and jumps (the host's stay).
    if [ -x "$bin/tinykube-proxy" ]; then
        "$bin/tinykube-proxy" cleanup
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
        rm -rf "$TINYKUBE_STATE" "$TINYKUBE_RUN"
        echo "removed $TINYKUBE_STATE and $TINYKUBE_RUN"
    fi
}

case "${1:-up}" in
    up) up ;;
    down) shift; down "$@" ;;
    *) echo "usage: $0 [up | down [--purge]]" >&2; exit 2 ;;
esac
