#!/usr/bin/env bash
# machines.sh CACHE: what the multi-machine tests need to run several
# "machines" on this one, each a container with its own Docker engine
# (test/integration/machines_test.go starts them):
#   - the Docker network dk8s-machines, 172.29.0.0/24, whose gateway
#     172.29.0.1 is this host as the machines see it; traffic from it goes
#     nowhere but to the host and to the other machines;
#   - the flat and path-preserving registries served on that gateway too,
#     read-only, from the storage the loopback ones write (registries.sh).
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
