#!/usr/bin/env bash
# build-etcd-coredns.sh ETCD_VERSION COREDNS_VERSION OUTDIR: builds etcd,
# etcdctl and etcdutl (3.7.0), as upstream's etcd image carries them, and
# coredns (v1.14.6) from the Go module proxy into OUTDIR. What is already
# built is kept.
set -euo pipefail
etcd=$1 coredns=$2 out=$3
build() { # build NAME MODULE@VERSION PACKAGE
  [ -x "$out/$1" ] && return
  local work="$out/.mod-$1"
  mkdir -p "$work"
  (
    cd "$work"
    printf 'module dk8s.test/%s\ngo 1.26\nrequire %s %s\n' "$1" "${2%@*}" "${2#*@}" >go.mod
    printf '//go:build tools\npackage tools\nimport _ "%s"\n' "$3" >tools.go
    [ -f go.sum ] || go mod tidy >/dev/null 2>&1 || go mod tidy
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/$1" "$3"
  )
}
build etcd "go.etcd.io/etcd/server/v3@v${etcd%-*}" go.etcd.io/etcd/server/v3
build etcdctl "go.etcd.io/etcd/etcdctl/v3@v${etcd%-*}" go.etcd.io/etcd/etcdctl/v3
build etcdutl "go.etcd.io/etcd/etcdutl/v3@v${etcd%-*}" go.etcd.io/etcd/etcdutl/v3
build coredns "github.com/coredns/coredns@$coredns" github.com/coredns/coredns
