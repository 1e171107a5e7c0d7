#!/usr/bin/env bash
# Discovery on a running node (bring it up with hack/local-up.sh first), the part of every
# kubectl command that runs before the command itself:
# - the documents a client fetches to learn every resource: legacy (GET /api, /apis, then
#   /api/v1 and /apis/<group>/<version> for each group version) against aggregated
#   (apidiscovery.k8s.io/v2: GET /api and /apis, once each), and the aggregated pair again
#   with If-None-Match (the 304s a client with a cached copy gets): p50 of 50 rounds over one
#   keep-alive connection;
# - `kubectl get pods` with a cold discovery cache (a fresh HOME each run) and a warm one:
#   wall time p50 of 10 runs, process start included.
# Anchor (issue 18): aggregated discovery cuts kubectl's cold-cache discovery to two requests.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v kubectl >/dev/null || { echo "kubectl is needed" >&2; exit 1; }
export KUBECONFIG="${KUBECONFIG:-/var/lib/tinykube/apiserver/admin.kubeconfig}"
kubectl config view --raw -o json >/tmp/tinykube-bench-kubeconfig.json
trap 'rm -f /tmp/tinykube-bench-kubeconfig.json' EXIT
PYTHONPATH=hack/bench python3 - /tmp/tinykube-bench-kubeconfig.json <<'PY'
import json, os, shutil, statistics, subprocess, sys, tempfile, time
from kubeapi import connect

conn, tmp = connect(sys.argv[1])
AGG = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"

def get(path, accept="application/json", etag=None):
    h = {"Accept": accept}
    if etag:
        h["If-None-Match"] = etag
    conn.request("GET", path, headers=h)
    r = conn.getresponse()
    body = r.read()
    return r.status, r.getheader("ETag"), body

def legacy():
    n = 2
    get("/api")
    groups = json.loads(get("/apis")[2])["groups"]
    get("/api/v1")
    for g in groups:
        for v in g["versions"]:
            get(f"/apis/{v['groupVersion']}")
            n += 1
    return n + 1

tags = {}
def aggregated(cached=False):
    for p in ("/api", "/apis"):
        status, tag, _ = get(p, AGG, tags.get(p) if cached else None)
        tags[p] = tag
        assert status == (304 if cached else 200), status
    return 2

def p50(f, rounds=50):
    f()
    ts = []
    for _ in range(rounds):
        t = time.perf_counter()
        n = f()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1000, n

(lt, ln), (at, an) = p50(legacy), p50(aggregated)
ct, _ = p50(lambda: aggregated(cached=True))
print(f"discovery, legacy:      {ln:2d} requests, p50 {lt:6.2f} ms")
print(f"discovery, aggregated:  {an:2d} requests, p50 {at:6.2f} ms  ({lt / at:.1f}x faster)   anchor: two requests")
print(f"discovery, cached 304s: {an:2d} requests, p50 {ct:6.2f} ms")

def kubectl(home):
    t = time.perf_counter()
    subprocess.run(["kubectl", "get", "pods"], env={**os.environ, "HOME": home},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return (time.perf_counter() - t) * 1000
cold = []
for _ in range(10):
    home = tempfile.mkdtemp()
    cold.append(kubectl(home))
    shutil.rmtree(home)
warm_home = tempfile.mkdtemp()
kubectl(warm_home)
warm = [kubectl(warm_home) for _ in range(10)]
shutil.rmtree(warm_home)
shutil.rmtree(tmp)
print(f"kubectl get pods, cold discovery cache: p50 {statistics.median(cold):6.1f} ms")
print(f"kubectl get pods, warm discovery cache: p50 {statistics.median(warm):6.1f} ms")
PY
