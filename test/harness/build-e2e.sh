#!/usr/bin/env bash
# build-e2e.sh VERSION OUTDIR: builds Kubernetes' conformance suite at VERSION
# from the Go module proxy into OUTDIR: e2e.test (the tests), ginkgo (their
# runner, at the version the release requires), and the Go programs of the
# test images the conformance tests pull: agnhost, nonewprivs' nnp and the
# sample-apiserver. Same scratch module as build-k8s.sh, same flags, so Go's
# build cache shares the packages the control plane already compiled.
set -euo pipefail
version=$1 out=$2
. "$(cd "$(dirname "$0")" && pwd)/k8smod.sh"
k8s_module "$version" "$out" dk8s.test/e2ebuild
src=$k8s_src
# ginkgo's CLI at the version the release's tests require.
ginkgo=$(grep -oE 'github.com/onsi/ginkgo/v2 v[0-9.]+' "$k8s_gomod" | awk '{print $2}')
echo "require github.com/onsi/ginkgo/v2 $ginkgo" >>go.mod
echo "require k8s.io/sample-apiserver v0.${version#v1.}" >>go.mod
# Every package e2e_test.go imports, so that tidy records what they need.
{
  echo "//go:build tools"
  echo "package tools"
  echo "import ("
  grep -oE '^\s*_?\s*"k8s\.io/kubernetes/test/[^"]+"' "$src/test/e2e/e2e_test.go" | grep -oE '"[^"]+"' | sed 's/^/  _ /'
  echo '  _ "k8s.io/kubernetes/test/e2e"'
  echo '  _ "k8s.io/kubernetes/test/images/agnhost"'
  echo '  _ "k8s.io/kubernetes/test/images/nonewprivs"'
  echo '  _ "k8s.io/sample-apiserver"'
  echo '  _ "github.com/onsi/ginkgo/v2/ginkgo"'
  echo ")"
} >tools.go
go mod tidy >/dev/null 2>&1 || go mod tidy
ldflags=$(k8s_ldflags "$version")
export CGO_ENABLED=0
go test -c -trimpath -vet=off -ldflags "$ldflags" -o "$out/e2e.test" k8s.io/kubernetes/test/e2e
go build -trimpath -ldflags "-s -w" -o "$out/ginkgo" github.com/onsi/ginkgo/v2/ginkgo
agnhost=$(cat "$src/test/images/agnhost/VERSION")
go build -trimpath -ldflags "-s -w -X main.Version=$agnhost" -o "$out/agnhost" k8s.io/kubernetes/test/images/agnhost
go build -trimpath -ldflags "-s -w" -o "$out/nnp" k8s.io/kubernetes/test/images/nonewprivs
go build -trimpath -ldflags "$ldflags" -o "$out/sample-apiserver" k8s.io/sample-apiserver
# The files the images carry beside their programs (porter's certificate,
# nautilus' and kitten's pages), from the same source.
mkdir -p "$out/files"
cp -r "$src/test/images/agnhost/porter/localhost.crt" "$src/test/images/agnhost/porter/localhost.key" \
  "$src/test/images/nautilus/html" "$out/files/"
chmod -R u+w "$out/files"
mkdir -p "$out/files/kitten" && cp -r "$src/test/images/kitten/html/." "$out/files/kitten/" && chmod -R u+w "$out/files/kitten"
