#!/usr/bin/env bash
# Pod startup latency (create → Running through a watch, image present) for 50 pods one at a
# time and 50 at once, memory per running pod, and 110 pods at once — a whole node (apiserver,
# registry, kubelet) in its own network namespace. Printed beside the anchors
# (../shared/reference/anchors.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
source hack/lib/common.sh
prepare_node
exec cargo bench -p tinykube-kubelet --bench pods
