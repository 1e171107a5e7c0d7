#!/usr/bin/env bash
# The cluster DNS (served by tinykube-proxy): queries per second and latency for 1,000 service
# names beside dnsmasq serving the same names in the same run (dnsperf, both servers on one
# core), and how fast a service change is in force, on a whole node in its own namespace.
# Printed beside the anchors (../shared/reference/anchors.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
source hack/lib/common.sh
ensure_packages dnsperf dnsmasq-base
prepare_node
exec cargo bench -p tinykube-proxy --bench dns
