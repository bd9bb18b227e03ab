#!/usr/bin/env bash
# images.sh CACHE DK8S LOCK VERSION: builds the image set LOCK names for
# Kubernetes VERSION from source and pushes it into the harness registries
# (see registries.sh), unless they have it already: a warm run builds nothing.
# It also leaves kubectl of that version at CACHE/kubectl for the tests.
# The images are real: etcd, the control plane, coredns and flannel built from
# the Go module proxy; pause is the harness's own static stand-in.
set -euo pipefail
cache=$1 dk8s=$2 lock=$3 version=$4
here=$(cd "$(dirname "$0")" && pwd)
mapfile -t names < <("$dk8s" images --lock "$lock" --kubernetes-version "$version" -o name)
tag_of() { for n in "${names[@]}"; do case "$n" in */"$1":*) echo "${n##*:}"; return;; esac; done; }
kube=$(tag_of kube-apiserver) etcd=$(tag_of etcd) coredns=$(tag_of coredns) pause=$(tag_of pause)
flannel=$(tag_of flannel)
# A workload beside the lock's set, pulled by pods through the mirrors
# under Docker Hub's name (docker.io/library/busybox), as echo is.
busybox=1.37.0
# repo_of NAME: the image's path below its registry (registry.k8s.io or
# docker.io), which a path-preserving mirror keeps.
repo_of() { local path=${1#registry.k8s.io/}; path=${path#docker.io/}; echo "${path%:*}"; }

bins=$cache/bin-$kube extra=$cache/bin-extra-$etcd-$coredns flannelbin=$cache/bin-flannel-$flannel
# kubectl is what the tests talk to the cluster with, as a user would.
# kubelet is linked against glibc, as dl.k8s.io's is (build-k8s.sh): a
# static one an older harness built is built again.
if [ ! -x "$bins/kubectl" ] || ! readelf -l "$bins/kubelet" 2>/dev/null | grep -q 'program interpreter'; then
  echo "harness: building Kubernetes $kube from source (a few minutes when cold)" >&2
  "$here/build-k8s.sh" "$kube" "$bins"
fi
# Copied beside, then renamed over: a kubectl or kubelet still running from
# the cache (a test stopped half way) makes cp over it fail "Text file busy".
for b in kubectl kubelet; do   # the node's kubelet, given to dk8s start --kubelet-binary
  cp "$bins/$b" "$cache/.$b.new" && mv -f "$cache/.$b.new" "$cache/$b"
done

. "$here/indexed.sh"
has() { has_index "$@"; }

# The harness's images change now and then (kube-proxy gained iptables, the
# echo workload was added, then flannel, then etcdutl in etcd's, then pause's
# user, then the Aliyun-like mirror without docker.io's images, then
# upstream's shapes: CoreDNS as user 65532 with a file capability, every
# image a multi-platform index, then kube-proxy's and flannel's own
# iptables, legacy and nft, behind a wrapper): a stamp says which make of
# them the registries hold, and a different one pushes everything again.
make_id=11
# Everything present on every registry? Then there is nothing to do.
missing=0
[ "$(cat "$cache/images.stamp" 2>/dev/null)" = "$make_id" ] || missing=1
for n in "${names[@]}"; do
  repo=$(repo_of "$n"); tag=${n##*:}; flat=${repo##*/}
  has 5001 "google_containers/$flat" "$tag" && has 5002 "$repo" "$tag" || missing=1
  case $n in registry.k8s.io/*) has 5001 "aliyun/google_containers/$flat" "$tag" || missing=1 ;; esac
done
has 5003 google_containers/kube-apiserver "$kube" || missing=1
has 5001 google_containers/busybox "$busybox" && has 5002 library/busybox "$busybox" || missing=1
[ $missing = 1 ] || { echo "harness: registries already hold the image set" >&2; exit 0; }

if [ ! -x "$extra/coredns" ] || [ ! -x "$extra/etcdutl" ]; then
  echo "harness: building etcd $etcd and coredns $coredns from source" >&2
  "$here/build-etcd-coredns.sh" "$etcd" "$coredns" "$extra"
fi
mkdir -p "$extra"
if [ ! -x "$flannelbin/flanneld" ]; then
  echo "harness: building flannel $flannel from source" >&2
  "$here/build-flannel.sh" "$flannel" "$flannelbin"
fi
for tool in pause echo mkindex iptables-wrapper; do
  (cd "$here/../.." && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$extra/$tool" "./test/harness/$tool")
done
cp "$extra/mkindex" "$cache/mkindex"   # older.sh indexes its images too

# add_iptables ROOT: iptables of the image's own, as upstream's kube-proxy
# (distroless-iptables) and flannel images carry: Debian 12's iptables
# package, both modes (xtables-legacy-multi, xtables-nft-multi), with nft
# (kube-proxy's nftables mode runs it) and the libraries they load, from
# Debian's .debs, not this host's files; iptables, iptables-save, ... linked
# to the harness's iptables-wrapper, which picks the mode the host's kubelet
# used (its KUBE-IPTABLES-HINT chain) at the first call, as upstream's do.
iptables_debs="iptables nftables libip4tc2 libip6tc2 libxtables12 libnftnl11 libmnl0 libnetfilter-conntrack3 libnfnetlink0 libnftables1 libedit2 libjansson4 libgmp10 libbsd0 libmd0 libtinfo6 libc6 libgcc-s1 netbase"
add_iptables() {
  local root=$1 debs="$cache/debs-iptables"
  if [ ! -s "$debs/list" ] || [ "$(cat "$debs/list")" != "$iptables_debs" ]; then
    echo "harness: downloading Debian's iptables and nftables packages" >&2
    rm -rf "$debs" && mkdir -p "$debs"
    # shellcheck disable=SC2086
    (cd "$debs" && apt-get download -q -o APT::Sandbox::User=root $iptables_debs >&2)
    echo "$iptables_debs" >"$debs/list"
  fi
  for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$root"; done
  # The loader's cache, as the packages' triggers would have made it.
  [ -e "$root/etc/ld.so.conf" ] || echo 'include /etc/ld.so.conf.d/*.conf' >"$root/etc/ld.so.conf"
  ldconfig -r "$root"
  rm -rf "$root/usr/share/doc" "$root/usr/share/man" "$root/usr/share/lintian" "$root/usr/share/locale"
  cp "$extra/iptables-wrapper" "$root/usr/sbin/iptables-wrapper"
  "$root/usr/sbin/iptables-wrapper" install
  mkdir -p "$root/run"
}

# image NAME TAG ENTRYPOINT FILE...: a one-layer image of static binaries,
# made with `docker import` so that no base image is needed.
image() {
  local name=$1 tag=$2 entry=$3; shift 3
  local root; root=$(mktemp -d)
  mkdir -p "$root/usr/local/bin" "$root/tmp" "$root/var/lib"
  for f in "$@"; do cp "$f" "$root/usr/local/bin/"; done
  [ "$name" = pause ] && cp "$extra/pause" "$root/pause"
  if [ "$name" = coredns ]; then
    # Upstream's: /coredns may bind :53 as a user other than root, by the
    # file capability its Dockerfile sets (setcap cap_net_bind_service=+ep).
    cp "$extra/coredns" "$root/coredns"
    setcap cap_net_bind_service=+ep "$root/coredns"
  fi
  [ "$name" = kube-proxy ] && add_iptables "$root"
  if [ "$name" = flannel ]; then
    # Upstream's layout: the daemon and the CNI config installer in
    # /opt/bin; flanneld programs iptables, as kube-proxy does.
    mkdir -p "$root/opt/bin"
    cp "$flannelbin/flanneld" "$flannelbin/install-conf" "$root/opt/bin/"
    add_iptables "$root"
  fi
  if [ "$name" = busybox ]; then
    # Debian's static busybox: the kubectl verbs' workload (a shell, tar
    # and httpd, as users' images commonly have).
    mkdir -p "$root/bin"
    cp /bin/busybox "$root/bin/busybox"
    for applet in $(/bin/busybox --list); do [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"; done
  fi
  # Upstream's pause runs as nobody and CoreDNS as distroless's nonroot:
  # so do the harness's, so that what dk8s runs from pause as root says so
  # (containers.Spec.User) and CoreDNS's pod binds :53 as upstream's does.
  local user=0:0
  [ "$name" = pause ] && user=65535:65535
  [ "$name" = coredns ] && user=65532:65532
  tar --xattrs --xattrs-include=security.capability -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/bin' \
    --change "USER $user" \
    --change "ENTRYPOINT $entry" - "dk8s-harness/$name:$tag" >/dev/null
  rm -rf "$root"
}
echo "harness: making images" >&2
for c in kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do
  image "$c" "$kube" "[\"/usr/local/bin/$c\"]" "$bins/$c"
done
image etcd "$etcd" '["/usr/local/bin/etcd"]' "$extra/etcd" "$extra/etcdctl" "$extra/etcdutl"
image pause "$pause" '["/pause"]'
image coredns "$coredns" '["/coredns"]'
image flannel "$flannel" '["/opt/bin/flanneld"]'
image busybox "$busybox" '["/bin/sh"]'
image echo 1.0 '["/usr/local/bin/echo"]' "$extra/echo"

push() { push_indexed "$@"; }
for n in "${names[@]}"; do
  repo=$(repo_of "$n"); tag=${n##*:}; flat=${repo##*/}
  src="dk8s-harness/$flat:$tag"
  push "$src" "127.0.0.1:5001/google_containers/$flat:$tag"   # flat, like Aliyun
  # Flat and registry.k8s.io's alone, as Aliyun's google_containers really
  # is: no flannel.
  case $n in registry.k8s.io/*) push "$src" "127.0.0.1:5001/aliyun/google_containers/$flat:$tag" ;; esac
  push "$src" "127.0.0.1:5002/$repo:$tag"                     # path-preserving, like DaoCloud
  case $flat in
    etcd) ;;                                                   # the bad mirror lacks etcd
    kube-apiserver) push "dk8s-harness/pause:$pause" "127.0.0.1:5003/google_containers/$flat:$tag" ;;
    *) push "$src" "127.0.0.1:5003/google_containers/$flat:$tag" ;;
  esac
done
# The workload the node tests run, under an upstream-looking name that pods
# reach through the mirror.
push dk8s-harness/echo:1.0 127.0.0.1:5001/google_containers/dk8s-echo:1.0
push dk8s-harness/echo:1.0 127.0.0.1:5002/e2e-test-images/dk8s-echo:1.0
push dk8s-harness/busybox:$busybox 127.0.0.1:5001/google_containers/busybox:$busybox
push dk8s-harness/busybox:$busybox 127.0.0.1:5002/library/busybox:$busybox
docker rmi dk8s-harness/echo:1.0 dk8s-harness/busybox:$busybox >/dev/null
echo "$make_id" >"$cache/images.stamp"
# The store starts empty of them: pulls in tests and benchmarks download.
for n in "${names[@]}"; do repo=$(repo_of "$n"); docker rmi "dk8s-harness/${repo##*/}:${n##*:}" >/dev/null; done
echo "harness: image set pushed" >&2
