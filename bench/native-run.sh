#!/usr/bin/env bash
# Native container start-up, side by side on this machine and the same busybox image:
#
#   berth run --rm --network none bench-busybox true   (berth, release build, a throwaway root)
#   runc run -b BUNDLE ID                 (the same image unpacked by umoci, /bin/true)
#   podman run --rm --network=none bench-busybox true  (the same image loaded from `berth save`)
#
# measured with hyperfine, then the ratios berth/runc (aim <= 1.5x) and podman/berth
# (aim >= 10x) are printed. A second round times the bridge network, as a user gets it by
# default: `berth run --rm IMG true` (the default bridge) against `--network none`, and
# against `podman run --rm --network bridge` (netavark): the bridge's cost (aim <= 2 ms) and
# podman/berth on the bridge (aim >= 10x). BRIDGE=0 skips that round. Timings are reported, never asserted: the exit status is 0
# whether or not the aims are met (set STRICT=1 to exit 1 when one is missed).
#
# Run as root on Debian 12:  bash bench/native-run.sh
# Knobs (environment): RUNS (30), WARMUP (5), BERTH (a prebuilt berth binary: skips cargo),
# KEEP=1 (keep the work folder and print it), STRICT=1.
#
# Everything lives in one mktemp folder (berth's root, podman's storage, runc's state, the
# bundle, the JSON results) and is removed on exit, so the machine is left as it was
# (apart from Debian packages installed when missing).
#
# How each command is measured, and what it includes, so the comparison is fair:
# - Every command is run directly by hyperfine (`-N`, no shell in between), with its stdout
#   and stderr on /dev/null, and is timed from fork to the exit of the command hyperfine
#   started: for all three that is after the workload has exited and been cleaned up.
# - All three give the workload the same isolation: new mount, pid, uts, ipc and network
#   namespaces (loopback only: berth's --network none brings lo up, runc brings lo up in a
#   new netns without a network config, podman with --network=none),
#   a cgroup per container (runc's and berth's in the v1 hierarchies; podman's through
#   runc), an overlay or bind rootfs with pivot_root, /proc, /dev, /sys, masked paths,
#   capabilities, no_new_privs and seccomp (berth's default profile; umoci's config for runc
#   carries no seccomp profile, podman's default profile does).
# - runc gets the least work: a bundle prepared once (rootfs already unpacked by umoci, its
#   config.json already written); it is `runc run` in the foreground, which creates,
#   starts, waits for and deletes the container. Its state goes to a throwaway `--root`.
#   A fixed id is fine: `runc run` deletes the container when it ends.
# - berth does, per run, what runc does not: opens its store (layout checks, leftover
#   cleanup), resolves the image name through index.json, reads the manifest and config,
#   makes a container record (state.json, written atomically), writes the /etc files
#   (hostname, hosts, resolv.conf), mounts an overlay of the image's layer snapshot with a
#   fresh upper dir (volatile with --rm), keeps a JSON log of the output, records the running
#   state, and with --rm removes the container's folder and cgroup.
#   That is Docker's `run --rm`, the thing a user types; runc's number is the floor.
# - podman does the same as berth and more (its image store, its database, conmon, runc
#   underneath); it runs with a throwaway --root/--runroot/--tmpdir, --runtime runc, the
#   pinned ulimits this sandbox needs, --network=none and --events-backend none.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
repo=$PWD

RUNS=${RUNS:-30}
WARMUP=${WARMUP:-5}
IMAGE=bench-busybox:latest

log() { printf 'native-run: %s\n' "$*" >&2; }

if [[ $(id -u) != 0 ]]; then
    log "run me as root: containers, runc and podman need it here"
    exit 1
fi

# --- what the benchmark needs --------------------------------------------------------------
need=()
for tool in hyperfine runc podman skopeo umoci jq nft; do
    command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
need=("${need[@]/nft/nftables}")
# podman's bridge: netavark drives iptables.
[[ ${BRIDGE:-1} == 0 ]] || command -v iptables >/dev/null 2>&1 || need+=(iptables)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
if ((${#need[@]})); then
    log "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

berth_binary "$repo"

# --- a throwaway work folder, removed on exit ----------------------------------------------
work=$(mktemp -d /tmp/berth-bench.XXXXXX)
export BERTH_ROOT=$work/berth-root
# podman's storage. The overlay driver works here (kernel overlayfs on ext4, as root); vfs
# is the fallback if overlay cannot be set up (it copies the whole rootfs per container,
# which would make podman slower than it need be: the fallback is reported when used).
podman_driver=overlay
podman_opts() {
    printf '%s\n' --root "$work/podman/root" --runroot "$work/podman/run" --tmpdir "$work/podman/tmp" \
        --storage-driver "$podman_driver" --network-config-dir "$work/podman/net" \
        --cgroup-manager cgroupfs --events-backend none --runtime runc
}
podman_() { mapfile -t o < <(podman_opts); podman "${o[@]}" "$@"; }
runc_root=$work/runc-state
bundle=$work/bundle

# Cgroup folders that berth (its parent group `berth`) and podman (`libpod_parent`, with
# cgroupfs) make and leave behind: removed on exit when this run made them and they are
# empty (rmdir never removes a cgroup that has processes or children).
cgroup_parents=()
for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
    for name in berth libpod_parent; do
        [[ -d $h$name ]] || cgroup_parents+=("$h$name")
    done
done

# Host folders podman 4.3 writes even with the options above (/run/containers/networks; its
# blob-info cache in /var/lib/containers/cache): removed on exit when this run made them.
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
    if [[ -d $work/podman/root ]]; then
        podman_ rm -af >/dev/null 2>&1
        podman_ rmi -af >/dev/null 2>&1
    fi
    runc --root "$runc_root" delete -f bench-runc >/dev/null 2>&1
    # podman's storage keeps mounts under its root (overlay's private bind, shm): unmount
    # everything under the work folder, deepest first, before removing it.
    awk -v w="$work" '$5 == w || index($5, w "/") == 1 { print $5 }' /proc/self/mountinfo |
        sort -r | while read -r m; do umount -l "$m"; done
    for d in "${cgroup_parents[@]}"; do
        # Deepest first (podman leaves libpod_parent/conmon); rmdir only takes empty groups.
        [[ -d $d ]] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
    for d in "${host_leftovers[@]}"; do
        rm -rf "$d"
    done
    if [[ ${KEEP:-0} == 1 ]]; then
        log "kept $work"
    else
        rm -rf "$work"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the image: Debian's busybox-static, imported into berth -------------------------------
rootfs=$work/rootfs
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/root"
cp "$(dpkg -L busybox-static | grep -m1 '/bin/busybox$')" "$rootfs/bin/busybox"
for applet in sh true false echo ls cat env sleep; do
    ln -s busybox "$rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
log "importing the image into berth ($BERTH_ROOT)"
"$berth_bin" import "$rootfs" "$IMAGE" >/dev/null
"$berth_bin" save -o "$work/image.tar" "$IMAGE"

# runc: the archive's OCI layout, unpacked by umoci into a bundle, told to run /bin/true.
mkdir -p "$work/layout"
tar -C "$work/layout" -xf "$work/image.tar"
umoci unpack --image "$work/layout:latest" "$bundle" >/dev/null
jq '.process.args = ["/bin/true"] | .process.terminal = false' "$bundle/config.json" >"$bundle/config.json.new"
mv "$bundle/config.json.new" "$bundle/config.json"

# podman: the same archive, into a throwaway storage.
mkdir -p "$work/podman/root" "$work/podman/run" "$work/podman/tmp" "$work/podman/net"
if ! podman_ load -q -i "$work/image.tar" >"$work/podman-load.log" 2>&1; then
    log "podman's overlay storage failed here ($(tail -1 "$work/podman-load.log")); using vfs"
    podman_driver=vfs
    rm -rf "$work/podman/root" "$work/podman/run"
    mkdir -p "$work/podman/root" "$work/podman/run"
    podman_ load -q -i "$work/image.tar" >"$work/podman-load.log"
fi
podman_image=$(podman_ images --format '{{.Repository}}:{{.Tag}}' | grep -m1 'bench-busybox:latest$') || {
    log "podman load did not name the image bench-busybox:latest: $(cat "$work/podman-load.log")"
    exit 1
}

# --- the three commands --------------------------------------------------------------------
berth_cmd="$berth_bin run --rm --network none $IMAGE true"
runc_cmd="runc --root $runc_root run -b $bundle bench-runc"
mapfile -t popts < <(podman_opts)
podman_cmd="podman ${popts[*]} run --rm --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --network=none $podman_image true"

log "checking that each command runs"
for c in "$berth_cmd" "$runc_cmd" "$podman_cmd"; do
    # shellcheck disable=SC2086 # the commands are word lists, as hyperfine -N splits them
    if ! out=$($c 2>&1); then
        log "this command failed, so there is nothing to measure: $c"
        printf '%s\n' "$out" >&2
        exit 1
    fi
done

# hyperfine 1.13+ has -N; older ones take --shell=none (the same thing).
if hyperfine --help 2>/dev/null | grep -q -- '^ *-N'; then noshell=(-N); else noshell=(--shell=none); fi
log "load average before measuring: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
hyperfine "${noshell[@]}" --warmup "$WARMUP" --runs "$RUNS" \
    --export-json "$work/results.json" \
    -n 'berth run --rm' "$berth_cmd" \
    -n 'runc run' "$runc_cmd" \
    -n 'podman run --rm' "$podman_cmd"
log "load average after measuring: $(cut -d' ' -f1-3 /proc/loadavg)"

# --- the ratios ----------------------------------------------------------------------------
# Means (in ms) of the three, in the order they were given; ratios of means.
read -r b_mean b_sd b_med r_mean r_sd r_med p_mean p_sd p_med < <(jq -r '
    [.results[] | (.mean, .stddev, .median) | . * 1000] | map(tostring) | join(" ")' "$work/results.json")
summary=$(awk -v bm="$b_mean" -v bs="$b_sd" -v bd="$b_med" -v rm="$r_mean" -v rs="$r_sd" -v rd="$r_med" \
    -v pm="$p_mean" -v ps="$p_sd" -v pd="$p_med" -v runs="$RUNS" 'BEGIN {
    br = bm / rm; pb = pm / bm
    printf "\nnative run, %d runs each (mean ± stddev, median):\n", runs
    printf "  berth run --rm:   %7.1f ms ± %5.1f  (median %7.1f ms)\n", bm, bs, bd
    printf "  runc run:         %7.1f ms ± %5.1f  (median %7.1f ms)\n", rm, rs, rd
    printf "  podman run --rm:  %7.1f ms ± %5.1f  (median %7.1f ms)\n", pm, ps, pd
    printf "  berth/runc   = %5.2fx  (aim <= 1.5x: %s)\n", br, (br <= 1.5 ? "met" : "MISSED")
    printf "  podman/berth = %5.1fx  (aim >= 10x:  %s)\n", pb, (pb >= 10 ? "met" : "MISSED")
    printf "summary: berth run --rm: %.1f ms ± %.1f; runc run: %.1f ms; podman run --rm: %.0f ms; berth/runc = %.2fx (aim <= 1.5x); podman/berth = %.1fx (aim >= 10x)\n", bm, bs, rm, pm, br, pb
    exit (br <= 1.5 && pb >= 10) ? 0 : 3
}') && met=1 || met=0
printf '%s\n' "$summary"
[[ $podman_driver == overlay ]] || echo "note: podman used the vfs storage driver (overlay failed here)"
if [[ ${STRICT:-0} == 1 && $met == 0 ]]; then
    exit 1
fi

# --- the bridge round ----------------------------------------------------------------------
[[ ${BRIDGE:-1} == 0 ]] && exit 0
berth_bridge_cmd="$berth_bin run --rm $IMAGE true"
podman_bridge_cmd="podman ${popts[*]} run --rm --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --network=bridge $podman_image true"
for c in "$berth_bridge_cmd" "$podman_bridge_cmd"; do
    # shellcheck disable=SC2086
    if ! out=$($c 2>&1); then
        log "this command failed, so the bridge round is skipped: $c"
        printf '%s\n' "$out" >&2
        exit 1
    fi
done
hyperfine "${noshell[@]}" --warmup "$WARMUP" --runs "$RUNS" \
    --export-json "$work/bridge.json" \
    -n 'berth run --rm (bridge)' "$berth_bridge_cmd" \
    -n 'berth run --rm --network none' "$berth_cmd" \
    -n 'podman run --rm --network bridge' "$podman_bridge_cmd"
read -r bb bn pb < <(jq -r '[.results[] | .median * 1000] | map(tostring) | join(" ")' "$work/bridge.json")
awk -v bb="$bb" -v bn="$bn" -v pb="$pb" 'BEGIN {
    d = bb - bn; r = pb / bb
    printf "\nbridge round (medians): berth bridge %.1f ms, berth none %.1f ms, podman bridge %.0f ms\n", bb, bn, pb
    printf "  the bridge adds %.2f ms to a berth start (aim <= 2 ms: %s)\n", d, (d <= 2 ? "met" : "MISSED")
    printf "  podman/berth on the bridge = %.1fx (aim >= 10x: %s)\n", r, (r >= 10 ? "met" : "MISSED")
}'
