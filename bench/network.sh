#!/usr/bin/env bash
# Container-to-container TCP throughput on one user-defined network, berth against podman's
# bridge (netavark), the same image and the same iperf3:
#
#   berth network create benchnet; berth run -d --network benchnet IMG iperf3 -s
#   berth run --rm --network benchnet IMG iperf3 -c SERVER -t SECONDS -J
#   (and the same with podman, on a podman network of the same name)
#
# Each side runs ROUNDS (3) alternating rounds of SECONDS (10); the medians of the received
# bits per second and their ratio berth/podman are printed (aim: within 10%, >= 0.9x).
# A second part measures a published port: iperf3 on the host against 127.0.0.1:PORT, the
# server in a container run with -p (berth: its userspace proxy; podman: netavark's DNAT).
# Reported, never asserted. Run as root: bash bench/network.sh
# Knobs: ROUNDS, SECONDS_PER_ROUND, BERTH (a prebuilt berth binary: skips cargo), KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
repo=$PWD
ROUNDS=${ROUNDS:-3}
SECS=${SECONDS_PER_ROUND:-10}
IMAGE=bench-iperf:latest

log() { printf 'network: %s\n' "$*" >&2; }
[[ $(id -u) == 0 ]] || { log "run me as root"; exit 1; }

need=()
for tool in iperf3 podman jq nft iptables; do
    command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
need=("${need[@]/nft/nftables}")
if ((${#need[@]})); then
    log "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
berth_binary "$repo"

work=$(mktemp -d /tmp/berth-bench-net.XXXXXX)
export BERTH_ROOT=$work/berth-root
podman_() {
    podman --root "$work/podman/root" --runroot "$work/podman/run" --tmpdir "$work/podman/tmp" \
        --network-config-dir "$work/podman/net" --cgroup-manager cgroupfs --events-backend none \
        --runtime runc "$@"
}
cleanup() {
    local rc=$?
    set +e
    "$berth_bin" rm -f iperf-srv iperf-pub >/dev/null 2>&1
    "$berth_bin" network rm benchnet >/dev/null 2>&1
    "$berth_bin" system prune -f >/dev/null 2>&1
    [[ ${KEEP:-0} == 1 ]] || remove_run_root "$berth_bin" "$work"
    if [[ -d $work/podman/root ]]; then
        podman_ rm -af >/dev/null 2>&1
        podman_ network rm -f benchnet >/dev/null 2>&1
        podman_ rmi -af >/dev/null 2>&1
    fi
    awk -v w="$work" 'index($5, w "/") == 1 { print $5 }' /proc/self/mountinfo |
        sort -r | while read -r m; do umount -l "$m"; done
    if [[ ${KEEP:-0} == 1 ]]; then log "kept $work"; else rm -rf "$work"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The image: iperf3 and the libraries it links, nothing else.
rootfs=$work/rootfs
mkdir -p "$rootfs/usr/bin" "$rootfs/tmp" "$rootfs/etc"
cp /usr/bin/iperf3 "$rootfs/usr/bin/"
ldd /usr/bin/iperf3 | grep -o '/[^ ]*' | while read -r lib; do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$rootfs/etc/passwd"
"$berth_bin" import "$rootfs" "$IMAGE" >/dev/null
"$berth_bin" save -o "$work/image.tar" "$IMAGE"
mkdir -p "$work/podman/root" "$work/podman/run" "$work/podman/tmp" "$work/podman/net"
podman_ load -q -i "$work/image.tar" >/dev/null
podman_image=$(podman_ images --format '{{.Repository}}:{{.Tag}}' | grep -m1 'bench-iperf:latest$')
ulimits=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)

"$berth_bin" network create benchnet >/dev/null
"$berth_bin" run -d --name iperf-srv --network benchnet "$IMAGE" iperf3 -s >/dev/null
berth_srv=$("$berth_bin" inspect iperf-srv | jq -r '.[0].NetworkSettings.Networks.benchnet.IPAddress')
podman_ network create benchnet >/dev/null
podman_ run -d "${ulimits[@]}" --name iperf-srv --network benchnet "$podman_image" iperf3 -s >/dev/null
podman_srv=$(podman_ inspect iperf-srv | jq -r '.[0].NetworkSettings.Networks.benchnet.IPAddress')
"$berth_bin" run -d --name iperf-pub -p 127.0.0.1:15201:5201 "$IMAGE" iperf3 -s >/dev/null
podman_ run -d "${ulimits[@]}" --name iperf-pub -p 127.0.0.1:15202:5201 "$podman_image" iperf3 -s >/dev/null
sleep 1

bps() { jq -r '.end.sum_received.bits_per_second'; }
berth_runs=()
podman_runs=()
for r in $(seq "$ROUNDS"); do
    log "round $r/$ROUNDS"
    berth_runs+=("$("$berth_bin" run --rm --network benchnet "$IMAGE" iperf3 -c "$berth_srv" -t "$SECS" -J | bps)")
    podman_runs+=("$(podman_ run --rm "${ulimits[@]}" --network benchnet "$podman_image" iperf3 -c "$podman_srv" -t "$SECS" -J | bps)")
done
berth_pub=()
podman_pub=()
for r in $(seq "$ROUNDS"); do
    log "published port, round $r/$ROUNDS"
    berth_pub+=("$(iperf3 -c 127.0.0.1 -p 15201 -t "$SECS" -J | bps)")
    podman_pub+=("$(iperf3 -c 127.0.0.1 -p 15202 -t "$SECS" -J | bps)")
done
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
b=$(median "${berth_runs[@]}")
p=$(median "${podman_runs[@]}")
awk -v b="$b" -v p="$p" -v n="$ROUNDS" -v s="$SECS" 'BEGIN {
    r = b / p
    printf "\niperf3 between two containers on one network, median of %d rounds of %d s:\n", n, s
    printf "  berth:  %.2f Gbit/s\n  podman: %.2f Gbit/s\n", b / 1e9, p / 1e9
    printf "  berth/podman = %.2fx (aim >= 0.9x: %s)\n", r, (r >= 0.9 ? "met" : "MISSED")
}'
bp=$(median "${berth_pub[@]}")
pp=$(median "${podman_pub[@]}")
awk -v b="$bp" -v p="$pp" 'BEGIN {
    printf "\nthrough a published port (host -> 127.0.0.1:PORT -> container):\n"
    printf "  berth (userspace proxy): %.2f Gbit/s\n  podman (DNAT):           %.2f Gbit/s\n", b / 1e9, p / 1e9
    printf "  berth/podman = %.2fx\n", b / p
}'
