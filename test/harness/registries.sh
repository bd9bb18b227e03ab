#!/usr/bin/env bash
# registries.sh CACHE: starts the harness's real registries (Debian's
# docker-registry, distribution 2.8) on loopback, each with its own storage
# under CACHE so that a warm machine keeps what was pushed:
#   127.0.0.1:5001  flat, like Aliyun:        google_containers/coredns:v1.14.6
#                   and, as Aliyun's really is, registry.k8s.io's alone:
#                   aliyun/google_containers/coredns:v1.14.6 (no flannel)
#   127.0.0.1:5002  path-preserving, DaoCloud: coredns/coredns:v1.14.6
#   127.0.0.1:5003  a bad mirror (flat): etcd missing, kube-apiserver's tag
#                   holding another image.
# A registry already listening is left alone.
set -euo pipefail
cache=$1
for port in 5001 5002 5003; do
  if curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1; then continue; fi
  dir="$cache/registry-$port"
  mkdir -p "$dir/data"
  cat >"$dir/config.yml" <<CFG
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
CFG
  setsid docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 </dev/null &
  for _ in $(seq 50); do
    curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null || { cat "$dir/log"; exit 1; }
done
