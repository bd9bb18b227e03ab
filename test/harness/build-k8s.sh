#!/usr/bin/env bash
# build-k8s.sh VERSION OUTDIR: builds kube-apiserver, kube-controller-manager,
# kube-scheduler, kube-proxy, kubelet and kubectl at VERSION (v1.37.2) from the Go
# module proxy into OUTDIR, stamped with their version, linked as dl.k8s.io's
# are: every one static but kubelet, which Kubernetes' build links against
# glibc (cgo), so that a host without glibc cannot run it.
# A scratch module requires k8s.io/kubernetes and points every staging module
# (k8s.io/api, ...) at its published v0.Y.Z twin, as the monorepo's own
# go.mod points them at ./staging. Go's build cache makes a rerun quick.
set -euo pipefail
version=$1 out=$2
. "$(cd "$(dirname "$0")" && pwd)/k8smod.sh"
k8s_module "$version" "$out" dk8s.test/k8sbuild
cmds="kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubectl"
{
  echo "//go:build tools"
  echo "package tools"
  echo "import ("
  for c in $cmds; do echo "  _ \"k8s.io/kubernetes/cmd/$c\""; done
  echo ")"
} >tools.go
go mod tidy >/dev/null 2>&1 || go mod tidy
ldflags=$(k8s_ldflags "$version")
for c in $cmds; do
  cgo=0
  [ "$c" = kubelet ] && cgo=1
  CGO_ENABLED=$cgo go build -trimpath -ldflags "$ldflags" -o "$out/$c" "k8s.io/kubernetes/cmd/$c"
done
