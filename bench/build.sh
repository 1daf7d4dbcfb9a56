#!/usr/bin/env bash
# `berth build` against `podman build`, side by side on this machine, on the same Dockerfile,
# context and busybox base image:
#
#   cold      every step runs (berth --no-cache, podman --no-cache)
#   cached    nothing changed: every step comes from the cache
#   one-file  one source file changed: the steps from the COPY that reads it run again
#
# measured with hyperfine; the ratios podman/berth are printed (aims: cached >= 5x, cold
# >= 2x). Timings are reported, never asserted: the exit status is 0 whether or not the aims
# are met (STRICT=1 makes a missed aim exit 1).
#
# Run as root on Debian 12:  bash bench/build.sh
# Knobs: RUNS (10), WARMUP (2), BERTH (a prebuilt berth binary: skips cargo), KEEP=1, STRICT=1.
#
# Fairness: both tools get the same Dockerfile (FROM, WORKDIR, ENV, COPY of a small tree,
# two RUNs, CMD) and context, a throwaway storage, host networking for RUN, and the base image
# already local (podman gets it with `podman load` of `berth save`, and --pull=never). Each
# build tags its result, as a user's would.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
repo=$PWD
RUNS=${RUNS:-10}
WARMUP=${WARMUP:-2}
log() { printf 'build-bench: %s\n' "$*" >&2; }

if [[ $(id -u) != 0 ]]; then
    log "run me as root"
    exit 1
fi
# podman runs its RUN steps through runc here (crun refuses cgroups v1 hybrid mode).
for tool in hyperfine podman runc jq; do
    command -v "$tool" >/dev/null || { log "installing $tool"; apt-get install -y -qq "$tool" >/dev/null; }
done
berth_binary "$repo"

work=$(mktemp -d /tmp/berth-build-bench.XXXXXX)
export BERTH_ROOT=$work/berth-root
popts=(--root "$work/podman/root" --runroot "$work/podman/run" --tmpdir "$work/podman/tmp"
    --storage-driver overlay --cgroup-manager cgroupfs --events-backend none --runtime runc)
host_leftovers=()
for d in /run/containers /var/lib/containers; do
    [[ -e $d ]] || host_leftovers+=("$d")
done
cleanup() {
    local rc=$?
    set +e
    # The store's run root is on a tmpfs outside the work folder (see README.md).
    if [[ ${KEEP:-0} != 1 && -d ${BERTH_ROOT:-/nonexistent} && -x ${berth_bin:-} ]]; then
        remove_run_root "$berth_bin" "$work"
    fi
    podman "${popts[@]}" rmi -af >/dev/null 2>&1
    awk -v w="$work" '$5 == w || index($5, w "/") == 1 { print $5 }' /proc/self/mountinfo |
        sort -r | while read -r m; do umount -l "$m"; done
    for d in "${host_leftovers[@]}"; do rm -rf "$d"; done
    if [[ ${KEEP:-0} == 1 ]]; then log "kept $work"; else rm -rf "$work"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the base image and the context ---------------------------------------------------------
rootfs=$work/rootfs
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/root"
cp "$(command -v busybox)" "$rootfs/bin/busybox"
for applet in sh true echo ls cat mkdir wc; do ln -s busybox "$rootfs/bin/$applet"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\n' >"$rootfs/etc/group"
"$berth_bin" import "$rootfs" bench-base:latest >/dev/null
"$berth_bin" save -o "$work/base.tar" bench-base:latest
mkdir -p "$work/podman/root" "$work/podman/run" "$work/podman/tmp"
podman "${popts[@]}" load -q -i "$work/base.tar" >/dev/null
podman_base=$(podman "${popts[@]}" images --format '{{.Repository}}:{{.Tag}}' | grep -m1 'bench-base:latest$')

ctx=$work/ctx
mkdir -p "$ctx/src/lib"
for i in $(seq 1 50); do echo "module $i" >"$ctx/src/lib/m$i.txt"; done
echo "v1" >"$ctx/src/app.txt"
cat >"$ctx/Dockerfile.berth" <<DOCKERFILE
FROM bench-base:latest
WORKDIR /app
ENV MODE=bench
RUN echo preparing > /prepared
COPY src/ ./
RUN cat app.txt lib/*.txt | wc -l > /count
CMD ["cat", "/count"]
DOCKERFILE
sed "s|^FROM .*|FROM $podman_base|" "$ctx/Dockerfile.berth" >"$ctx/Dockerfile.podman"

berth_build() { echo "$berth_bin build -q $1 -t bench-app -f $ctx/Dockerfile.berth $ctx"; }
podman_build() {
    echo "podman ${popts[*]} build -q $1 --pull=never --network=host --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 -t bench-app -f $ctx/Dockerfile.podman $ctx"
}
log "checking that both builds work"
$(berth_build "") >/dev/null
$(podman_build "") >/dev/null

if hyperfine --help 2>/dev/null | grep -q -- '^ *-N'; then noshell=(-N); else noshell=(--shell=none); fi
measure() { # name, extra hyperfine args...
    local name=$1
    shift
    hyperfine "${noshell[@]}" --warmup "$WARMUP" --runs "$RUNS" --export-json "$work/$name.json" "$@"
}
log "load average before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
measure cold -n berth "$(berth_build --no-cache)" -n podman "$(podman_build --no-cache)"
measure cached -n berth "$(berth_build "")" -n podman "$(podman_build "")"
# One file gets new content before every run (never seen before, so each run really misses).
flip="bash -c 'date +%s%N >$ctx/src/app.txt'"
measure one-file --prepare "$flip" -n berth "$(berth_build "")" -n podman "$(podman_build "")"
log "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

ratio() { jq -r '[.results[] | {(.command): .mean}] | add | (.podman / .berth * 100 | round / 100)' "$work/$1.json"; }
printf '\npodman/berth (mean time ratio; higher means berth is faster)\n'
fail=0
for case in cold:2 cached:5 one-file:0; do
    name=${case%%:*} aim=${case##*:}
    r=$(ratio "$name")
    if [[ $aim != 0 ]]; then
        met=$(awk -v r="$r" -v a="$aim" 'BEGIN { print (r >= a) ? "met" : "MISSED" }')
        printf '  %-9s %6sx  (aim >= %sx: %s)\n' "$name" "$r" "$aim" "$met"
        [[ $met == met ]] || fail=1
    else
        printf '  %-9s %6sx\n' "$name" "$r"
    fi
done
if [[ ${STRICT:-0} == 1 ]]; then exit "$fail"; fi
