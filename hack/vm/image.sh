#!/usr/bin/env bash
# Builds the Debian 12 guest the VM test boots (once; cached outside the clone, in
# TINYKUBE_VM_CACHE, default /var/tmp/tinykube-vm): what a user's VM is today — systemd as PID 1,
# the unified cgroup v2 hierarchy only, Debian's 6.1 kernel — plus qemu-guest-agent, through which
# the test drives it (no network channel, no keys). The packages local-up installs are only
# *downloaded* into apt's cache (with their Recommends, which the guest's apt installs), with
# apt's lists kept, so that `hack/local-up.sh` installs them in
# the guest itself as on a user's machine (docker-registry's postinst starting Debian's registry
# service under systemd included), without the guest reaching any network.
#
# The guest boots the kernel and initramfs copied out here (qemu -kernel/-initrd), never its own
# /boot: its update-initramfs is off, which a package's trigger would otherwise run for ten
# minutes under emulation.
#
# Prints the directory holding `root.img` (ext4, the guest's /), `vmlinuz` and `initrd.img`.
# Run as root (mmdebstrap's root mode; mkfs.ext4 -d keeps ownership).
set -euo pipefail
cd "$(dirname "$0")/../.."
source hack/lib/common.sh

# The recipe's version: bump it when anything below changes, so cached images are rebuilt.
recipe=6
mirror="${TINYKUBE_VM_MIRROR:-http://deb.debian.org/debian}"
cache="${TINYKUBE_VM_CACHE:-/var/tmp/tinykube-vm}"
out="$cache/debian12-r$recipe-$(printf '%s\n' "${node_packages[@]}" | sha256sum | cut -c1-12)"

if [ -f "$out/done" ]; then
    echo "$out"
    exit 0
fi
ensure_packages mmdebstrap e2fsprogs >&2
mkdir -p "$cache"
work="$(mktemp -d "$cache/build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"

# Packages of the guest itself. linux-image-amd64 brings the kernel and its initramfs;
# qemu-guest-agent is the test's channel; systemd-timesyncd keeps the clock (TLS certificates).
guest=(systemd systemd-sysv udev dbus linux-image-amd64 initramfs-tools qemu-guest-agent
    kmod procps iproute2 ca-certificates less)

echo "building the Debian 12 guest image in $out (mirror $mirror)" >&2
mmdebstrap --mode=root --variant=apt --format=directory \
    --include="$(IFS=,; echo "${guest[*]}")" \
    --skip=cleanup/apt \
    --customize-hook='echo tkvm >"$1/etc/hostname"' \
    --customize-hook='printf "127.0.0.1 localhost\n127.0.1.1 tkvm\n" >"$1/etc/hosts"' \
    --customize-hook='printf "/dev/vda / ext4 rw,errors=remount-ro 0 1\n/dev/vdb /root/tinykube ext4 rw,nofail,x-systemd.device-timeout=120s 0 2\n" >"$1/etc/fstab"' \
    --customize-hook='mkdir -p "$1/root/tinykube"' \
    --customize-hook='printf "[Match]\nName=en*\n\n[Network]\nDHCP=ipv4\n" >"$1/etc/systemd/network/80-dhcp.network"' \
    --customize-hook='chroot "$1" systemctl enable systemd-networkd.service' \
    --customize-hook='ln -sf /dev/null "$1/etc/systemd/system/systemd-networkd-wait-online.service"' \
    --customize-hook='chroot "$1" passwd -d root' \
    --customize-hook='sed -i "s/^update_initramfs=.*/update_initramfs=no/" "$1/etc/initramfs-tools/update-initramfs.conf"' \
    --customize-hook="chroot \"\$1\" apt-get -o APT::Install-Recommends=true install --download-only -y -qq ${node_packages[*]}" \
    bookworm "$rootfs" "$mirror" >&2

cp "$(readlink -f "$rootfs/vmlinuz")" "$work/vmlinuz"
cp "$(readlink -f "$rootfs/initrd.img")" "$work/initrd.img"
# Room for images, pods and logs beyond the ~700 MB of the system (a sparse file).
mkfs.ext4 -q -F -L tinykube-root -d "$rootfs" "$work/root.img" 8G >&2
rm -rf "$rootfs"
touch "$work/done"
rm -rf "$out"
mv "$work" "$out"
trap - EXIT
# Older recipes go.
find "$cache" -maxdepth 1 -name 'debian12-*' ! -path "$out" -exec rm -rf {} +
echo "$out"
