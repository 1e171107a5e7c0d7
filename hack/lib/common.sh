# Shared by the hack/ scripts: `source "$(dirname "$0")/lib/common.sh"` (paths relative to the repo).

# Installs Debian packages that are missing (apt-get update only when an install needs it).
ensure_packages() { # package...
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return
    echo "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 ||
        { apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null; }
    # On a systemd machine the docker-registry package starts its own service with Debian's
    # config (htpasswd, all interfaces, :5000): tinykube runs its own registry instead.
    if [[ " ${missing[*]} " == *" docker-registry "* ]] && command -v systemctl >/dev/null &&
        systemctl list-unit-files docker-registry.service >/dev/null 2>&1; then
        echo "disabling the docker-registry system service the package started (Debian's config)"
        systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
    fi
}

# Builds the bootcamp stand-in as a static binary (glibc's crt-static: no musl target here),
# reproducibly: no build paths (remapped), no symbols or debug info, no build ID. Prints its path.
build_bootcamp() {
    local triple=x86_64-unknown-linux-gnu
    local target="${CARGO_TARGET_DIR:-$PWD/target}"
    local flags=(
        -C target-feature=+crt-static
        -C strip=symbols
        -C link-arg=-Wl,--build-id=none
        "--remap-path-prefix=$PWD=/tinykube"
        "--remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"
    )
    # Unit separators between flags, so paths with spaces survive.
    CARGO_ENCODED_RUSTFLAGS="$(IFS=$'\x1f'; echo "${flags[*]}")" \
        cargo build --quiet --release --target "$triple" -p bootcamp >&2
    echo "$target/$triple/release/bootcamp"
}

# What a whole node in a network namespace needs (end-to-end benchmarks): the Debian packages,
# the static bootcamp (TINYKUBE_BOOTCAMP_BIN) and the release binaries.
prepare_node() {
    ensure_packages conntrack docker-registry busybox-static containernetworking-plugins iproute2 iptables libseccomp-dev pkg-config
    TINYKUBE_BOOTCAMP_BIN="$(build_bootcamp)"
    export TINYKUBE_BOOTCAMP_BIN
    cargo build --release --workspace --all-targets
}

# Runs `command...`; with TINYKUBE_TIMINGS set, prints how long it took (`timing: LABEL N.NN s`,
# on stderr).
timed() { # label command...
    local label="$1" t0="$EPOCHREALTIME"
    shift
    "$@"
    [ -z "${TINYKUBE_TIMINGS:-}" ] ||
        awk -v l="$label" -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "timing: %-14s %6.2f s\n", l, b - a }' >&2
}
