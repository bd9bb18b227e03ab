#!/usr/bin/env bash
# machines.sh CACHE: what the multi-machine tests need to run several
# "machines" on this one, each a container with its own Docker engine
# (test/integration/machines_test.go starts them):
#   - the Docker network dk8s-machines, 172.29.0.0/24, whose gateway
#     172.29.0.1 is this host as the machines see it; traffic from it goes
#     nowhere but to the host and to the other machines;
#   - the flat and path-preserving registries served on that gateway too,
#     read-only, from the storage the loopback ones write (registries.sh);
#   - the machine image, dk8s-harness/machine:N, named in CACHE/machine.image.
# Idempotent: a warm run changes nothing and takes a second or two.
set -euo pipefail
cache=$1
net=dk8s-machines subnet=172.29.0.0/24 gw=172.29.0.1

# The network. Its bridge is named after it, so the firewall rule below can
# name it across restarts of dockerd (which keeps the network).
if ! docker network inspect "$net" >/dev/null 2>&1; then
  echo "harness: creating the Docker network $net ($subnet)" >&2
  docker network create --driver bridge --subnet "$subnet" --gateway "$gw" \
    -o com.docker.network.bridge.name="$net" "$net" >/dev/null
fi
got=$(docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}' "$net")
[ "$got" = "$subnet $gw" ] || { echo "harness: the Docker network $net has $got, want $subnet $gw: remove it (docker network rm $net) and rerun" >&2; exit 1; }

# Tests send traffic only to loopback and to their own machines. A machine
# has a default route through the host (Kubernetes picks a node's address by
# it), so a ClusterIP that kube-proxy has not programmed yet, or a name the
# machine resolves upstream, would leave this host for the Internet: refuse
# every packet from the machines that is forwarded anywhere but to another
# machine. The host itself (the gateway, its registries) is not forwarded to.
# DOCKER-USER is the chain Docker leaves to its users and keeps across its
# restarts.
if ! iptables -C DOCKER-USER -i "$net" ! -o "$net" -j REJECT 2>/dev/null; then
  iptables -I DOCKER-USER -i "$net" ! -o "$net" -j REJECT
fi

# The registries, as the machines see them: the same storage served on the
# gateway, read-only so that nothing but the loopback registry writes it
# (images.sh pushes there) and nothing listens on an address other hosts
# could reach with write access. The loopback registry must be up first
# (registries.sh), for it made the storage.
for port in 5001 5002; do
  if curl -fsS "http://$gw:$port/v2/" >/dev/null 2>&1; then continue; fi
  dir="$cache/registry-$port"
  [ -d "$dir/data" ] || { echo "harness: $dir/data is missing: registries.sh must run before machines.sh" >&2; exit 1; }
  cat >"$dir/machines.yml" <<CFG
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/data
  maintenance:
    readonly:
      enabled: true
    # The loopback registry owns the uploads directory.
    uploadpurging:
      enabled: false
http:
  addr: $gw:$port
CFG
  setsid docker-registry serve "$dir/machines.yml" >"$dir/machines.log" 2>&1 </dev/null &
  for _ in $(seq 50); do
    curl -fsS "http://$gw:$port/v2/" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fsS "http://$gw:$port/v2/" >/dev/null || { cat "$dir/machines.log" >&2; echo "harness: the registry for the machines on $gw:$port did not start" >&2; exit 1; }
done

# The machine image: this host's /etc, a skeleton of directories and an
# entrypoint, nothing else. The host's /usr is bound read-only when a machine
# runs, so a machine has the very dockerd, containerd, runc, iptables and CNI
# plugins (/usr/lib/cni) of this host, and the image stays a few megabytes.
# The make stamp changes with what the image is made of; the label of /etc's
# listing rebuilds it when this host's /etc has changed (a package installed
# since), for /etc must match the /usr it goes with.
make_id=4
image=dk8s-harness/machine:$make_id
etc_sum=$(find /etc -path /etc/hostname -prune -o -path /etc/hosts -prune -o -path /etc/resolv.conf -prune -o \
  -printf '%p %s %T@ %l\n' 2>/dev/null | sort | sha256sum | cut -c1-16)
if [ "$(docker image inspect -f '{{index .Config.Labels "dk8s-harness.etc"}}' "$image" 2>/dev/null)" = "$etc_sum" ]; then
  echo "$image" >"$cache/machine.image"
  echo "harness: machine image $image is up to date" >&2
  exit 0
fi
echo "harness: making the machine image $image" >&2
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
cp -a /etc "$root/etc"
# Services of this host that are no business of a machine's (they would
# fail there, their programs' data being absent), and this host's
# identities: each machine makes its own (machine-id below, Docker's
# key.json by dockerd on its first start).
rm -rf "$root/etc/systemd/system/multi-user.target.wants/docker-registry.service" \
  "$root/etc/systemd/system/multi-user.target.wants/postgresql.service" \
  "$root/etc/init.d/docker-registry" "$root/etc/init.d/postgresql" \
  "$root/etc/machine-id" "$root/etc/docker/key.json"
# A node of this host's own (dk8s's units, where systemd runs it) is not the
# machine's: a machine starts with no dk8s on it.
find "$root/etc/systemd" -name 'dk8s-*' -exec rm -rf {} +
# The merged-/usr links (/bin -> usr/bin, ...) as this host has them.
for d in bin sbin lib lib32 lib64 libx32; do
  if [ -L "/$d" ]; then ln -s "$(readlink "/$d")" "$root/$d"; fi
done
mkdir -p "$root"/{usr,run,tmp,proc,sys,dev,root,opt/dk8s,mnt,srv,home} \
  "$root"/var/{lib,log,tmp,cache,spool}
chmod 1777 "$root/tmp" "$root/var/tmp"
# Without this link dockerd's pid file sits on the machine's disk and
# outlives a reboot (docker restart), and the next start refuses to run.
ln -s /run "$root/var/run"
ln -s /run/lock "$root/var/lock"
cat >"$root/machine-init" <<'INIT'
#!/bin/bash
# The machine's PID 1: makes the container look enough like a host for
# Docker and Kubernetes, then becomes the machine's Docker engine, or its
# systemd.
set -euo pipefail
# Docker mounts a container's cgroups read-only unless it is privileged,
# and this one, with its own cgroup namespace, sees only its own subtree:
# writable, the engine's containers and kubelet's kubepods land under the
# machine's cgroup on the host, not at the top where another machine's
# kubelet would count them as its own. A plain `remount,rw` fails with
# "mount point is busy"; a bind remount changes just this mount's flags.
awk '$2 ~ "^/sys/fs/cgroup(/|$)" && $4 ~ "(^|,)ro(,|$)" {print $2}' /proc/self/mounts | while read -r m; do
  mount -o remount,bind,rw "$m"
done
# kubelet reads the kernel's log and stops when it cannot open it; kind
# links the console where the device was not given.
[ -e /dev/kmsg ] || ln -s /dev/console /dev/kmsg
# Mounts stay private, as a container's are, and as / is after the boot
# of a host whose init is not systemd: nothing here does for dk8s what
# such a host's boot would not.
# The machine's resolver. Docker's on this network, 127.0.0.11, is loopback:
# CoreDNS forwarding to it from a pod reaches itself and stops ("Loop
# detected"), and the inner engine swaps it for 8.8.8.8 in its containers.
# Name the gateway instead, where nothing answers DNS: lookups fail at once
# and none leaves this host. Tests address machines by IP (many hosts cannot
# resolve each other's names either).
resolv=$(sed 's/^nameserver 127\.0\.0\.11$/nameserver @GW@/' /etc/resolv.conf)
echo "$resolv" >/etc/resolv.conf   # bound by Docker: written through, not replaced
# Each machine its own identity, kept across reboots.
[ -s /etc/machine-id ] || tr -d - </proc/sys/kernel/random/uuid >/etc/machine-id
# A machine that boots systemd (DK8S_MACHINE_INIT=systemd), as most hosts
# do: systemd is PID 1, owns the cgroups and starts Docker by the host's own
# units (docker.socket, docker.service, containerd.service, enabled in the
# copied /etc), with the mirrors in daemon.json as a user would put them.
if [ "${DK8S_MACHINE_INIT:-}" = systemd ]; then
  mkdir -p /etc/docker
  echo '{"insecure-registries": ["@GW@:5001", "@GW@:5002"]}' >/etc/docker/daemon.json
  echo "machine-init: $(hostname) booting systemd at $(date -u +%FT%TZ)"
  exec /lib/systemd/systemd
fi
# cgroup v2 allows controllers for children only on a cgroup without
# processes of its own: move this one into a leaf first (as moby's dind does).
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  mkdir -p /sys/fs/cgroup/init
  xargs -rn1 </sys/fs/cgroup/cgroup.procs >/sys/fs/cgroup/init/cgroup.procs 2>/dev/null || :
  sed -e 's/ / +/g' -e 's/^/+/' </sys/fs/cgroup/cgroup.controllers >/sys/fs/cgroup/cgroup.subtree_control
fi
exec > >(tee -a /var/log/dockerd.log) 2>&1
echo "machine-init: $(hostname) starting dockerd at $(date -u +%FT%TZ)"
exec dockerd --insecure-registry @GW@:5001 --insecure-registry @GW@:5002
INIT
sed -i "s/@GW@/$gw/g" "$root/machine-init"
chmod 755 "$root/machine-init"
# The images this one replaces go once it is made, unless a kept machine
# still runs one.
old=$(docker images --format '{{.Repository}}:{{.Tag}}' dk8s-harness/machine | grep -vx "$image" || true)
old_id=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change "LABEL dk8s-harness.etc=$etc_sum" \
  --change 'ENTRYPOINT ["/machine-init"]' - "$image" >/dev/null
for i in $old $old_id; do docker rmi "$i" >/dev/null 2>&1 || :; done
echo "$image" >"$cache/machine.image"
echo "harness: machine image $image made" >&2
