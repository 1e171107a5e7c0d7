#!/usr/bin/env bash
# `tkctl get pods` (and get -o yaml, describe) against kubectl's on the same running node (bring it up with
# hack/local-up.sh first): wall time p50 of 20 runs each, process start included.
# Goal (issue 8): tkctl <= 1/5 of kubectl's time.
set -euo pipefail
cd "$(dirname "$0")/../.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release -q -p tinykube-ctl
export KUBECONFIG="${KUBECONFIG:-/var/lib/tinykube/apiserver/admin.kubeconfig}"
python3 - "$target/release/tkctl" <<'PY'
import statistics, subprocess, sys, time
def p50(cmd):
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)  # warm
    ts = []
    for _ in range(20):
        t = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1000
for args in (["get", "pods"], ["get", "nodes", "-o", "yaml"], ["describe", "nodes"]):
    tk, kc = p50([sys.argv[1], *args]), p50(["kubectl", *args])
    what = " ".join(args)
    print(f"{what:<20} wall time p50: tkctl {tk:5.1f} ms, kubectl {kc:5.1f} ms (tkctl = 1/{kc / tk:.1f} of kubectl)   goal <= 1/5")
PY
