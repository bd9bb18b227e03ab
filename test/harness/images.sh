#!/usr/bin/env bash
# images.sh CACHE DK8S LOCK: builds the image set LOCK names for its default
# Kubernetes version from source and pushes it into the harness registries
# (see registries.sh), unless they have it already: a warm run builds nothing.
# It also leaves kubectl of that version at CACHE/kubectl for the tests.
# The images are real: etcd, the control plane and coredns built from the Go
# module proxy; pause is the harness's own static stand-in.
set -euo pipefail
cache=$1 dk8s=$2 lock=$3
here=$(cd "$(dirname "$0")" && pwd)
mapfile -t names < <("$dk8s" images --lock "$lock" -o name)
tag_of() { for n in "${names[@]}"; do case "$n" in */"$1":*) echo "${n##*:}"; return;; esac; done; }
kube=$(tag_of kube-apiserver) etcd=$(tag_of etcd) coredns=$(tag_of coredns) pause=$(tag_of pause)

bins=$cache/bin-$kube extra=$cache/bin-extra-$etcd-$coredns
# kubectl is what the tests talk to the cluster with, as a user would.
if [ ! -x "$bins/kubectl" ]; then
  echo "harness: building Kubernetes $kube from source (a few minutes when cold)" >&2
  "$here/build-k8s.sh" "$kube" "$bins"
fi
cp "$bins/kubectl" "$cache/kubectl"

has() { curl -fs -o /dev/null -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' "http://127.0.0.1:$1/v2/$2/manifests/$3"; }

# Everything present on every registry? Then there is nothing to do.
missing=0
for n in "${names[@]}"; do
  path=${n#registry.k8s.io/}; repo=${path%:*}; tag=${path##*:}; flat=${repo##*/}
  has 5001 "google_containers/$flat" "$tag" && has 5002 "$repo" "$tag" || missing=1
done
has 5003 google_containers/kube-apiserver "$kube" || missing=1
[ $missing = 1 ] || { echo "harness: registries already hold the image set" >&2; exit 0; }

if [ ! -x "$extra/coredns" ]; then
  echo "harness: building etcd $etcd and coredns $coredns from source" >&2
  "$here/build-etcd-coredns.sh" "$etcd" "$coredns" "$extra"
fi
mkdir -p "$extra"
if [ ! -x "$extra/pause" ]; then
  (cd "$here/../.." && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$extra/pause" ./test/harness/pause)
fi

# image NAME TAG ENTRYPOINT FILE...: a one-layer image of static binaries,
# made with `docker import` so that no base image is needed.
image() {
  local name=$1 tag=$2 entry=$3; shift 3
  local root; root=$(mktemp -d)
  mkdir -p "$root/usr/local/bin" "$root/tmp" "$root/var/lib"
  for f in "$@"; do cp "$f" "$root/usr/local/bin/"; done
  [ "$name" = pause ] && cp "$extra/pause" "$root/pause"
  [ "$name" = coredns ] && cp "$extra/coredns" "$root/coredns"
  tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
    --change "ENTRYPOINT $entry" - "dk8s-harness/$name:$tag" >/dev/null
  rm -rf "$root"
}
echo "harness: making images" >&2
for c in kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do
  image "$c" "$kube" "[\"/usr/local/bin/$c\"]" "$bins/$c"
done
image etcd "$etcd" '["/usr/local/bin/etcd"]' "$extra/etcd" "$extra/etcdctl"
image pause "$pause" '["/pause"]'
image coredns "$coredns" '["/coredns"]'

push() { docker tag "$1" "$2" && docker push -q "$2" >/dev/null && docker rmi "$2" >/dev/null; }
for n in "${names[@]}"; do
  path=${n#registry.k8s.io/}; repo=${path%:*}; tag=${path##*:}; flat=${repo##*/}
  src="dk8s-harness/$flat:$tag"
  push "$src" "127.0.0.1:5001/google_containers/$flat:$tag"   # flat, like Aliyun
  push "$src" "127.0.0.1:5002/$repo:$tag"                     # path-preserving, like DaoCloud
  case $flat in
    etcd) ;;                                                   # the bad mirror lacks etcd
    kube-apiserver) push "dk8s-harness/pause:$pause" "127.0.0.1:5003/google_containers/$flat:$tag" ;;
    *) push "$src" "127.0.0.1:5003/google_containers/$flat:$tag" ;;
  esac
done
# The store starts empty of them: pulls in tests and benchmarks download.
for n in "${names[@]}"; do path=${n#registry.k8s.io/}; repo=${path%:*}; docker rmi "dk8s-harness/${repo##*/}:${path##*:}" >/dev/null; done
echo "harness: image set pushed" >&2
