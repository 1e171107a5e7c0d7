#!/usr/bin/env bash
# Exec round trip (`exec POD -- true`, p50/p99 through the apiserver) and port-forward
# throughput (100 MB) with kubectl and kube-rs — a whole node (apiserver, registry, kubelet)
# in its own network namespace. Goals from issue 7: exec p50 <= 30 ms, port-forward >= 200 MB/s.
set -euo pipefail
cd "$(dirname "$0")/../.."
source hack/lib/common.sh
prepare_node
exec cargo bench -p tinykube-kubelet --bench streaming
