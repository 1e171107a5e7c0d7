#!/usr/bin/env bash
# The README's test command: builds the release profile once, then runs every unit and
# integration test of the workspace (the apiserver's tests start the real binary and drive it
# with kube-rs, the Python `kubernetes` client and the installed kubectl; the kubelet's image
# tests pull from a real registry, Debian's docker-registry, and mount what they pulled).
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib/common.sh

# A real registry, busybox-static (the sample images are made of it), the CNI plugins,
# libseccomp for libcontainer, and tmux + curl (a real terminal for `kubectl exec -ti`, an
# anonymous caller of the kubelet).
ensure_packages "${node_packages[@]}" tmux
# The cluster DNS test's upstream resolver (dnsmasq-base: the program, no service).
ensure_packages dnsmasq-base
# The VM test (tests/tests/vm.rs): qemu, and mmdebstrap for its Debian guest image (built once
# into /var/tmp/tinykube-vm from the Debian mirror, then cached).
ensure_packages --no-recommends qemu-system-x86 qemu-utils mmdebstrap e2fsprogs binutils

target="${CARGO_TARGET_DIR:-$PWD/target}"
venv="$target/python-client"

# The official Python client, in a virtualenv of its own (never the system's site-packages).
if ! "$venv/bin/python" -c 'import kubernetes' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'kubernetes>=31'
fi
export TINYKUBE_PYTHON="$venv/bin/python"

command -v kubectl >/dev/null || { echo "kubectl is not installed (the tests drive the real kubectl)" >&2; exit 1; }

# Debian's etcd, for the gRPC probe example's image (unpacked, not installed).
TINYKUBE_ETCD_BIN="$(etcd_binary)"
export TINYKUBE_ETCD_BIN

cargo fmt --all -- --check
# The bootcamp stand-in, static, for the sample images the tests build.
TINYKUBE_BOOTCAMP_BIN="$(build_bootcamp)"
export TINYKUBE_BOOTCAMP_BIN
cargo build --release --workspace --all-targets
cargo test --release --workspace "$@"
