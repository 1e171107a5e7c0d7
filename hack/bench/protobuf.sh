#!/usr/bin/env bash
# JSON against protobuf on a running node (bring it up with hack/local-up.sh first): a list of
# 1,000 pods and a get of one, as client-go's typed clients ask (Accept
# `application/vnd.kubernetes.protobuf,application/json`) and as JSON clients do: p50 and p99
# of the server's answer (request to last byte, one keep-alive connection) and the bytes on
# the wire. The pods sit in a namespace of their own with a
# schedulerName no scheduler serves, so nothing runs; the namespace is deleted at the end.
# Anchor: SLO of a list, p99 <= 5 s (sig-scalability); protobuf is what client-go prefers.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v kubectl >/dev/null || { echo "kubectl is needed" >&2; exit 1; }
export KUBECONFIG="${KUBECONFIG:-/var/lib/tinykube/apiserver/admin.kubeconfig}"
PODS="${PODS:-1000}"
cfg=$(mktemp)
kubectl config view --raw -o json >"$cfg"
trap 'rm -f "$cfg"; kubectl delete namespace bench-protobuf --wait=false >/dev/null 2>&1 || true' EXIT
PYTHONPATH=hack/bench python3 - "$cfg" "$PODS" <<'PY'
import json, shutil, statistics, sys, time
from kubeapi import connect

conn, tmp = connect(sys.argv[1])
pods = int(sys.argv[2])
JSON, PB = "application/json", "application/vnd.kubernetes.protobuf"

def call(method, path, accept=JSON, body=None, ctype=JSON):
    h = {"Accept": accept}
    if body is not None:
        h["Content-Type"] = ctype
    conn.request(method, path, body=body, headers=h)
    r = conn.getresponse()
    out = r.read()
    if r.status >= 300 and r.status != 409:
        raise SystemExit(f"{method} {path}: {r.status} {out[:300]!r}")
    return r.getheader("Content-Type"), out

NS = "bench-protobuf"
call("POST", "/api/v1/namespaces", body=json.dumps({"metadata": {"name": NS}}))
base = f"/api/v1/namespaces/{NS}/pods"
def pod(i):
    return {"metadata": {"name": f"p-{i:05d}", "labels": {"app": "bench", "shard": str(i % 10)},
                         "annotations": {"bench/owner": "hack/bench/protobuf.sh"}},
            "spec": {"schedulerName": "bench-unscheduled",
                     "containers": [{"name": "web", "image": "registry.example/web:1",
                                     "ports": [{"containerPort": 8080, "name": "http"}],
                                     "env": [{"name": "MODE", "value": "bench"}],
                                     "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                                     "readinessProbe": {"httpGet": {"path": "/", "port": 8080}}},
                                    {"name": "log", "image": "registry.example/log:1"}]}}
t = time.perf_counter()
for i in range(pods):
    call("POST", base, body=json.dumps(pod(i)))
made = time.perf_counter() - t

def stats(f, rounds):
    f()
    ts = []
    for _ in range(rounds):
        t = time.perf_counter()
        n = f()
        ts.append((time.perf_counter() - t) * 1000)
    ts.sort()
    return statistics.median(ts), ts[min(len(ts) - 1, int(len(ts) * 0.99))], n

rows = []
for what, path, rounds in [(f"list of {pods} pods", base, 30), ("get of one pod", f"{base}/p-00000", 300)]:
    for wire, accept in [("JSON", JSON), ("protobuf", PB + "," + JSON)]:
        def once():
            ct, body = call("GET", path, accept)
            assert ct == (PB if wire == "protobuf" else JSON), ct
            return len(body)
        p50, p99, size = stats(once, rounds)
        rows.append((what, wire, p50, p99, size))
print(f"{'':22} {'wire':9} {'p50 ms':>8} {'p99 ms':>8} {'bytes':>10}")
for what, wire, p50, p99, size in rows:
    print(f"{what:22} {wire:9} {p50:8.2f} {p99:8.2f} {size:10d}")
print(f"anchor: list p99 <= 5000 ms (SLO); {pods} pods created (JSON) in {made:.1f} s")
shutil.rmtree(tmp)
PY
