#!/usr/bin/env bash
# API latency and throughput of tinykube-apiserver for 1, 8 and 32 concurrent clients,
# printed beside the Kubernetes SLOs and etcd's published figures (../shared/reference/anchors.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
exec cargo bench -p tinykube-apiserver --bench api
