#!/usr/bin/env bash
# build-k8s.sh VERSION OUTDIR: builds kube-apiserver, kube-controller-manager,
# kube-scheduler, kube-proxy, kubelet and kubectl at VERSION (v1.37.2) from the Go
# module proxy into OUTDIR, as static binaries stamped with their version.
# A scratch module requires k8s.io/kubernetes and points every staging module
# (k8s.io/api, ...) at its published v0.Y.Z twin, as the monorepo's own
# go.mod points them at ./staging. Go's build cache makes a rerun quick.
set -euo pipefail
version=$1 out=$2
minor=$(echo "$version" | cut -d. -f2)
staging="v0.${version#v1.}"
work="$out/.mod"
mkdir -p "$work"
cd "$work"
gomod=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
{
  echo "module dk8s.test/k8sbuild"
  echo "go 1.26"
  echo "require k8s.io/kubernetes $version"
  grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$gomod" | awk -v v="$staging" '{print "replace " $1 " => " $1 " " v}'
} >go.mod
cmds="kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubectl"
{
  echo "//go:build tools"
  echo "package tools"
  echo "import ("
  for c in $cmds; do echo "  _ \"k8s.io/kubernetes/cmd/$c\""; done
  echo ")"
} >tools.go
go mod tidy >/dev/null 2>&1 || go mod tidy
ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags="$ldflags -X $p.gitVersion=$version -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=2000-01-01T00:00:00Z"
done
for c in $cmds; do
  CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/$c" "k8s.io/kubernetes/cmd/$c"
done
