#!/usr/bin/env bash
# pull.sh: times `dk8s pull` of the whole image set into an empty image
# store beside two ways without dk8s, on the same registry and images:
#   - the floor: every image `docker pull`ed at once (background jobs,
#     wait), then tagged: what Docker alone can do, and what dk8s is
#     measured against (the target: dk8s within 1.05x of it);
#   - the shell loop people paste today: docker pull; docker tag; docker
#     rmi, one image after another.
# Then the rerun of each with everything present. The images are the
# harness's, rebuilt with several layers (layers.sh), since a one-layer
# image hides Docker's per-layer parallelism from the loop. RUNS rounds
# (default 5), the order alternated (odd rounds the loop first, even rounds
# dk8s first), the store emptied before each cold pull; medians and ratios
# from the same run. Any failed step stops the bench and shows its output.
# DK8S_PULL_ARGS adds flags to dk8s pull (e.g. "--parallel 3", to set an
# older default beside today's).
# Prints a table and writes it to bench-results.txt.
set -Eeuo pipefail
# A command that stops the bench through set -e says so.
trap 'echo "bench: line $LINENO failed: $BASH_COMMAND" >&2' ERR
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
runs=${RUNS:-5}
cache=${DK8S_HARNESS_CACHE:-$HOME/.cache/dk8s-harness}
dk8s=bin/dk8s
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT

# must CMD...: runs CMD with its output kept aside; a failure stops the
# bench with that output, so that a broken run is never timed.
must() {
  if ! "$@" >"$log/out" 2>&1; then
    echo "bench: '$*' failed; its output:" >&2
    cat "$log/out" >&2
    exit 1
  fi
}

harness_lock=$(test/harness/up.sh)
version=$($dk8s images --lock "$harness_lock" -o name | sed -n 's|.*/kube-apiserver:||p')
lock=$(test/bench/layers.sh "$cache" "$dk8s" "$harness_lock" "$version")
mirror=127.0.0.1:5001/bench_layers
mapfile -t names < <($dk8s images --lock "$lock" -o name)
# The mirror's name of an image and, for registry.k8s.io's, the legacy
# alias (k8s.gcr.io) the loop tags too: flannel (docker.io)
# has none.
flat_of() { local path=${1%:*}; echo "$mirror/${path##*/}:${1##*:}"; }
alias_of() { case $1 in registry.k8s.io/*) echo "k8s.gcr.io/${1#registry.k8s.io/}" ;; esac; }

# empty_store removes every name the bench makes and checks they are gone
# (the base layers, shared by no other image, go with them).
empty_store() {
  local n refs=()
  for n in "${names[@]}"; do
    refs+=("$n" "$(flat_of "$n")")
    [ -z "$(alias_of "$n")" ] || refs+=("$(alias_of "$n")")
  done
  docker rmi -f "${refs[@]}" >/dev/null 2>&1 || true
  for n in "${refs[@]}"; do
    if docker image inspect "$n" >/dev/null 2>&1; then echo "bench: $n is still in the store after removing it" >&2; exit 1; fi
  done
}
# all_present checks that a pull left every image under its name.
all_present() {
  local n
  for n in "${names[@]}"; do must docker image inspect "$n"; done
}
# retag_calls is how many CLI calls retag makes for the whole set.
retag_calls() {
  local n c=0
  for n in "${names[@]}"; do c=$((c + 2)); [ -z "$(alias_of "$n")" ] || c=$((c + 1)); done
  echo "$c"
}
retag() {
  must docker tag "$(flat_of "$1")" "$1"
  [ -z "$(alias_of "$1")" ] || must docker tag "$(flat_of "$1")" "$(alias_of "$1")"
  must docker rmi "$(flat_of "$1")"
}
shell_loop() {
  local n
  for n in "${names[@]}"; do
    must docker pull -q "$(flat_of "$n")"
    retag "$n"
  done
}
floor() {
  local n i pids=() s=$EPOCHREALTIME
  for n in "${names[@]}"; do
    docker pull -q "$(flat_of "$n")" >"$log/pull-${#pids[@]}" 2>&1 &
    pids+=($!)
  done
  # Every job waited for before a failure stops the bench: none left running.
  local failed=()
  for i in "${!pids[@]}"; do wait "${pids[$i]}" || failed+=("$i"); done
  for i in "${failed[@]}"; do
    echo "bench: 'docker pull -q $(flat_of "${names[$i]}")' failed; its output:" >&2
    cat "$log/pull-$i" >&2
  done
  [ ${#failed[@]} = 0 ] || exit 1
  # The pulls alone, before the tags: the floor with none of the ~25 CLI
  # calls that give the canonical names.
  local -n pulls=floor_pulls_$phase
  pulls+=("$(awk -v a="$s" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.3f", b - a}')")
  for n in "${names[@]}"; do retag "$n"; done
}
dk8s_pull() { must "$dk8s" pull --lock "$lock" --mirror "$mirror" ${DK8S_PULL_ARGS:-}; }

# timed VAR CMD...: runs CMD in this shell (so that its failure stops the
# bench: a command substitution would not) and appends its seconds to the
# array VAR.
timed() {
  local -n into=$1; shift
  local s=$EPOCHREALTIME
  "$@"
  into+=("$(awk -v a="$s" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.3f", b - a}')")
}
# cold_then_warm KIND: a pull of KIND into an empty store, then its rerun.
cold_then_warm() {
  empty_store
  phase=cold; timed "${1}_cold" "$1"; all_present
  phase=warm; timed "${1}_warm" "$1"; all_present
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f", m}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2fx", a / b}'; }

# shellcheck disable=SC2034 # filled through timed's nameref
declare -a dk8s_pull_cold=() dk8s_pull_warm=() shell_loop_cold=() shell_loop_warm=() floor_cold=() floor_warm=() \
  floor_pulls_cold=() floor_pulls_warm=() floor_pulls_untimed=()
# One untimed pull first, so that the registry's blobs are in the page cache
# for every case alike, not for whichever comes second.
empty_store; phase=untimed; floor
for i in $(seq "$runs"); do
  if [ $((i % 2)) = 1 ]; then order=(shell_loop floor dk8s_pull); else order=(dk8s_pull floor shell_loop); fi
  for kind in "${order[@]}"; do cold_then_warm "$kind"; done
  echo "bench: pull round $i of $runs done (${order[*]})" >&2
done
dc=$(median "${dk8s_pull_cold[@]}") fc=$(median "${floor_cold[@]}") sc=$(median "${shell_loop_cold[@]}")
dw=$(median "${dk8s_pull_warm[@]}") fw=$(median "${floor_warm[@]}") sw=$(median "${shell_loop_warm[@]}")
pc=$(median "${floor_pulls_cold[@]}") pw=$(median "${floor_pulls_warm[@]}")
size=$(for n in "${names[@]}"; do docker image inspect -f '{{.Size}}' "$n"; done | awk '{s+=$1} END {printf "%.0f", s/1e6}')
layers=$(for n in "${names[@]}"; do p=${n%:*}; printf '%s %s, ' "${p##*/}" "$(docker image inspect -f '{{len .RootFS.Layers}}' "$n")"; done)
met=$(awk -v d="$dc" -v f="$fc" 'BEGIN {print (d <= 1.05 * f) ? "yes" : "no"}')
empty_store   # leave the store as the tests expect it: without the bench's images
{
  echo "dk8s pull vs the parallel-pull floor and the shell loop: ${#names[@]} images (sizes summing to ${size} MB), from a local registry ($mirror), medians of $runs rounds, order alternated"
  echo "layers per image (a shared 4-layer base, then the image's own): ${layers%, }"
  echo "docker $(docker version -f '{{.Server.Version}}'), $(nproc) cores, $(date -u +%Y-%m-%d)"
  f='%-30s %9s %10s %10s %9s %11s %12s %10s  %-20s %s\n'
  # shellcheck disable=SC2059 # the format is the table's, kept once
  printf "$f" "case" "dk8s (s)" "floor (s)" "pulls (s)" "loop (s)" "dk8s/floor" "dk8s/pulls" "loop/dk8s" "TARGET" "MET"
  # shellcheck disable=SC2059
  printf "$f" "pull into an empty store" "$dc" "$fc" "$pc" "$sc" "$(ratio "$dc" "$fc")" "$(ratio "$dc" "$pc")" "$(ratio "$sc" "$dc")" "dk8s/floor <= 1.05x" "$met"
  # shellcheck disable=SC2059
  printf "$f" "rerun with everything present" "$dw" "$fw" "$pw" "$sw" "$(ratio "$dw" "$fw")" "$(ratio "$dw" "$pw")" "$(ratio "$sw" "$dw")" "-" "-"
  echo "floor = every image 'docker pull'ed at once, then tagged and the mirror's name removed one CLI call at a time ($(retag_calls) calls); pulls = the floor's parallel pulls alone, before those calls"
  echo "loop = docker pull; docker tag; docker rmi, one image after another"
  echo "dk8s/floor and dk8s/pulls: 1 is that floor; loop/dk8s above 1: dk8s is faster than the loop"
} | tee bench-results.txt
