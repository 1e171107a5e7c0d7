#!/usr/bin/env bash
# tinykube-proxy: sync time for 1 … 10,000 services (render and iptables-restore, full and
# after a one-service change) in a scratch network namespace, and network programming latency
# (NodePort service created → first connect) on a whole node in its own namespace. Printed
# beside the anchors (../shared/reference/anchors.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
source hack/lib/common.sh
prepare_node
exec cargo bench -p tinykube-proxy --bench sync
