#!/usr/bin/env bash
# WASI start-up, side by side on this machine against the wasmtime CLI (the same wasmtime, 48,
# that berth embeds), on the same modules:
#
#   small   examples/hello-wasi built for wasm32-wasip1 (about 60 KiB of wasm)
#             berth run --rm bench-hello               (precompiled by `berth build`)
#             wasmtime run --allow-precompiled M.cwasm (the peer: `wasmtime compile` output)
#             wasmtime run -C cache=n M.wasm           (context: compiles on every run)
#   big     a real CLI from crates.io built for wasm32-wasip1 (ripgrep by default, a few MiB
#           of wasm), searching a text file (Debian's GPL-3) that is inside the image, cold and
#           cached:
#     cold    berth run --rm bench-big ARGS             (ROOT/wasm-cache removed before each run,
#                                                        so berth compiles and stores the module)
#             wasmtime run -C cache=n --dir D::/ M.wasm ARGS   (compiles, caches nothing)
#     cached  berth run --rm bench-big ARGS             (the artifact `berth build` stored)
#             wasmtime run --allow-precompiled --dir D::/ M.cwasm ARGS
#
# measured with hyperfine; the ratios berth/wasmtime are printed (aim: cached within 1.5x for
# both modules; cold is reported without an aim). Timings are reported, never asserted: the
# exit status is 0 whether or not the aim is met (STRICT=1 makes a missed aim exit 1).
#
# Run as root on Debian 12:  bash bench/wasi.sh
# Knobs (environment):
#   RUNS (20) and WARMUP (3)   cached/small cases;  COLD_RUNS (5)  cold cases (one warm-up)
#   BERTH     a prebuilt berth binary (default target/release/berth, built when missing)
#   WASMTIME  the wasmtime CLI (default: `command -v wasmtime`, else
#             /opt/wasmtime-cli/bin/wasmtime, else installed there with
#             `cargo install --locked wasmtime-cli@48.0.8 --root /opt/wasmtime-cli`)
#   MODULES   where the wasm modules are built and kept between runs (/tmp/berth-bench-wasm:
#             the ripgrep build takes minutes; `rm -rf` it to start over)
#   BIG_WASM  use this wasm32-wasip1 module as the big one instead of building ripgrep, with
#   BIG_ARGS  its arguments (default for ripgrep: -n -i warranty /data/input.txt)
#   BIG_CRATE, BIG_BIN  another crates.io CLI to build for the big case (default ripgrep, rg)
#   KEEP=1    keep the work folder;  STRICT=1  exit 1 when an aim is missed
#
# Fairness, and what each time covers:
# - hyperfine runs every command directly (-N, no shell), output to /dev/null, and times it
#   from fork to exit.
# - berth does what a user's `berth run --rm` does: open the store, resolve the image, record
#   the container, overlay rootfs, namespaces (mount, pid, uts, ipc, net), cgroup, seccomp,
#   then in the container's PID 1 look the module up in the compile cache (the module's
#   sha256 remembered for its layer, the artifact's xxh3 checked), map it, run it through
#   wasmtime-wasi p1 with the rootfs as the guest's `/`, log its output, record the exit,
#   take the container out of the store. berth returns then; the container's init removes its
#   folder and cgroup afterwards, and makes a network namespace and a container folder for the
#   next container, in the background (at nice 19), which overlaps the next run: that work is
#   moved off each start's path, not saved.
# - wasmtime runs the module in-process with no isolation beyond WASI's own, the floor.
#   For the big module it gets the same files: the image's files unpacked into a folder
#   preopened as the guest's `/` (--dir D::/), so both search the same file by the same path.
# - Both use wasmtime 48 with cranelift and parallel compilation. berth's engine also has
#   epoch interruption on (how `stop` ends a guest), which adds a check per loop and call.
# - wasmtime's own compile cache is on by default and would write under ~/.cache: the script
#   points XDG_CACHE_HOME at the work folder, and the "compiles each run" cases pass
#   -C cache=n, so they really compile each run.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
repo=$PWD

RUNS=${RUNS:-20}
WARMUP=${WARMUP:-3}
COLD_RUNS=${COLD_RUNS:-5}
MODULES=${MODULES:-/tmp/berth-bench-wasm}
BIG_CRATE=${BIG_CRATE:-ripgrep}
BIG_BIN=${BIG_BIN:-rg}
WASMTIME_VERSION=48.0.8
AIM=1.5

log() { printf 'wasi-bench: %s\n' "$*" >&2; }

if [[ $(id -u) != 0 ]]; then
    log "run me as root: berth's containers need it here"
    exit 1
fi

# --- what the benchmark needs --------------------------------------------------------------
need=()
for tool in hyperfine jq; do
    command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
if ((${#need[@]})); then
    log "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
    log "adding the wasm32-wasip1 Rust target"
    rustup target add wasm32-wasip1
fi

# The peer: wasmtime-cli 48 from crates.io.
if [[ -n ${WASMTIME:-} ]]; then
    wasmtime_bin=$(realpath "$WASMTIME")
elif command -v wasmtime >/dev/null 2>&1; then
    wasmtime_bin=$(command -v wasmtime)
elif [[ -x /opt/wasmtime-cli/bin/wasmtime ]]; then
    wasmtime_bin=/opt/wasmtime-cli/bin/wasmtime
else
    log "installing wasmtime-cli@$WASMTIME_VERSION into /opt/wasmtime-cli (about 10 minutes on 2 cores)"
    cargo install --locked "wasmtime-cli@$WASMTIME_VERSION" --root /opt/wasmtime-cli
    wasmtime_bin=/opt/wasmtime-cli/bin/wasmtime
fi
wasmtime_version=$("$wasmtime_bin" --version)
[[ $wasmtime_version == "wasmtime 48."* ]] ||
    log "note: the peer is $wasmtime_version, not the wasmtime 48 that berth embeds"

if [[ -n ${BERTH:-} ]]; then
    berth_bin=$(realpath "$BERTH")
elif [[ -x target/release/berth ]]; then
    berth_bin=$repo/target/release/berth
else
    log "building berth (release; this compiles wasmtime: several minutes)"
    cargo build --release -p berth-cli
    berth_bin=$repo/target/release/berth
fi

# --- the modules (kept in $MODULES between runs) -------------------------------------------
mkdir -p "$MODULES"
# The small one: examples/hello-wasi, built from a copy so the repository stays untouched
# (cargo would write a Cargo.lock beside it).
small_wasm=$MODULES/hello-wasi.wasm
if [[ ! -s $small_wasm || examples/hello-wasi/src/main.rs -nt $small_wasm ]]; then
    log "building examples/hello-wasi for wasm32-wasip1"
    rm -rf "$MODULES/hello-src"
    mkdir -p "$MODULES/hello-src"
    cp -r examples/hello-wasi/Cargo.toml examples/hello-wasi/src "$MODULES/hello-src/"
    (cd "$MODULES/hello-src" && CARGO_TARGET_DIR=$MODULES/target-hello \
        cargo build --release --target wasm32-wasip1 -q)
    cp "$MODULES/target-hello/wasm32-wasip1/release/hello-wasi.wasm" "$small_wasm"
fi

# The big one: a real CLI from crates.io, `cargo install`ed for wasm32-wasip1.
if [[ -n ${BIG_WASM:-} ]]; then
    big_wasm=$(realpath "$BIG_WASM")
    big_name=$(basename "$big_wasm" .wasm)
else
    big_wasm=$MODULES/bin/$BIG_BIN.wasm
    big_name="$BIG_CRATE ($BIG_BIN)"
    if [[ ! -s $big_wasm ]]; then
        log "building $BIG_CRATE for wasm32-wasip1 (cargo install; several minutes)"
        CARGO_TARGET_DIR=$MODULES/target-big \
            cargo install --locked --target wasm32-wasip1 --root "$MODULES" "$BIG_CRATE"
    fi
fi
if [[ -z ${BIG_ARGS:-} ]]; then
    if [[ $BIG_BIN == rg && -z ${BIG_WASM:-} ]]; then
        BIG_ARGS="-n -i warranty /data/input.txt"
    else
        BIG_ARGS="--version"
    fi
fi
read -r -a big_args <<<"$BIG_ARGS"

# --- a throwaway work folder, removed on exit ----------------------------------------------
work=$(mktemp -d /tmp/berth-wasi-bench.XXXXXX)
export BERTH_ROOT=$work/berth-root
# wasmtime's compile cache (on by default) goes here rather than into ~/.cache.
export XDG_CACHE_HOME=$work/xdg-cache
cgroup_parents=()
for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
    [[ -d ${h}berth ]] || cgroup_parents+=("${h}berth")
done
cleanup() {
    local rc=$?
    set +e
    # The store's run root is on a tmpfs outside the work folder (see README.md).
    if [[ ${KEEP:-0} != 1 && -d ${BERTH_ROOT:-/nonexistent} && -x ${berth_bin:-} ]]; then
        remove_run_root "$berth_bin" "$work"
    fi
    awk -v w="$work" '$5 == w || index($5, w "/") == 1 { print $5 }' /proc/self/mountinfo |
        sort -r | while read -r m; do umount -l "$m"; done
    for d in "${cgroup_parents[@]}"; do
        [[ -d $d ]] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
    if [[ ${KEEP:-0} == 1 ]]; then log "kept $work"; else rm -rf "$work"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the images, and the same files for wasmtime -------------------------------------------
# small: the module alone.
mkdir -p "$work/small"
cp "$small_wasm" "$work/small/app.wasm"
printf 'FROM scratch\nCOPY app.wasm /app.wasm\nENTRYPOINT ["/app.wasm"]\n' >"$work/small/Dockerfile"
# big: the module and a text to search (Debian's GPL-3, 35 KB; else this repository's README).
text=/usr/share/common-licenses/GPL-3
[[ -r $text ]] || text=$repo/README.md
mkdir -p "$work/big/data"
cp "$big_wasm" "$work/big/app.wasm"
cp "$text" "$work/big/data/input.txt"
printf 'FROM scratch\nCOPY app.wasm /app.wasm\nCOPY data/ /data/\nENTRYPOINT ["/app.wasm"]\n' \
    >"$work/big/Dockerfile"
# wasmtime's guest `/`: the image's files, as berth's guest sees them (bar /etc and the like).
mkdir -p "$work/big-root"
cp -r "$work/big/data" "$work/big-root/"

log "berth build (makes wasip1 images and precompiles their modules)"
"$berth_bin" build -q -t bench-hello "$work/small" >/dev/null
"$berth_bin" build -q -t bench-big "$work/big" >/dev/null
log "wasmtime compile"
"$wasmtime_bin" compile "$work/small/app.wasm" -o "$work/small.cwasm"
"$wasmtime_bin" compile "$work/big/app.wasm" -o "$work/big.cwasm"

small_berth="$berth_bin run --rm bench-hello"
small_pre="$wasmtime_bin run --allow-precompiled $work/small.cwasm"
small_wasm_cmd="$wasmtime_bin run -C cache=n $work/small/app.wasm"
big_berth="$berth_bin run --rm bench-big ${big_args[*]}"
big_cold_wt="$wasmtime_bin run -C cache=n --dir $work/big-root::/ $work/big/app.wasm ${big_args[*]}"
big_pre="$wasmtime_bin run --allow-precompiled --dir $work/big-root::/ $work/big.cwasm ${big_args[*]}"
clear_cache="bash -c 'rm -rf $BERTH_ROOT/wasm-cache'"

log "checking that each command runs and that berth and wasmtime print the same"
for pair in "$small_berth|$small_pre" "$small_berth|$small_wasm_cmd" "$big_berth|$big_pre" "$big_berth|$big_cold_wt"; do
    a=${pair%%|*} b=${pair##*|}
    # shellcheck disable=SC2086 # the commands are word lists, as hyperfine -N splits them
    if ! out_a=$($a 2>&1) || ! out_b=$($b 2>&1); then
        log "one of these failed, so there is nothing to measure:"
        log "  $a"
        log "  $b"
        printf '%s\n---\n%s\n' "${out_a:-}" "${out_b:-}" >&2
        exit 1
    fi
    # hello-wasi prints its argv[0]-free greeting; rg prints the same lines for both.
    [[ $out_a == "$out_b" ]] || log "note: the outputs differ: [${out_a:0:200}] vs [${out_b:0:200}]"
done
[[ -n $(ls "$BERTH_ROOT/wasm-cache" 2>/dev/null) ]] ||
    log "note: berth's compile cache ($BERTH_ROOT/wasm-cache) is empty after build and run"

if hyperfine --help 2>/dev/null | grep -q -- '^ *-N'; then noshell=(-N); else noshell=(--shell=none); fi
measure() { # name, runs, warmup, hyperfine args...
    local name=$1 runs=$2 warmup=$3
    shift 3
    # What the steps before wrote (the builds' layers and compiled artifacts, the previous
    # case) goes to disk before a case is timed: its writeback would otherwise land in the
    # berth runs of the next case, which use that disk, and not in wasmtime's. Once per case,
    # not per run: what berth's own runs write stays in its times.
    sync
    hyperfine "${noshell[@]}" --warmup "$warmup" --runs "$runs" \
        --export-json "$work/$name.json" "$@"
}
log "load average before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
log "small module: $(stat -c %s "$small_wasm") bytes; big module $big_name: $(stat -c %s "$big_wasm") bytes"
measure small "$RUNS" "$WARMUP" \
    -n 'berth run --rm' "$small_berth" \
    -n 'wasmtime run (cwasm)' "$small_pre" \
    -n 'wasmtime run (wasm, no cache)' "$small_wasm_cmd"
measure big-cached "$RUNS" "$WARMUP" \
    -n 'berth run --rm' "$big_berth" \
    -n 'wasmtime run (cwasm)' "$big_pre"
# Cold: berth's cache emptied before every run (and its warm-up); wasmtime compiles anyway.
measure big-cold "$COLD_RUNS" 1 \
    --prepare "$clear_cache" -n 'berth run --rm' "$big_berth" \
    --prepare 'true' -n 'wasmtime run (wasm, no cache)' "$big_cold_wt"
log "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

# --- the table ---------------------------------------------------------------------------
# mean and median (ms) of result $2 of file $1.
stat_ms() { jq -r --argjson i "$2" '.results[$i] | "\(.mean * 1000) \(.median * 1000)"' "$work/$1.json"; }
fail=0
row() { # case, peer name, results file, berth index, peer index, aim (or -)
    local bm bd pm pd
    read -r bm bd < <(stat_ms "$3" "$4")
    read -r pm pd < <(stat_ms "$3" "$5")
    awk -v c="$1" -v p="$2" -v bm="$bm" -v bd="$bd" -v pm="$pm" -v pd="$pd" -v aim="$6" 'BEGIN {
        r = bm / pm; rd = bd / pd
        verdict = (aim == "-") ? "-" : sprintf("<= %sx %s", aim, (r <= aim ? "met" : "MISSED"))
        printf "  %-7s %-30s %9.1f %9.1f %9.1f %9.1f %7.2fx %7.2fx  %s\n", c, p, bm, bd, pm, pd, r, rd, verdict
        exit (aim == "-" || r <= aim) ? 0 : 3
    }' || fail=1
}
printf '\nWASI run, berth against the wasmtime CLI (%s); times in ms; ratio = berth/peer\n' "$wasmtime_version"
printf '  %-7s %-30s %9s %9s %9s %9s %8s %8s  %s\n' case peer 'berth' 'berth' 'peer' 'peer' ratio ratio aim
printf '  %-7s %-30s %9s %9s %9s %9s %8s %8s\n' '' '' mean median mean median '(mean)' '(median)'
row small 'wasmtime run --allow-precompiled' small 0 1 "$AIM"
row small 'wasmtime run -C cache=n M.wasm' small 0 2 -
row cached 'wasmtime run --allow-precompiled' big-cached 0 1 "$AIM"
row cold 'wasmtime run -C cache=n M.wasm' big-cold 0 1 -
printf '  small: hello-wasi (%s bytes); cached/cold: %s (%s bytes) %s\n' \
    "$(stat -c %s "$small_wasm")" "$big_name" "$(stat -c %s "$big_wasm")" "${big_args[*]}"
printf '  runs: %s (cold: %s); load average now %s\n' "$RUNS" "$COLD_RUNS" "$(cut -d' ' -f1-3 /proc/loadavg)"
if [[ ${STRICT:-0} == 1 ]]; then exit "$fail"; fi
