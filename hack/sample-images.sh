#!/usr/bin/env bash
# Builds tinykube's sample images and pushes them to the local registry: library/busybox:latest
# and google-samples/kubernetes-bootcamp:v1 and :v2. Installs busybox-static if missing, builds
# the static bootcamp binary (reproducibly: same bytes from any checkout path) and the
# tinykube-images tool, starts the registry (hack/registry.sh) unless it runs, then pushes.
# Running it again is harmless: the digests are the same every time. TINYKUBE_SKIP_BUILD=1 uses
# the binaries already built (bootcamp: TINYKUBE_BOOTCAMP_BIN or the target dir's).
set -euo pipefail

TINYKUBE_REGISTRY_ADDR="${TINYKUBE_REGISTRY_ADDR:-127.0.0.1:5000}"
export TINYKUBE_REGISTRY_ADDR

cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
busybox=/bin/busybox

source hack/lib/common.sh
ensure_packages busybox-static
if [ -n "${TINYKUBE_SKIP_BUILD:-}" ]; then
    bootcamp="${TINYKUBE_BOOTCAMP_BIN:-$target/x86_64-unknown-linux-gnu/release/bootcamp}"
else
    bootcamp="$(timed build-bootcamp build_bootcamp)"
    timed build-images cargo build --release -p tinykube-images
fi
timed registry-start hack/registry.sh start
timed image-push "$target/release/tinykube-images" push --registry "$TINYKUBE_REGISTRY_ADDR" \
    --busybox "$busybox" --bootcamp "$bootcamp"
