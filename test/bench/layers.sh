#!/usr/bin/env bash
# layers.sh CACHE DK8S LOCK VERSION: the bench's multi-layer variant of the
# harness's image set, for the pull bench alone. The harness's images are
# one layer each (docker import), which hides from a `docker pull` loop the
# per-layer parallelism it has on upstream's images; here each image is a
# base of a few layers, shared by the whole set as upstream's images share
# their distroless base, then the image's own filesystem as its last layer,
# with the same config (entrypoint, user, env). They go to a path of their
# own on the flat registry, 127.0.0.1:5001/bench_layers/NAME:TAG, with the
# harness's tags, so the images the tests pull are never touched. Prints the
# path of a lock made from what that path serves (default: VERSION).
# Cached: a warm run (every image there, same make) builds nothing.
set -Eeuo pipefail
# A command that stops the build through set -e says so.
trap 'echo "bench: layers: line $LINENO failed: $BASH_COMMAND" >&2' ERR
cache=$1 dk8s=$2 lock=$3 version=$4
from=127.0.0.1:5001/google_containers
to=127.0.0.1:5001/bench_layers
out=$cache/bench-layers.lock
# What the layers are made of: a different make pushes everything again.
make_id=1
mapfile -t names < <("$dk8s" images --lock "$lock" --kubernetes-version "$version" -o name)
flat_of() { local path=${1%:*}; echo "${path##*/}"; }
has() { curl -fs -o /dev/null -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' "http://127.0.0.1:5001/v2/$1/manifests/$2"; }

# say CMD...: runs CMD, its output kept; a failure stops the build loudly
# with that output.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
say() {
  if ! "$@" >"$log" 2>&1; then
    echo "bench: layers: '$*' failed:" >&2
    cat "$log" >&2
    exit 1
  fi
}

missing=0
[ "$(cat "$cache/bench-layers.stamp" 2>/dev/null)" = "$make_id" ] || missing=1
for n in "${names[@]}"; do has "bench_layers/$(flat_of "$n")" "${n##*:}" || missing=1; done
if [ $missing = 1 ]; then
  command -v openssl >/dev/null || { echo "bench: layers: openssl makes the base's data: apt-get install openssl" >&2; exit 1; }
  echo "bench: layers: building the multi-layer image set (once)" >&2
  work=$(mktemp -d)
  trap 'rm -f "$log"; rm -rf "$work"' EXIT
  # The base: four layers of 2, 3, 5 and 8 MiB, deterministic (AES-CTR of
  # zeros under a fixed key: the same bytes on every machine) and as
  # incompressible as the registry's gzip finds real binaries, near enough.
  mkdir -p "$work/base"
  {
    echo "FROM scratch"
    for mib in 2 3 5 8; do
      mkdir -p "$work/base/l$mib/usr/lib/bench-base"
      head -c $((mib << 20)) /dev/zero | openssl enc -aes-256-ctr -nosalt -pass "pass:dk8s-bench-$mib" -pbkdf2 \
        >"$work/base/l$mib/usr/lib/bench-base/part-$mib"
      tar -C "$work/base/l$mib" --owner=0 --group=0 --mtime=@0 -cf "$work/base/l$mib.tar" .
      echo "ADD l$mib.tar /"
    done
  } >"$work/base/Dockerfile"
  say env DOCKER_BUILDKIT=0 docker build -q -t dk8s-bench/base:$make_id "$work/base"
  for n in "${names[@]}"; do
    flat=$(flat_of "$n") tag=${n##*:}
    src=$from/$flat:$tag dir=$work/$flat
    mkdir -p "$dir/save"
    # Leave the store as it was: a tag another test pulled stays.
    present=0; docker image inspect "$src" >/dev/null 2>&1 && present=1
    say docker pull -q "$src"
    # The harness's image is one layer: its filesystem is that layer's tar.
    say docker save -o "$dir/image.tar" "$src"
    tar -C "$dir/save" -xf "$dir/image.tar"
    mapfile -t layers < <(jq -r '.[0].Layers[]' "$dir/save/manifest.json")
    [ ${#layers[@]} = 1 ] || { echo "bench: layers: $src has ${#layers[@]} layers, want the harness's 1" >&2; exit 1; }
    mv "$dir/save/${layers[0]}" "$dir/rootfs.tar"
    rm -rf "$dir/save" "$dir/image.tar"
    cfg=$(docker image inspect -f '{{json .Config}}' "$src")
    {
      echo "FROM dk8s-bench/base:$make_id"
      echo "ADD rootfs.tar /"
      jq -r '.Env // [] | .[] | split("=") | "ENV " + .[0] + "=" + (.[1:] | join("=") | @json)' <<<"$cfg"
      u=$(jq -r '.User // ""' <<<"$cfg"); [ -z "$u" ] || echo "USER $u"
      echo "ENTRYPOINT $(jq -c '.Entrypoint // []' <<<"$cfg")"
      c=$(jq -c '.Cmd // empty' <<<"$cfg"); [ -z "$c" ] || echo "CMD $c"
    } >"$dir/Dockerfile"
    say env DOCKER_BUILDKIT=0 docker build -q -t "$to/$flat:$tag" "$dir"
    say docker push -q "$to/$flat:$tag"
    say docker rmi "$to/$flat:$tag"
    [ $present = 1 ] || say docker rmi "$src"
    rm -rf "$dir"
  done
  # Nothing of the set stays in the store: the bench's pulls start empty.
  say docker rmi dk8s-bench/base:$make_id
  echo "$make_id" >"$cache/bench-layers.stamp"
  rm -f "$out"
fi
if [ ! -s "$out" ]; then
  say "$dk8s" images lock --lock "$lock" --from "$to" --kubernetes-version "$version" --make-default \
    --platform linux/amd64 --file "$out"
fi
echo "$out"
