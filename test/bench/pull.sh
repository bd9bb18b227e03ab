#!/usr/bin/env bash
# pull.sh: times `dk8s pull` of the whole image set from the harness's flat
# (Aliyun-like) mirror into an empty image store, side by side with the shell
# loop people paste today (docker pull; docker tag; docker rmi, one image
# after another) on the same registry and images; then the no-op rerun of
# each. RUNS rounds (default 5), alternating, medians and ratios from the
# same run. Prints a table and writes it to bench-results.txt.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
runs=${RUNS:-5}
lock=$(test/harness/up.sh)
mirror=127.0.0.1:5001/google_containers
dk8s=bin/dk8s
mapfile -t names < <($dk8s images --lock "$lock" -o name)

now() { date +%s.%N; }
empty_store() {
  for n in "${names[@]}"; do
    path=${n#registry.k8s.io/}; flat=${path##*/}
    docker rmi -f "$n" "k8s.gcr.io/$path" "$mirror/$flat" >/dev/null 2>&1 || true
  done
}
shell_loop() {
  for n in "${names[@]}"; do
    path=${n#registry.k8s.io/}; flat=${path##*/}
    docker pull -q "$mirror/$flat" >/dev/null
    docker tag "$mirror/$flat" "$n"
    # The legacy alias is registry.k8s.io's alone: flannel (docker.io) has none.
    [ "$path" = "$n" ] || docker tag "$mirror/$flat" "k8s.gcr.io/$path"
    docker rmi "$mirror/$flat" >/dev/null
  done
}
dk8s_pull() { $dk8s pull --lock "$lock" --mirror "$mirror" >/dev/null 2>&1; }
timed() { local s; s=$(now); "$@"; echo "$(now) - $s" | bc -l; }
median() { sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f", m}'; }

command -v bc >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bc >/dev/null; }
declare -a d_cold s_cold d_warm s_warm
for i in $(seq "$runs"); do
  empty_store; s_cold+=("$(timed shell_loop)"); s_warm+=("$(timed shell_loop)")
  empty_store; d_cold+=("$(timed dk8s_pull)"); d_warm+=("$(timed dk8s_pull)")
  echo "bench: round $i of $runs done" >&2
done
dc=$(printf '%s\n' "${d_cold[@]}" | median) sc=$(printf '%s\n' "${s_cold[@]}" | median)
dw=$(printf '%s\n' "${d_warm[@]}" | median) sw=$(printf '%s\n' "${s_warm[@]}" | median)
size=$(for n in "${names[@]}"; do docker image inspect -f '{{.Size}}' "$n"; done | awk '{s+=$1} END {printf "%.0f", s/1e6}')
{
  echo "dk8s pull vs the shell loop: ${#names[@]} images, ${size} MB, from a local registry (127.0.0.1:5001), medians of $runs runs"
  echo "docker $(docker version -f '{{.Server.Version}}'), $(nproc) cores, $(date -u +%Y-%m-%d)"
  printf '%-34s %10s %12s %8s\n' "case" "dk8s (s)" "shell (s)" "ratio"
  printf '%-34s %10s %12s %7.2fx\n' "pull into an empty store" "$dc" "$sc" "$(echo "$sc / $dc" | bc -l)"
  printf '%-34s %10s %12s %7.2fx\n' "rerun with everything present" "$dw" "$sw" "$(echo "$sw / $dw" | bc -l)"
  echo "ratio = shell loop time / dk8s time (above 1: dk8s is faster)"
} | tee bench-results.txt
