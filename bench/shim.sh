#!/usr/bin/env bash
# containerd's own shim for runc against berth's, side by side under one containerd (Debian's
# 1.6, a throwaway config, root, state and socket, no CRI):
#
#   ctr run --rm --runtime io.containerd.runc.v2  bench-busybox r1 true
#   ctr run --rm --runtime io.containerd.berth.v1 bench-busybox b1 true
#   ctr run --rm --runtime io.containerd.berth.v1 hello-wasi    w1      (reported beside them)
#
# timed with hyperfine (-N), then the ratio runc-shim/berth-shim (aim >= 1.5x). runwasi's
# wasmtime shim is not on crates.io, so it is no peer here. A second pass records containerd's
# task events (`ctr events`) over RUNS runs of each and prints the median time between them:
# what containerd does before the shim is asked to create (snapshot, container record, the
# shim's start), the shim's create, start and exit, and the delete.
#
# Run as root on Debian 12:  bash bench/shim.sh
# Knobs: RUNS (20), WARMUP (3), BERTH and SHIM (prebuilt binaries: skip cargo), KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
repo=$PWD
RUNS=${RUNS:-20}
WARMUP=${WARMUP:-3}
log() { printf 'shim: %s\n' "$*" >&2; }

need=()
for tool in hyperfine containerd runc python3; do
    command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
if ((${#need[@]})); then
    log "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1

berth_binary "$repo"
if [[ -n ${SHIM:-} ]]; then
    shim_bin=$(realpath "$SHIM")
else
    log "building the shim (release)"
    cargo build --release -p berth-shim --manifest-path "$repo/Cargo.toml"
    shim_bin=$repo/target/release/containerd-shim-berth-v1
fi

work=$(mktemp -d /tmp/berth-bench-shim.XXXXXX)
export BERTH_ROOT=$work/berth-root
sock=$work/c.sock
ns=bench
ctr_() { ctr -a "$sock" -n "$ns" "$@"; }
cleanup() {
    set +e
    [[ -n ${events_pid:-} ]] && kill "$events_pid" 2>/dev/null
    if [[ -n ${containerd_pid:-} ]]; then
        pkill -KILL -f "containerd-shim-.*-address $sock" 2>/dev/null
        kill "$containerd_pid" 2>/dev/null
        wait "$containerd_pid" 2>/dev/null
    fi
    grep -o "$work[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null
    remove_run_root "$berth_bin" "$work"
    for h in /sys/fs/cgroup/*/"$ns" /sys/fs/cgroup/"$ns"; do rmdir "$h"/* "$h" 2>/dev/null; done
    if [[ ${KEEP:-0} == 1 ]]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

mkdir -p "$work/bin"
ln -s "$shim_bin" "$work/bin/containerd-shim-berth-v1"
cat >"$work/config.toml" <<EOF
version = 2
root = "$work/root"
state = "$work/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
EOF
PATH=$work/bin:$PATH containerd --config "$work/config.toml" >"$work/containerd.log" 2>&1 &
containerd_pid=$!
for _ in $(seq 100); do ctr_ version >/dev/null 2>&1 && break; sleep 0.1; done

# The images: busybox (berth import) and examples/hello-wasi, saved by berth and imported.
rootfs=$work/busybox
mkdir -p "$rootfs/bin"
cp "$(command -v busybox)" "$rootfs/bin/busybox"
for a in sh true echo; do ln -s busybox "$rootfs/bin/$a"; done
"$berth_bin" import --change 'CMD ["/bin/sh"]' "$rootfs" bench-busybox >/dev/null
(cd examples/hello-wasi && cargo build -q --release --target wasm32-wasip1)
"$berth_bin" build -q -t hello-wasi examples/hello-wasi >/dev/null
"$berth_bin" save -o "$work/images.tar" bench-busybox hello-wasi
ctr_ image import --all-platforms "$work/images.tar" >/dev/null
bb=docker.io/library/bench-busybox:latest
wasi=docker.io/library/hello-wasi:latest
run() { printf 'ctr -a %s -n %s run --rm --runtime %s %s %s %s' "$sock" "$ns" "$1" "$2" "$3" "${4:-}"; }
# Each must work before it is timed.
ctr_ run --rm --runtime io.containerd.runc.v2 "$bb" check-r true
ctr_ run --rm --runtime io.containerd.berth.v1 "$bb" check-b true
ctr_ run --rm --runtime io.containerd.berth.v1 "$wasi" check-w >/dev/null

hyperfine -N -w "$WARMUP" -r "$RUNS" --export-json "$work/times.json" \
    -n runc-shim "$(run io.containerd.runc.v2 "$bb" r1 true)" \
    -n berth-shim "$(run io.containerd.berth.v1 "$bb" b1 true)" \
    -n berth-shim-wasi "$(run io.containerd.berth.v1 "$wasi" w1)" >&2

python3 - "$work/times.json" <<'EOF'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
m = lambda n: r[n]["median"] * 1000
print(f"ctr run --rm, median: runc shim {m('runc-shim'):.1f} ms, berth shim {m('berth-shim'):.1f} ms, "
      f"berth shim (WASI hello) {m('berth-shim-wasi'):.1f} ms")
print(f"runc shim / berth shim: {m('runc-shim') / m('berth-shim'):.2f}x (aim >= 1.5x)")
EOF

# Where the time goes: containerd's task events, timestamped where they are made.
ctr_ events >"$work/events.log" 2>/dev/null &
events_pid=$!
sleep 0.3
for i in $(seq "$RUNS"); do
    ctr_ run --rm --runtime io.containerd.runc.v2 "$bb" "er$i" true
    ctr_ run --rm --runtime io.containerd.berth.v1 "$bb" "eb$i" true
done
sleep 0.5
kill "$events_pid"
events_pid=
python3 - "$work/events.log" <<'EOF'
import re, sys, statistics
from datetime import datetime
seen = {}
for line in open(sys.argv[1]):
    m = re.match(r"(\S+ \S+) \+0000 UTC \S+ (\S+) .*?\"(?:id|container_id)\":\"(e[rb]\d+)\"", line)
    if not m:
        continue
    stamp, topic, cid = m.groups()
    stamp = stamp[:26]
    t = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f") if "." in stamp else datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S")
    seen.setdefault(cid, {}).setdefault(topic, t)
steps = [("/containers/create", "/tasks/create", "containerd and shim start + create"),
         ("/tasks/create", "/tasks/start", "start"),
         ("/tasks/start", "/tasks/exit", "run to exit"),
         ("/tasks/exit", "/tasks/delete", "delete"),
         ("/tasks/delete", "/containers/delete", "containerd after delete")]
for kind, name in (("er", "runc shim"), ("eb", "berth shim")):
    parts = []
    for a, b, label in steps:
        d = [(v[b] - v[a]).total_seconds() * 1000 for c, v in seen.items() if c.startswith(kind) and a in v and b in v]
        if d:
            parts.append(f"{label} {statistics.median(d):.1f}")
    print(f"{name}, median ms between events: " + "; ".join(parts))
EOF
