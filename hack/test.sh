#!/usr/bin/env bash
# The README's test command: builds the release profile once, then runs every unit and
# integration test of the workspace (the apiserver's tests start the real binary and drive it
# with kube-rs, the Python `kubernetes` client and the installed kubectl).
set -euo pipefail
cd "$(dirname "$0")/.."

target="${CARGO_TARGET_DIR:-$PWD/target}"
venv="$target/python-client"

# The official Python client, in a virtualenv of its own (never the system's site-packages).
if ! "$venv/bin/python" -c 'import kubernetes' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'kubernetes>=31'
fi
export TINYKUBE_PYTHON="$venv/bin/python"

command -v kubectl >/dev/null || { echo "kubectl is not installed (the tests drive the real kubectl)" >&2; exit 1; }

cargo fmt --all -- --check
cargo build --release --workspace --all-targets
cargo test --release --workspace "$@"
