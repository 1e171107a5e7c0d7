#!/usr/bin/env bash
# The README's first command, timed: from starting hack/local-up.sh to the tutorial's app
# answering through its NodePort (tkctl run + expose + curl), on a fresh node (its images not
# yet pulled), then the node's idle footprint (RSS and CPU of its daemons with the app running).
# Runs in a network namespace of its own with temporary state, HOME and cgroup root, so it never
# touches the host's node; `down --purge` at the end. Printed beside the anchors
# (../shared/reference/anchors.md). TINYKUBE_BENCH_IDLE (seconds, default 60) before the idle
# figures.
set -euo pipefail
cd "$(dirname "$0")/../.."
source hack/lib/common.sh

ensure_packages "${node_packages[@]}"
build_bootcamp >/dev/null
cargo build --release -p tinykube-apiserver -p tinykube-kubelet -p tinykube-proxy -p tinykube-ctl -p tinykube-images

target="${CARGO_TARGET_DIR:-$PWD/target}"
tk="$target/release/tkctl"
idle="${TINYKUBE_BENCH_IDLE:-60}"
net="tk-bench-localup-$$"
tmp="$(mktemp -d "/tmp/tk-bench-localup.XXXXXX")"
mkdir -p "$tmp/home"

in_node() { nsenter --net="/run/netns/$net" "$@"; }
node_env=(
    env -u KUBECONFIG HOME="$tmp/home" TINYKUBE_STATE="$tmp/state" TINYKUBE_RUN="$tmp/run"
    TINYKUBE_CGROUP_ROOT="tinykube-$net" TINYKUBE_NODE_NAME="$net" TINYKUBE_POD_LOG_DIR="$tmp/logs"
    TINYKUBE_TKCTL_LINK= CARGO_TARGET_DIR="$target"
    # cargo and rustup as the caller has them (HOME is the node's own).
    CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}" RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}"
)

cleanup() {
    in_node "${node_env[@]}" hack/local-up.sh down --purge >/dev/null 2>&1 || true
    ip netns del "$net" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

# The node's namespace: loopback and an eth0 with the default route (the node's InternalIP).
ip netns add "$net"
ip -n "$net" link set lo up
ip -n "$net" link add eth0 type veth peer name eth0-peer
ip -n "$net" addr add 172.30.0.2/24 dev eth0
ip -n "$net" link set eth0-peer up
ip -n "$net" link set eth0 up
ip -n "$net" route add default dev eth0

now() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }

t0="$(now)"
in_node "${node_env[@]}" TINYKUBE_TIMINGS=1 hack/local-up.sh >"$tmp/up.log" 2>&1 ||
    { cat "$tmp/up.log" >&2; exit 1; }
t_up="$(since "$t0")"
t1="$(now)"
app() { in_node "${node_env[@]}" "$@"; }
app "$tk" run kubernetes-first-app --image=gcr.io/google-samples/kubernetes-bootcamp:v1 --port=8080 >/dev/null
app "$tk" expose deployment/kubernetes-first-app --type=NodePort --port 8080 >/dev/null
port="$(app "$tk" get services/kubernetes-first-app -o go-template='{{(index .spec.ports 0).nodePort}}')"
ip="$(app "$tk" ip)"
t_cmds="$(since "$t1")"
for _ in $(seq 1200); do
    in_node curl -s --max-time 1 "$ip:$port" 2>/dev/null | grep -q 'Hello Kubernetes bootcamp' && break
    sleep 0.02
done
in_node curl -s --max-time 1 "$ip:$port" | grep -q 'Hello Kubernetes bootcamp' ||
    { echo "the app never answered on $ip:$port" >&2; exit 1; }
total="$(since "$t0")"
t_app="$(since "$t1")"

echo "local-up to answering app: $total s   anchors: minikube 50.8 s, kind 33.0 s, k3d 19.9 s; goal <= 3 s"
echo "  local-up.sh $t_up s, then tkctl run + expose + get + ip $t_cmds s, app answering $t_app s after run"
echo "  local-up.sh steps:"
sed -n 's/^timing: /    /p' "$tmp/up.log"

# Idle footprint with the app running.
sleep "$idle"
pid_of() { head -1 "$tmp/run/$1.pid"; }
daemons=(apiserver kubelet proxy registry)
# The per-container shims: processes running the kubelet's binary other than the kubelet itself.
kubelet_exe="$(readlink -f "/proc/$(pid_of kubelet)/exe")"
shims=()
for p in /proc/[0-9]*; do
    pid="${p#/proc/}"
    if [ "$pid" = "$(pid_of kubelet)" ] || [ "$(readlink -f "$p/exe" 2>/dev/null)" != "$kubelet_exe" ]; then
        continue
    fi
    # Only this node's: in its network namespace or a pod's (the shim's cmdline names its root).
    if grep -qa "$tmp" "$p/cmdline" 2>/dev/null ||
        [ "$(readlink "$p/ns/net")" = "$(readlink "/proc/$(pid_of kubelet)/ns/net")" ]; then
        shims+=("$pid")
    fi
done
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
declare -A rss t_before
all_pids=()
for d in "${daemons[@]}"; do all_pids+=("$(pid_of "$d")"); done
all_pids+=("${shims[@]}")
total_kb=0
for d in "${daemons[@]}"; do
    rss[$d]="$(rss_kb "$(pid_of "$d")")"
    total_kb=$((total_kb + rss[$d]))
done
shim_kb=0
for s in "${shims[@]}"; do shim_kb=$((shim_kb + $(rss_kb "$s"))); done
for p in "${all_pids[@]}"; do t_before[$p]="$(ticks "$p")"; done
w0="$(now)"
sleep 10
window="$(since "$w0")"
cpu_ticks=0
for p in "${all_pids[@]}"; do cpu_ticks=$((cpu_ticks + $(ticks "$p") - t_before[$p])); done
hz="$(getconf CLK_TCK)"
cpu="$(awk -v t="$cpu_ticks" -v hz="$hz" -v w="$window" 'BEGIN { printf "%.2f", 100 * t / hz / w }')"
node_kb=$((total_kb + shim_kb))
echo "idle: RSS $(mb "$node_kb") MB (apiserver $(mb "${rss[apiserver]}"), kubelet $(mb "${rss[kubelet]}"), proxy $(mb "${rss[proxy]}"), registry $(mb "${rss[registry]}"), ${#shims[@]} shims $(mb "$shim_kb")), CPU $cpu % of a core   anchor: k3s ~500 MB; goal <= 60 MB, <= 1 %"
echo "  without the registry: RSS $(mb $((node_kb - rss[registry]))) MB"
# RSS counts the pages processes share (the kubelet's binary text, mapped by the kubelet and
# every shim; libc) once per process; PSS divides them among their users, so its sum is what
# the node really holds.
pss_kb() { awk '/^Pss:/ { print $2 }' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
pss_total=0
for p in "${all_pids[@]}"; do
    [ "$p" = "$(pid_of registry)" ] && continue
    pss_total=$((pss_total + $(pss_kb "$p")))
done
echo "  without the registry: PSS $(mb "$pss_total") MB (shared pages counted once)"
