# Shared by the hack/ scripts: `source "$(dirname "$0")/lib/common.sh"` (paths relative to the repo).

# The Debian packages a node needs (local-up installs them; the VM image has them downloaded).
node_packages=(conntrack curl docker-registry busybox-static containernetworking-plugins iproute2 iptables libseccomp-dev pkg-config)

# Installs Debian packages that are missing (apt-get update only when an install needs it);
# `--no-recommends` first: without their Recommends (qemu-system-x86's would bring a GUI).
ensure_packages() { # [--no-recommends] package...
    local missing=() extra=()
    if [ "${1:-}" = --no-recommends ]; then
        extra=(--no-install-recommends)
        shift
    fi
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return
    echo "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq "${extra[@]}" "${missing[@]}" >/dev/null 2>&1 ||
        { apt-get update -qq && apt-get install -y -qq "${extra[@]}" "${missing[@]}" >/dev/null; }
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

# Debian's etcd (package etcd-server), unpacked into the target dir rather than installed
# (installing it would start an etcd service on the machine). Prints the binary's path.
etcd_binary() {
    local dir="${CARGO_TARGET_DIR:-$PWD/target}/etcd-server"
    if [ ! -x "$dir/usr/bin/etcd" ]; then
        local tmp
        tmp="$(mktemp -d)"
        (cd "$tmp" && { apt-get download -qq etcd-server >/dev/null 2>&1 ||
            { apt-get update -qq && apt-get download -qq etcd-server >/dev/null; }; })
        rm -rf "$dir"
        mkdir -p "$dir"
        dpkg-deb -x "$tmp"/etcd-server_*.deb "$dir"
        rm -rf "$tmp"
    fi
    echo "$dir/usr/bin/etcd"
}

# What a whole node in a network namespace needs (end-to-end benchmarks): the Debian packages,
# the static bootcamp (TINYKUBE_BOOTCAMP_BIN) and the release binaries.
prepare_node() {
    ensure_packages "${node_packages[@]}"
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

# ---- Processes the scripts start (the registry, the daemons) ----
# A pidfile holds two lines: the pid and the process's start time (field 22 of /proc/PID/stat,
# in clock ticks since boot). The pid alone names a process only until it exits and the number
# is reused; pid and start time together name one process for good, from the moment of the fork
# (before the child has exec'ed the program), so identity never depends on a command line that
# is still the shell's.

# The start time of process `pid`, or nothing if there is none or it is a zombie (exited,
# waiting to be reaped), unless `zombie` is given.
proc_start_time() { # pid [zombie]
    local stat rest
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    rest="${stat##*) }"                 # the fields after "pid (comm) "; comm may hold spaces
    # shellcheck disable=SC2086
    set -- $rest "${2:-}"               # $1 is field 3 (state), so field 22 is $20
    [ "$1" != Z ] || [ -n "${!#}" ] || return 1
    echo "${20}"
}

# Writes `pidfile` for `pid` (pid and start time; also for a child that has already exited, so
# that its failure is seen as an exit).
record_pid() { # pidfile pid
    local start
    start="$(proc_start_time "$2" zombie)" || return 1
    printf '%s\n%s\n' "$2" "$start" >"$1.tmp.$$"
    mv -f "$1.tmp.$$" "$1"
}

# Prints the pid recorded in `pidfile` if that very process still runs; false otherwise.
pidfile_alive() { # pidfile
    [ -f "$1" ] || return 1
    local pid start now
    { read -r pid && read -r start; } <"$1" 2>/dev/null || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    now="$(proc_start_time "$pid")" || return 1
    [ "$now" = "$start" ] || return 1
    echo "$pid"
}

# Processes whose program is named `prog` (argv[0]'s last part) and whose first two arguments
# are `arg1 arg2` (tinykube's own instances put their data dir or config file there), one pid a
# line. Subcommands of the same binary (`tinykube-kubelet cleanup`, shims) never match.
find_processes() { # prog arg1 arg2
    local f pid argv
    for f in $(grep -lFxz -- "$3" /proc/[0-9]*/cmdline 2>/dev/null || true); do
        pid="${f#/proc/}"
        pid="${pid%/cmdline}"
        mapfile -t argv < <(tr '\0' '\n' 2>/dev/null <"$f" | head -3 || true)
        if [ "${#argv[@]}" -eq 3 ] && [ "${argv[0]##*/}" = "$1" ] &&
            [ "${argv[1]}" = "$2" ] && [ "${argv[2]}" = "$3" ] &&
            proc_start_time "$pid" >/dev/null; then
            echo "$pid"
        fi
    done
}

# The command line of process `pid`, spaces between the arguments.
proc_cmdline() { # pid
    tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" | sed 's/ $//'
}

# Starts `command...` as a daemon: its own session (no terminal's signals reach it), stdin from
# /dev/null, stdout and stderr appended to `log`. `pidfile` is written at once, before the program
# has even started, so a failure at any later point leaves a process `stop_process` can stop.
# TINYKUBE_START_DELAY=SECONDS sleeps in the child before the exec (tests widen the window
# between fork and exec with it, as a cold machine does).
start_process() { # pidfile log command...
    local pidfile="$1" log="$2"
    shift 2
    (
        # The scripts' locks (fds 8 and 9, see hold_lock) stay with the scripts.
        exec 8>&- 9>&-
        [ -z "${TINYKUBE_START_DELAY:-}" ] || sleep "$TINYKUBE_START_DELAY"
        exec setsid "$@"
    ) </dev/null >>"$log" 2>&1 &
    # A child that is already gone (and reaped) is recorded without a start time: as exited.
    record_pid "$pidfile" "$!" || printf '%s\n\n' "$!" >"$pidfile"
}

# Waits until process `pid` runs `program` (its exec done). False if it exited first, or after
# `secs` seconds.
wait_exec() { # pid program secs
    local start deadline=$((SECONDS + $3)) argv0
    start="$(proc_start_time "$1")" || return 1
    while :; do
        argv0="$(tr '\0' '\n' 2>/dev/null <"/proc/$1/cmdline" | head -1 || true)"
        [ "$(proc_start_time "$1" || true)" = "$start" ] || return 1
        [ "${argv0##*/}" != "${2##*/}" ] || return 0
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.02
    done
}

# Stops the process recorded in `pidfile` (TERM, then KILL after 5 s), and removes the pidfile.
# A pidfile whose process is gone, or was replaced by another under the same pid, is just
# removed. Prints what it did, with `name`.
stop_process() { # name pidfile
    local pid
    if pid="$(pidfile_alive "$2")"; then
        stop_pid "$1" "$pid"
    fi
    rm -f "$2"
}

# TERM, then KILL after 5 s; waits until `pid` is gone.
stop_pid() { # name pid
    local start
    start="$(proc_start_time "$2")" || return 0
    kill "$2" 2>/dev/null || true
    for _ in $(seq 50); do
        [ "$(proc_start_time "$2")" = "$start" ] || { echo "stopped $1 (pid $2)"; return 0; }
        sleep 0.1
    done
    kill -9 "$2" 2>/dev/null || true
    for _ in $(seq 50); do
        [ "$(proc_start_time "$2")" = "$start" ] || { echo "killed $1 (pid $2): it ignored SIGTERM for 5 s"; return 0; }
        sleep 0.1
    done
    echo "$1 (pid $2) did not exit after SIGKILL" >&2
    return 1
}

# The last lines of `log`, indented, under a heading (what every failure shows).
show_log() { # log [lines]
    [ -s "$1" ] || { echo "  ($1 is empty)" >&2; return 0; }
    echo "  last lines of $1:" >&2
    tail -n "${2:-20}" "$1" | sed 's/^/    /' >&2
}

# The pids of the processes listening on TCP `host:port` (any address of this network
# namespace that covers `host`), one a line.
listeners() { # host:port
    local port="${1##*:}"
    ss -Hltnp "sport = :$port" 2>/dev/null | { grep -o 'pid=[0-9]*' || true; } | cut -d= -f2 | sort -u
}

# Holds an exclusive lock on `file` on fd `fd` (8: local-up.sh, 9: registry.sh) until the script
# and the jobs it started in the background end; daemons do not inherit it (start_process). A
# second run waits for the first (up to 2 min, TINYKUBE_LOCK_TIMEOUT) instead of racing it, and
# names what holds the lock if it gives up.
hold_lock() { # fd file who
    mkdir -p "$(dirname "$2")"
    eval "exec $1>>\"\$2\""
    flock -n "$1" && return 0
    echo "waiting for another $3 to finish (lock $2)" >&2
    flock -w "${TINYKUBE_LOCK_TIMEOUT:-120}" "$1" && return 0
    echo "$2 is still locked after ${TINYKUBE_LOCK_TIMEOUT:-120} s, held open by:" >&2
    local fd
    for fd in /proc/[0-9]*/fd/*; do
        [ "$(readlink "$fd" 2>/dev/null)" = "$2" ] || continue
        fd="${fd#/proc/}"
        [ "${fd%%/*}" = "$BASHPID" ] || echo "  pid ${fd%%/*}: $(proc_cmdline "${fd%%/*}")" >&2
    done
    return 1
}

# ---- Daemons as systemd units, where systemd is PID 1 ----
# On such hosts (most users' VMs) the daemons are units, enabled so that the node comes back
# after a reboot, restarted when they fail, ordered (registry and apiserver before kubelet and
# proxy), logging to the journal. Elsewhere they are processes of the scripts' own, with pidfiles.
# TINYKUBE_SERVICE_MANAGER: auto (systemd where it is PID 1), systemd, or pidfiles.

use_systemd() {
    case "${TINYKUBE_SERVICE_MANAGER:-auto}" in
        systemd) return 0 ;;
        pidfiles) return 1 ;;
        auto) [ -d /run/systemd/system ] ;;
        *) echo "TINYKUBE_SERVICE_MANAGER=${TINYKUBE_SERVICE_MANAGER}: want auto, systemd or pidfiles" >&2; exit 2 ;;
    esac
}

unit_dir="${TINYKUBE_UNIT_DIR:-/etc/systemd/system}"

# The arguments as one ExecStart= line: each quoted, with systemd's specifiers (%) and
# variables ($) escaped.
unit_command() { # command...
    local a out=()
    for a in "$@"; do
        a="${a//\\/\\\\}"
        a="${a//\"/\\\"}"
        a="${a//%/%%}"
        a="${a//\$/\$\$}"
        out+=("\"$a\"")
    done
    echo "${out[*]}"
}

# Writes unit tinykube-NAME.service with `text` (a daemon-reload when it changed).
install_unit() { # name text
    local f="$unit_dir/tinykube-$1.service"
    if [ -f "$f" ] && [ "$(cat "$f")" = "$2" ]; then
        return 0
    fi
    mkdir -p "$unit_dir"
    printf '%s\n' "$2" >"$f.tmp.$$"
    mv -f "$f.tmp.$$" "$f"
    systemctl daemon-reload
}

# A unit's main pid while it runs (active, running); false otherwise.
unit_running() { # name
    local state pid
    state="$(systemctl show -p ActiveState -p SubState --value "tinykube-$1.service" 2>/dev/null | tr '\n' ' ')"
    [ "$state" = "active running " ] || return 1
    pid="$(systemctl show -p MainPID --value "tinykube-$1.service")"
    [ "${pid:-0}" != 0 ] || return 1
    echo "$pid"
}

# Starts (and enables) unit tinykube-NAME and waits until its program runs.
start_unit() { # name
    systemctl enable --now "tinykube-$1.service" >/dev/null 2>&1 ||
        systemctl enable --now "tinykube-$1.service"
    local deadline=$((SECONDS + ${TINYKUBE_START_TIMEOUT:-60}))
    until unit_running "$1" >/dev/null; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.05
    done
}

# Stops and disables unit tinykube-NAME (with --purge: removes it), if there is one.
stop_unit() { # name [--purge]
    local f="$unit_dir/tinykube-$1.service" pid
    if [ -f "$f" ]; then
        pid="$(unit_running "$1" || true)"
        systemctl disable --now "tinykube-$1.service" >/dev/null 2>&1 ||
            systemctl disable --now "tinykube-$1.service"
        [ -z "$pid" ] || echo "stopped $1 (unit tinykube-$1.service, pid $pid)"
    fi
    if [ "${2:-}" = --purge ]; then
        systemctl reset-failed "tinykube-$1.service" >/dev/null 2>&1 || true
        if [ -f "$f" ]; then
            rm -f "$f"
            systemctl daemon-reload
            echo "removed $f"
        fi
    fi
}

# The last lines a component logged: its journal (units) or its log file.
show_component_log() { # name logfile
    if use_systemd; then
        echo "  last lines of its journal (journalctl -u tinykube-$1):" >&2
        journalctl -u "tinykube-$1.service" -n 20 --no-pager -o cat 2>/dev/null | sed 's/^/    /' >&2 || true
    else
        show_log "$2"
    fi
}
