#!/usr/bin/env bash
# ConfigMap update → visible in the pods' volumes: p50/p99/max over 50 updates of a ConfigMap
# that 10 running pods mount, beside Kubernetes' anchor (the kubelet's 1-min sync period plus
# its cache's TTL) — a whole node (apiserver, registry, kubelet) in its own network namespace.
set -euo pipefail
cd "$(dirname "$0")/../.."
source hack/lib/common.sh
prepare_node
exec cargo bench -p tinykube-kubelet --bench volumes
