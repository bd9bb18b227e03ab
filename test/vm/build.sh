#!/usr/bin/env bash
# build.sh CACHE: a Debian 12 virtual machine made from Debian's packages
# alone, as a user's VPS is installed: systemd, cgroup v2, loadable kernel
# modules, AppArmor, Debian's docker.io and containerd, an SSH server. It
# prints the directory that holds it:
#   vmlinuz, initrd.img  the VM's kernel and initramfs (Debian's, from the image)
#   root.raw             its root file system (ext4); each run boots a
#                        copy-on-write overlay of it, so it stays as built
#   id_ed25519           the key root logs in with over SSH
# The image is cached under CACHE/vm-<hash of this script>; a warm run
# prints that directory at once.
#
# Nothing here does for dk8s what a real host's install would not: no dk8s,
# no kubelet, no image, no daemon.json. The test brings those in as a user
# would (scp), and configures its mirrors as a user does.
set -euo pipefail
cache=$1
here=$(cd "$(dirname "$0")" && pwd)
# What this host needs to build and run the VM, the image cached or not:
# socat carries each of the VM's connections to a registry (guestfwd).
need=()
for c in qemu-system-x86_64:qemu-system-x86 qemu-img:qemu-utils mmdebstrap:mmdebstrap ssh:openssh-client mkfs.ext4:e2fsprogs socat:socat; do
  command -v "${c%%:*}" >/dev/null || need+=("${c#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "vm: installing ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >&2
fi

dir="$cache/vm-$(sha256sum "$here/build.sh" | cut -c1-16)"
if [ -s "$dir/root.raw" ] && [ -s "$dir/vmlinuz" ]; then
  echo "$dir"
  exit 0
fi

echo "vm: building a Debian 12 VM image in $dir (a few minutes, once)" >&2
rm -rf "$dir" && mkdir -p "$dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ssh-keygen -q -t ed25519 -N '' -C dk8s-vm-test -f "$dir/id_ed25519"

# The packages a Debian 12 VPS with Docker has (docker.io pulls containerd
# and runc; apparmor, or every docker run fails on a kernel that has it).
pkgs=systemd-sysv,apparmor,linux-image-amd64,initramfs-tools,udev,dbus,kmod
pkgs+=,iproute2,iptables,nftables,procps,e2fsprogs,ca-certificates,curl
pkgs+=,openssh-server,docker.io,containerd,containernetworking-plugins

# Hooks run on the host with the root in $1: what an installer writes.
# The network is QEMU's user network (test/integration/vm_test.go starts it
# with restrict=on): the address by DHCP, and, as a VPS has, a default route
# (Kubernetes picks the node's address by it) and a resolver. Both name the
# host as the VM sees it, 10.0.2.2, where restrict=on drops every packet
# that is not a port forwarded to this host's loopback: nothing leaves.
mmdebstrap --variant=important --include="$pkgs" \
  --customize-hook='echo dk8s-vm >"$1/etc/hostname"' \
  --customize-hook='printf "127.0.0.1 localhost\n127.0.1.1 dk8s-vm\n" >"$1/etc/hosts"' \
  --customize-hook='echo "/dev/vda / ext4 rw,errors=remount-ro 0 1" >"$1/etc/fstab"' \
  --customize-hook='printf "[Match]\nName=en*\n\n[Network]\nDHCP=yes\nGateway=10.0.2.2\n" >"$1/etc/systemd/network/10-wired.network"' \
  --customize-hook='echo "nameserver 10.0.2.2" >"$1/etc/resolv.conf"' \
  --customize-hook='chroot "$1" systemctl enable systemd-networkd ssh docker' \
  --customize-hook='mkdir -m 700 -p "$1/root/.ssh"' \
  --customize-hook="cp '$dir/id_ed25519.pub' \"\$1/root/.ssh/authorized_keys\"" \
  --customize-hook='rm -f "$1/etc/machine-id" && touch "$1/etc/machine-id"' \
  --customize-hook='cp "$1"/boot/vmlinuz-* '"$dir/vmlinuz"' && cp "$1"/boot/initrd.img-* '"$dir/initrd.img" \
  bookworm "$work/root" \
  "deb http://deb.debian.org/debian bookworm main" \
  "deb http://deb.debian.org/debian bookworm-updates main" \
  "deb http://deb.debian.org/debian-security bookworm-security main" >&2

# A disk of 12 GiB (sparse): the root as built, room for the images.
mkfs.ext4 -q -L root -d "$work/root" "$dir/root.raw.tmp" 12G >&2
mv "$dir/root.raw.tmp" "$dir/root.raw"
echo "vm: image ready ($(du -sh --apparent-size "$work/root" | cut -f1) of files)" >&2
echo "$dir"
