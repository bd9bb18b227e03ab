#!/usr/bin/env bash
# build-docker29.sh OUTDIR: builds Docker Engine 29 and the runtime it ships
# with from the Go module proxy into OUTDIR/bin, for the harness's Docker 29
# machine (test/integration/docker29_test.go): dockerd and docker-proxy from
# github.com/moby/moby/v2 (the engine's own module since Docker 29), and the
# containerd and runc versions that release's Dockerfile names
# (CONTAINERD_VERSION, RUNC_VERSION), which docker-ce's containerd.io package
# installs beside it. A fresh install keeps images in containerd's store:
# the machine does the same.
#
# v2.0.0-beta.24 is Docker 29.8.1's development tree (releases/versions.yaml:
# last 29.8.0, next 29.8.1). beta.25 would be newer, but it pins a swarmkit
# commit the proxy does not serve (403); beta.24's pins are all served, so
# the engine is built as its own go.mod asks, with no replace.
#
# Built as moby's hack/make.sh builds the static binaries: cgo, tags netgo
# osusergo static_build, linked static, the version stamped into
# dockerversion. runc with its seccomp support (libseccomp-dev), static as
# containerd.io's is. btrfs is left out of dockerd (its cgo needs btrfs-progs'
# headers, and the machines' disks are not btrfs).
set -euo pipefail
out=$1
moby=v2.0.0-beta.24 engine=29.8.1-dev containerd=v2.3.5 runc=v1.5.1
work="$out/.mod" bin="$out/bin"
mkdir -p "$work" "$bin"
cd "$work"
{
  echo "module dk8s.test/docker29build"
  echo "go 1.26"
  echo "require ("
  echo "  github.com/moby/moby/v2 $moby"
  echo "  github.com/containerd/containerd/v2 $containerd"
  echo "  github.com/opencontainers/runc $runc"
  echo ")"
} >go.mod
cat >tools.go <<'GO'
//go:build tools

package tools

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
	_ "github.com/moby/moby/v2/cmd/docker-proxy"
	_ "github.com/moby/moby/v2/cmd/dockerd"
	_ "github.com/opencontainers/runc"
)
GO
[ -f go.sum ] || go mod tidy >/dev/null 2>&1 || go mod tidy
# Tidy may raise a requirement past the one asked for; what is built must be
# the release named above.
for m in "github.com/moby/moby/v2 $moby" "github.com/containerd/containerd/v2 $containerd" "github.com/opencontainers/runc $runc"; do
  got=$(go list -m "${m% *}")
  [ "$got" = "$m" ] || { echo "build-docker29: want $m, the module graph has $got" >&2; exit 1; }
done
static=(-trimpath -tags "netgo osusergo static_build exclude_graphdriver_btrfs")
CGO_ENABLED=1 go build "${static[@]}" -o "$bin/dockerd" \
  -ldflags "-w -extldflags -static -X github.com/moby/moby/v2/dockerversion.Version=$engine -X github.com/moby/moby/v2/dockerversion.GitCommit=$moby" \
  github.com/moby/moby/v2/cmd/dockerd
CGO_ENABLED=0 go build -trimpath -ldflags "-w" -o "$bin/docker-proxy" github.com/moby/moby/v2/cmd/docker-proxy
# The module version stands for the commit a release stamps, which docker info
# shows.
cver="-X github.com/containerd/containerd/v2/version.Version=$containerd -X github.com/containerd/containerd/v2/version.Revision=$containerd"
CGO_ENABLED=0 go build -trimpath -tags no_btrfs -ldflags "-w $cver" -o "$bin/containerd" github.com/containerd/containerd/v2/cmd/containerd
CGO_ENABLED=0 go build -trimpath -ldflags "-w $cver" -o "$bin/containerd-shim-runc-v2" github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2
CGO_ENABLED=0 go build -trimpath -ldflags "-w $cver" -o "$bin/ctr" github.com/containerd/containerd/v2/cmd/ctr
CGO_ENABLED=1 go build -trimpath -tags "seccomp urfave_cli_no_docs netgo osusergo" -o "$bin/runc" \
  -ldflags "-w -extldflags -static -X main.version=${runc#v} -X main.gitCommit=$runc" github.com/opencontainers/runc
"$bin/dockerd" --version
