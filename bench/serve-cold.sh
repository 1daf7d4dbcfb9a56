#!/usr/bin/env bash
# A native image as a function (issue 20): cold start to first response, and what the proxy
# adds to a warm request, side by side on this machine.
#
#   cold   berth serve of bench-httpd, a serve file with idle_timeout = 1s: each round waits
#            until the container is stopped (and PAUSE more), then times the first GET (the
#            container starts and is probed inside berth);
#          podman run -d -p 127.0.0.1:PORT:8080 bench-httpd, then a GET polled in a tight loop
#            until it answers (the same image, loaded from `berth save`): the time from
#            podman's start to the first answer; the container is removed between rounds.
#          Both GETs are bash's (/dev/tcp), timed by bash's clock: no client process starts.
#          Aim: berth >= 10x faster (podman's median / berth's median).
#   warm   wrk -t1 at -c1 and -c8, DURATION seconds each: through berth serve (warm, the
#          container running) against straight to the app inside the container's network
#          namespace (`nsenter --net` + wrk to 127.0.0.1:8080). Aim: berth's p99 at most 10%
#          over the direct one.
#
# The image: busybox httpd serving a small file (busybox-static, imported with `berth import`).
# busybox httpd closes each connection after its response, so both warm clients (and berth's
# proxy) connect once per request. Timings are reported, never asserted.
#
# Run on Debian 12, as root:  bash bench/serve-cold.sh   (or ONLY=container bash bench/serve.sh)
# Knobs: ROUNDS (10) cold starts of each; DURATION (10) seconds of each warm run; PAUSE (2)
#        seconds each cold start waits after the last container went (its teardown is the
#        kernel's, and takes a while: a start right after one is slower for both);
#        BERTH (a prebuilt berth, default target/release/berth); KEEP=1 keeps the work folder.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
repo=$PWD
ROUNDS=${ROUNDS:-10}
DURATION=${DURATION:-10}
PAUSE=${PAUSE:-2}
log() { printf 'serve-cold: %s\n' "$*" >&2; }
[[ $(id -u) == 0 ]] || { log "run me as root: containers and podman need it here"; exit 1; }

need=()
for tool in podman runc wrk curl jq nsenter; do
    command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
need=("${need[@]/nsenter/util-linux}")
command -v iptables >/dev/null 2>&1 || need+=(iptables)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
if ((${#need[@]})); then
    log "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
berth_binary "$repo"

work=$(mktemp -d /tmp/berth-serve-cold.XXXXXX)
export BERTH_ROOT=$work/berth-root
podman_() {
    podman --root "$work/podman/root" --runroot "$work/podman/run" --tmpdir "$work/podman/tmp" \
        --storage-driver overlay --network-config-dir "$work/podman/net" \
        --cgroup-manager cgroupfs --events-backend none --runtime runc "$@"
}
server_pid=
cleanup() {
    local rc=$?
    set +e
    [[ -n $server_pid ]] && { kill -TERM "$server_pid"; wait "$server_pid"; } 2>/dev/null
    if [[ -d $work/podman/root ]]; then
        podman_ rm -af >/dev/null 2>&1
        podman_ rmi -af >/dev/null 2>&1
    fi
    [[ ${KEEP:-0} == 1 ]] || remove_run_root "$berth_bin" "$work"
    awk -v w="$work" '$5 == w || index($5, w "/") == 1 { print $5 }' /proc/self/mountinfo |
        sort -r | while read -r m; do umount -l "$m"; done
    if [[ ${KEEP:-0} == 1 ]]; then log "kept $work"; else rm -rf "$work"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# The clock and the client are bash's own (EPOCHREALTIME, /dev/tcp): starting curl takes about
# 10 ms here, which would be most of berth's number and a poll's worth of podman's.
now_us() { local t=${EPOCHREALTIME/[.,]/}; echo "$t"; }
# get200 PORT PATH: one GET over a fresh connection; succeeds on a 200.
get200() {
    local line
    { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3
    IFS= read -r line <&3 || { exec 3<&-; return 1; }
    exec 3<&-
    [[ $line == "HTTP/1."?" 200"* ]]
}
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- the image --------------------------------------------------------------------------
mkdir -p "$work/rootfs/bin" "$work/rootfs/www" "$work/ctx"
cp /bin/busybox "$work/rootfs/bin/busybox"
for a in sh httpd; do ln -s busybox "$work/rootfs/bin/$a"; done
echo "hello from a cold function" >"$work/rootfs/www/index.html"
"$berth_bin" import --change 'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]' "$work/rootfs" bench-httpd >/dev/null
"$berth_bin" save -o "$work/image.tar" bench-httpd
podman_ load -q -i "$work/image.tar" >/dev/null
podman_image=$(podman_ images -q | head -n1)

# --- cold: berth serve ------------------------------------------------------------------
port=$(free_port)
cat >"$work/serve.toml" <<TOML
listen = "127.0.0.1:$port"
[[route]]
route = "/..."
image = "bench-httpd"
executor = { type = "container", port = 8080, idle_timeout = "1s" }
TOML
"$berth_bin" serve -f "$work/serve.toml" 2>"$work/serve.log" &
server_pid=$!
for _ in $(seq 600); do grep -q "listening on" "$work/serve.log" && break; sleep 0.1; done
url=http://127.0.0.1:$port/index.html
state() { "$berth_bin" ps -a --format json | jq -r '.State' | head -n1; }
berth_ms=()
for r in $(seq "$ROUNDS"); do
    until [[ $(state) == exited || $(state) == created ]]; do sleep 0.2; done
    # A function's cold start comes long after its idle stop: the kernel's teardown of the
    # last container (its network namespace, veth, cgroup) is over by then. Both sides
    # pause as long after their last container went.
    sleep "$PAUSE"
    t0=$(now_us)
    get200 "$port" /index.html || { log "berth serve answered no 200"; exit 1; }
    berth_ms+=("$(awk -v d=$(($(now_us) - t0)) 'BEGIN { printf "%.1f", d / 1000 }')")
done
log "berth serve cold starts (ms): ${berth_ms[*]}"

# --- warm: through berth, and straight into the container's namespace -------------------
# A server of its own, whose container stays up (the default idle_timeout, 5 minutes).
kill -TERM "$server_pid"; wait "$server_pid" || true; server_pid=
port=$(free_port)
"$berth_bin" serve --listen "127.0.0.1:$port" --container-port 8080 bench-httpd 2>"$work/serve-warm.log" &
server_pid=$!
for _ in $(seq 600); do grep -q "listening on" "$work/serve-warm.log" && break; sleep 0.1; done
url=http://127.0.0.1:$port/index.html
curl -sf -o /dev/null "$url"
pid=$("$berth_bin" inspect "$("$berth_bin" ps -q | head -n1)" | jq -r '.[0].State.Pid')
for c in 1 8; do
    wrk -t1 -c"$c" -d2s "$url" >/dev/null
    wrk -t1 -c"$c" -d"${DURATION}s" --latency "$url" >"$work/warm-berth-c$c.wrk"
    nsenter --net="/proc/$pid/ns/net" wrk -t1 -c"$c" -d2s http://127.0.0.1:8080/index.html >/dev/null
    nsenter --net="/proc/$pid/ns/net" wrk -t1 -c"$c" -d"${DURATION}s" --latency \
        http://127.0.0.1:8080/index.html >"$work/warm-direct-c$c.wrk"
done
kill -TERM "$server_pid"; wait "$server_pid" || true; server_pid=

# --- cold: podman run -d -p, polled -------------------------------------------------------
podman_ms=()
for r in $(seq "$ROUNDS"); do
    pport=$(free_port)
    sleep "$PAUSE"
    t0=$(now_us)
    # The ulimits this sandbox needs (its hard limit is below podman's default), as the other benches.
    podman_ run -d --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --name "cold$r" \
        -p "127.0.0.1:$pport:8080" "$podman_image" >/dev/null
    until get200 "$pport" /index.html; do :; done
    podman_ms+=("$(awk -v d=$(($(now_us) - t0)) 'BEGIN { printf "%.1f", d / 1000 }')")
    podman_ rm -f -t 0 "cold$r" >/dev/null
done
log "podman run -d -p + polling (ms): ${podman_ms[*]}"

# --- the table ----------------------------------------------------------------------------
p99() { awk '$1 == "99%" { v = $2; if (v ~ /us$/) print substr(v, 1, length(v) - 2) / 1000; else if (v ~ /ms$/) print substr(v, 1, length(v) - 2) + 0; else print substr(v, 1, length(v) - 1) * 1000 }' "$1"; }
rps() { awk '/Requests\/sec:/ { print $2 }' "$1"; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { print (b > 0) ? a / b : 0 }'; }
bm=$(printf '%s\n' "${berth_ms[@]}" | median)
pm=$(printf '%s\n' "${podman_ms[@]}" | median)
printf '\n%-44s %12s %12s %10s\n' "scenario" "berth" "peer" "ratio"
printf '%-44s %10s ms %10s ms %9.1fx  (podman/berth; aim >= 10x)\n' "cold start to first response (median)" "$bm" "$pm" "$(div "$pm" "$bm")"
for c in 1 8; do
    wb=$(p99 "$work/warm-berth-c$c.wrk")
    wd=$(p99 "$work/warm-direct-c$c.wrk")
    rb=$(rps "$work/warm-berth-c$c.wrk")
    rd=$(rps "$work/warm-direct-c$c.wrk")
    printf '%-44s %10s ms %10s ms %9.2fx  (berth/direct; aim <= 1.10x)\n' "warm p99, wrk -c$c (proxy vs in the netns)" "$wb" "$wd" "$(div "$wb" "$wd")"
    printf '%-44s %10s    %10s    %9.2fx\n' "warm requests/s, wrk -c$c" "$rb" "$rd" "$(div "$rb" "$rd")"
done
