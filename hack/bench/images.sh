#!/usr/bin/env bash
# Image pulls: the kubelet's pull + unpack of the bootcamp image and of a 10-layer 50 MB image
# against `skopeo copy` + `umoci unpack` of the same from the same registry, side by side; and
# how fast a cached image is ready. Printed beside the anchors (../shared/reference/anchors.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
source hack/lib/common.sh
ensure_packages docker-registry busybox-static skopeo umoci
TINYKUBE_BOOTCAMP_BIN="$(build_bootcamp)"
export TINYKUBE_BOOTCAMP_BIN
exec cargo bench -p tinykube-kubelet --bench images
