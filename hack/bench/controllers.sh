#!/usr/bin/env bash
# Control-plane speed: deployment of 100 to pods bound/ready, and pod ready -> Endpoints,
# printed beside the anchors (../shared/reference/anchors.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
exec cargo bench -p tinykube-apiserver --bench controllers
