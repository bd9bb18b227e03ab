#!/usr/bin/env bash
# build-busybox.sh VERSION OUT: builds upstream's BusyBox VERSION (1.37.0) as
# Docker Hub's busybox image carries it: the release tarball, upstream's
# defconfig, linked statically; installed at OUT/busybox.
# Why not Debian's busybox-static: Debian reverts upstream's commit 9c143ce5,
# so its ash drops environment variables whose names are not shell names
# ("1-FOO", "$_-BAR"), which upstream's keeps and the conformance tests of
# envFrom prefixes read back with `sh -c env`.
# The tarball is Debian's .orig of that release, fetched with apt from
# Debian's source archive (the one place this machine can reach that has it).
set -euo pipefail
version=$1 out=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$out"
# trixie is the Debian release whose busybox is $version.
echo "deb-src http://deb.debian.org/debian trixie main" >"$work/sources.list"
apt=(-o "Dir::Etc::sourcelist=$work/sources.list" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$work/lists" -o APT::Sandbox::User=root)
apt-get "${apt[@]}" update -qq >/dev/null
(cd "$work" && apt-get "${apt[@]}" source --download-only -qq "busybox" >/dev/null)
tar -C "$work" -xjf "$work"/busybox_"$version".orig.tar.bz2
cd "$work/busybox-$version"
make -s defconfig >/dev/null
sed -i -e 's/^# CONFIG_STATIC is not set/CONFIG_STATIC=y/' \
  -e 's/^CONFIG_TC=y/# CONFIG_TC is not set/' .config   # tc wants kernel headers' CBQ, gone from newer ones
make -s -j"$(nproc)" busybox >/dev/null 2>&1 || make -j"$(nproc)" busybox
cp busybox "$out/busybox"
"$out/busybox" --help | head -1
