#!/usr/bin/env bash
# up.sh: brings the test harness up on this machine, from nothing if need
# be: a Docker engine, three real registries on loopback playing mirrors, the
# image set built from source and pushed into them, a lock of what was
# pushed, and the network and image of the test machines (machines.sh).
# Prints the lock's path. Everything is cached under
# DK8S_HARNESS_CACHE (default ~/.cache/dk8s-harness), so a warm run takes
# seconds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${DK8S_HARNESS_CACHE:-$HOME/.cache/dk8s-harness}
mkdir -p "$cache"
"$here/engine.sh"
"$here/registries.sh" "$cache"
# Several machines on this one, for the tests of clusters of more than one.
"$here/machines.sh" "$cache"
(cd "$root" && go build -o "$cache/dk8s" ./cmd/dk8s)
# The release the harness builds from source and the tests run: one of the
# lock's, not necessarily its default (the newest fully pinned one). Its
# digests are the harness's own anyway, and v1.37.2 leaves room below it for
# the older release of the upgrade tests.
version=${DK8S_HARNESS_VERSION:-v1.37.2}
"$here/images.sh" "$cache" "$cache/dk8s" "$root/images.lock" "$version"
# Kubernetes' conformance suite of that release and the images its tests
# pull, built from source too (conformance_test.go runs it).
e2e=$cache/e2e-$version
if [ ! -x "$e2e/e2e.test" ] || [ ! -x "$e2e/sample-apiserver" ]; then
  echo "harness: building Kubernetes $version's conformance suite from source (minutes when cold)" >&2
  "$here/build-e2e.sh" "$version" "$e2e"
fi
echo "$e2e" >"$cache/e2e.dir"
"$here/e2e-images.sh" "$cache" "$e2e"
# Docker Engine 29 with its containerd and runc, built from their modules,
# for the machines of a fresh docker-ce 29 install (docker29_test.go). The
# directory is named by what build-docker29.sh builds, so a change of
# version builds it again.
d29=$cache/docker29-$(sha256sum "$here/build-docker29.sh" | cut -c1-12)
if [ ! -x "$d29/bin/runc" ]; then
  echo "harness: building Docker Engine 29, containerd and runc from source (minutes when cold)" >&2
  "$here/build-docker29.sh" "$d29" >&2
  for old in "$cache"/docker29-*; do [ "$old" = "$d29" ] || rm -rf "$old"; done
fi
echo "$d29/bin" >"$cache/docker29.dir"
# An older release beside it, for the upgrade tests.
"$here/older.sh" "$cache" "${DK8S_HARNESS_OLDER:-v1.36.3}" "$version"
# The harness's images are built here, so their digests are not upstream's:
# tests verify against a lock made from what the flat mirror serves, whose
# default is the harness's release.
"$cache/dk8s" images lock --lock "$root/images.lock" --kubernetes-version "$version" --make-default \
  --from 127.0.0.1:5001/google_containers --platform linux/amd64,linux/arm64 --file "$cache/test.lock" 2>/dev/null
echo "$cache/test.lock"
