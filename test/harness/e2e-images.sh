#!/usr/bin/env bash
# e2e-images.sh CACHE E2EDIR: the images Kubernetes' conformance tests pull,
# built here and pushed into the harness's path-preserving mirror
# (127.0.0.1:5002) under their canonical paths
# (registry.k8s.io/e2e-test-images/agnhost:2.66.1 is served as
# 127.0.0.1:5002/e2e-test-images/agnhost:2.66.1), so that a node started with
# that mirror pulls them by their own names. A warm run pushes nothing.
#
# Each follows its upstream Dockerfile (test/images/*/ in the Kubernetes
# module), with what this machine can have in place of what it cannot:
#   agnhost           upstream: alpine + bind-tools curl netcat iproute2 socat
#                     bash; here: Debian 12 (mmdebstrap) + the same tools.
#                     /agnhost, /agnhost-2, porter's certificate, /uploads,
#                     user 1000 in group 50000, ENTRYPOINT /agnhost, CMD pause
#   busybox           upstream: busybox:1.37.0; here: BusyBox 1.37.0 built
#                     from its release tarball (build-busybox.sh), CMD sh
#   nginx             upstream: nginx:1.27-alpine; here: Debian's nginx-light
#                     serving /usr/share/nginx/html on :80, logs to std*
#   nautilus, kitten  agnhost + their html/ files, CMD test-webserver
#   nonewprivs        nnp, setuid root, on a BusyBox root (alpine's place)
#   glibc-dns-testing Debian 12 + dnsutils, as upstream's
#   sample-apiserver  k8s.io/sample-apiserver on a BusyBox root
set -euo pipefail
cache=$1 e2e=$2
here=$(cd "$(dirname "$0")" && pwd)
reg=127.0.0.1:5002
make_id=1
stamp=$cache/e2e-images.stamp

images=(agnhost:2.66.1 agnhost:2.55 busybox:1.37.0-2 nginx:1.27.0-2 nginx:1.28.0-2 nautilus:1.8 kitten:1.8
  nonewprivs:1.4 glibc-dns-testing:2.1.1 sample-apiserver:1.29.2)
has() { curl -fs -o /dev/null -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' "http://$reg/v2/e2e-test-images/${1%:*}/manifests/${1#*:}"; }
missing=0
[ "$(cat "$stamp" 2>/dev/null)" = "$make_id" ] || missing=1
for i in "${images[@]}"; do has "$i" || missing=1; done
[ $missing = 1 ] || { echo "harness: the mirror already holds the conformance tests' images" >&2; exit 0; }

echo "harness: building the conformance tests' images" >&2
bb=$cache/busybox-1.37.0
[ -x "$bb/busybox" ] || "$here/build-busybox.sh" 1.37.0 "$bb" >/dev/null

# debian NAME PACKAGES: a Debian 12 root with PACKAGES, as a tarball in the
# cache (a rerun with other packages makes it anew).
debian() {
  local tar=$cache/debroot-$1.tar want="bookworm minbase $2"
  if [ ! -s "$tar" ] || [ "$(cat "$tar.what" 2>/dev/null)" != "$want" ]; then
    mmdebstrap --quiet --variant=minbase --include="$2" \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' \
      bookworm "$tar" http://deb.debian.org/debian
    echo "$want" >"$tar.what"
  fi
  echo "$tar"
}
# busyroot DIR: a BusyBox root, as Docker Hub's busybox image lays it out.
busyroot() {
  mkdir -p "$1/bin" "$1/tmp" "$1/etc" "$1/root" "$1/var"
  chmod 1777 "$1/tmp"
  cp "$bb/busybox" "$1/bin/busybox"
  for a in $("$bb/busybox" --list); do [ -e "$1/bin/$a" ] || ln -s busybox "$1/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' >"$1/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' >"$1/etc/group"
}
# build "IMAGE..." DIR|TAR CHANGE...: docker import of a root with Dockerfile
# changes, made once and pushed to the mirror under each IMAGE.
build() {
  local images=$1 src=$2; shift 2
  local changes=(--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin')
  for c in "$@"; do changes+=(--change "$c"); done
  local id image
  id=$(if [ -d "$src" ]; then tar -C "$src" -c . ; else cat "$src"; fi | docker import "${changes[@]}" -)
  for image in $images; do docker tag "$id" "$reg/e2e-test-images/$image"; done
  for image in $images; do docker push -q "$reg/e2e-test-images/$image" >/dev/null; done
  for image in $images; do docker rmi "$reg/e2e-test-images/$image" >/dev/null; done
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# agnhost, and nautilus and kitten on it.
agn=$(debian agnhost "bind9-dnsutils,curl,netcat-openbsd,iproute2,socat,bash,iperf")
mkdir -p "$work/agnhost" && tar -C "$work/agnhost" -xf "$agn"
cp "$e2e/agnhost" "$work/agnhost/agnhost" && ln -s agnhost "$work/agnhost/agnhost-2"
cp "$e2e/files/localhost.crt" "$e2e/files/localhost.key" "$work/agnhost/"
mkdir -p "$work/agnhost/uploads"
echo 'user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh' >>"$work/agnhost/etc/passwd"
printf 'user-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n' >>"$work/agnhost/etc/group"
agnchanges=('WORKDIR /' 'ENTRYPOINT ["/agnhost"]' 'CMD ["pause"]')
build "agnhost:2.66.1 agnhost:2.55" "$work/agnhost" "${agnchanges[@]}"
cp "$e2e/files/html/nautilus.jpg" "$e2e/files/html/data.json" "$work/agnhost/"
build nautilus:1.8 "$work/agnhost" 'WORKDIR /' 'ENTRYPOINT ["/agnhost"]' 'CMD ["test-webserver"]'
rm "$work/agnhost/nautilus.jpg" "$work/agnhost/data.json"
cp "$e2e/files/kitten/"* "$work/agnhost/"
build kitten:1.8 "$work/agnhost" 'WORKDIR /' 'ENTRYPOINT ["/agnhost"]' 'CMD ["test-webserver"]'

mkdir -p "$work/busybox" && busyroot "$work/busybox"
build busybox:1.37.0-2 "$work/busybox" 'CMD ["sh"]'

mkdir -p "$work/nnp" && busyroot "$work/nnp"
mkdir -p "$work/nnp/usr/local/bin" && cp "$e2e/nnp" "$work/nnp/usr/local/bin/nnp" && chmod 4755 "$work/nnp/usr/local/bin/nnp"
build nonewprivs:1.4 "$work/nnp" 'CMD ["nnp"]'

mkdir -p "$work/sample" && busyroot "$work/sample" && cp "$e2e/sample-apiserver" "$work/sample/sample-apiserver"
build sample-apiserver:1.29.2 "$work/sample" 'ENTRYPOINT ["/sample-apiserver"]'

build glibc-dns-testing:2.1.1 "$(debian dnsutils bind9-dnsutils)" 'CMD ["bash"]'

# nginx as nginx's own image runs it: in the foreground, the default site
# at /usr/share/nginx/html on port 80, the logs to the container's output.
ngx=$(debian nginx nginx-light)
mkdir -p "$work/nginx" && tar -C "$work/nginx" -xf "$ngx"
mkdir -p "$work/nginx/usr/share/nginx/html"
printf '<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>\n</head>\n<body>\n<h1>Welcome to nginx!</h1>\n</body>\n</html>\n' >"$work/nginx/usr/share/nginx/html/index.html"
cat >"$work/nginx/etc/nginx/sites-available/default" <<'NGX'
server {
    listen 80 default_server;
    listen [::]:80 default_server;
    root /usr/share/nginx/html;
    index index.html index.htm;
    server_name _;
    location / { try_files $uri $uri/ =404; }
}
NGX
ln -sf /dev/stdout "$work/nginx/var/log/nginx/access.log"
ln -sf /dev/stderr "$work/nginx/var/log/nginx/error.log"
build "nginx:1.27.0-2 nginx:1.28.0-2" "$work/nginx" 'EXPOSE 80' 'CMD ["nginx", "-g", "daemon off;"]'
echo "$make_id" >"$stamp"
echo "harness: the conformance tests' images pushed" >&2
