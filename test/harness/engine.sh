#!/usr/bin/env bash
# engine.sh: makes sure a Docker engine and the registry server are installed
# and that dockerd answers, installing them from Debian's packages and
# starting dockerd in the background where needed (there is no init system
# on the test machines). Idempotent.
set -euo pipefail
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v curl >/dev/null || need+=(curl)
# The node: the pod runtime and CNI plugins dk8s start finds on the host, and
# systemd's unit verifier for the units dk8s writes where systemd is PID 1.
command -v containerd >/dev/null || need+=(containerd)
[ -x /usr/lib/cni/bridge ] || [ -x /opt/cni/bin/bridge ] || need+=(containernetworking-plugins)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v iptables >/dev/null || need+=(iptables)
command -v ip >/dev/null || need+=(iproute2)          # the node's service-range device
command -v unshare >/dev/null || need+=(util-linux)   # a test's network namespace without a route
[ -x /bin/busybox ] || need+=(busybox-static)          # the kubectl verbs' workload image
# The conformance tests' images: Debian roots, and BusyBox built from source.
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v gcc >/dev/null || need+=(gcc libc6-dev)
command -v make >/dev/null || need+=(make)
command -v bzip2 >/dev/null || need+=(bzip2)
# runc of the Docker 29 machine, built with its seccomp support.
[ -f /usr/include/seccomp.h ] || need+=(libseccomp-dev)
if [ ${#need[@]} -gt 0 ]; then
  echo "harness: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! docker version >/dev/null 2>&1; then
  echo "harness: starting dockerd" >&2
  setsid dockerd >/var/log/dockerd.log 2>&1 </dev/null &
  for _ in $(seq 120); do
    docker version >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker version >/dev/null 2>&1 || { tail -20 /var/log/dockerd.log >&2; echo "harness: dockerd did not start" >&2; exit 1; }
fi
