#!/usr/bin/env bash
# older.sh CACHE VERSION DEFAULT: an older Kubernetes release for the upgrade tests:
# kube-apiserver, kube-controller-manager, kube-scheduler and kube-proxy at
# VERSION (v1.36.3) built from source like the default set, and pushed into
# the flat and path-preserving mirrors; its kubelet is left at
# CACHE/bin-VERSION/kubelet. Its etcd, coredns and pause are the default
# set's (the module proxy has no etcd or coredns of that release), which the
# tests' two-release lock says. A warm run builds and pushes nothing.
set -euo pipefail
cache=$1 version=$2 default=$3
here=$(cd "$(dirname "$0")" && pwd)
bins=$cache/bin-$version
. "$here/indexed.sh"
has() { has_index "$@"; }
comps="kube-apiserver kube-controller-manager kube-scheduler kube-proxy"
missing=0
for c in $comps; do
  has 5001 "google_containers/$c" "$version" && has 5002 "$c" "$version" || missing=1
done
[ -x "$bins/kubelet" ] || missing=1
[ $missing = 1 ] || { echo "harness: registries already hold Kubernetes $version" >&2; exit 0; }
if [ ! -x "$bins/kubelet" ]; then
  echo "harness: building Kubernetes $version from source, for the upgrade tests (a few minutes when cold)" >&2
  "$here/build-k8s.sh" "$version" "$bins"
fi
# kube-proxy's image carries iptables: take the default set's, with the
# older binary over it.
for c in $comps; do
  root=$(mktemp -d)
  mkdir -p "$root/usr/local/bin" "$root/tmp" "$root/var/lib"
  cp "$bins/$c" "$root/usr/local/bin/"
  if [ "$c" = kube-proxy ]; then
    # The default kube-proxy image's files (iptables and its libraries).
    src=127.0.0.1:5001/google_containers/kube-proxy:$default
    docker pull -q "$src" >/dev/null
    cid=$(docker create "$src")
    docker export "$cid" | tar -C "$root" -x --exclude usr/local/bin/kube-proxy
    docker rm "$cid" >/dev/null
    docker rmi "$src" >/dev/null
    cp "$bins/$c" "$root/usr/local/bin/"
  fi
  tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/bin' \
    --change "ENTRYPOINT [\"/usr/local/bin/$c\"]" - "dk8s-harness/$c:$version" >/dev/null
  rm -rf "$root"
  for dst in "127.0.0.1:5001/google_containers/$c:$version" "127.0.0.1:5002/$c:$version"; do
    push_indexed "dk8s-harness/$c:$version" "$dst"
  done
  docker rmi "dk8s-harness/$c:$version" >/dev/null
done
echo "harness: Kubernetes $version pushed" >&2
