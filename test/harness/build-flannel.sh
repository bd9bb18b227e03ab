#!/usr/bin/env bash
# build-flannel.sh VERSION OUTDIR: builds flanneld and install-conf at VERSION
# (v0.28.10) from the Go module proxy into OUTDIR, as upstream's Makefile
# builds them: flanneld with cgo (its UDP backend needs it), linked static,
# its version stamped into pkg/version.
# flannel's main package imports every backend, and the Tencent VPC SDK
# versions it pins are not served by the proxy (403), so the scratch module
# points them at versions that are; dk8s never uses that backend.
set -euo pipefail
version=$1 out=$2
sdk=github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud
work="$out/.mod"
mkdir -p "$work"
cd "$work"
{
  echo "module dk8s.test/flannelbuild"
  echo "go 1.26"
  echo "require github.com/flannel-io/flannel $version"
  echo "replace $sdk/common => $sdk/common v1.3.210"
  echo "replace $sdk/vpc => $sdk/vpc v1.0.1136"
} >go.mod
printf '//go:build tools\npackage tools\nimport (\n  _ "github.com/flannel-io/flannel"\n  _ "github.com/flannel-io/flannel/cmd/install_conf"\n)\n' >tools.go
[ -f go.sum ] || go mod tidy >/dev/null 2>&1 || go mod tidy
# glibc warns, when linking, that getpwnam and getaddrinfo in a static binary
# need its shared libraries at run time: upstream's build says the same.
CGO_ENABLED=1 go build -trimpath -o "$out/flanneld" \
  -ldflags "-s -w -X github.com/flannel-io/flannel/pkg/version.Version=$version -extldflags -static" \
  github.com/flannel-io/flannel
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/install-conf" github.com/flannel-io/flannel/cmd/install_conf
