#!/usr/bin/env bash
# `berth push` and `berth pull` against `skopeo copy`, side by side on this machine, to and
# from the same local registry (Debian's `docker-registry` on 127.0.0.1), with two images:
#
#   large   3 layers of 50 MB of random bytes each
#   small   30 layers of one small file each (4 to 64 KB)
#
# measured with hyperfine; the ratios skopeo/berth are printed (aim: >= 1x, berth at least as
# fast, on all four). Timings are reported, never asserted: the exit status is 0 whether or not
# the aims are met (STRICT=1 makes a missed aim exit 1).
#
# Run as root on Debian 12:  bash bench/registry.sh
# Knobs: RUNS (5), WARMUP (1), BERTH (a prebuilt berth binary: skips cargo), KEEP=1, STRICT=1.
#
# Fairness:
# - push: both send the same blobs (skopeo from an OCI layout written by `berth save`, berth
#   from its store) to the same repository of a registry whose storage is wiped before every
#   run (hyperfine --prepare), so every blob is uploaded every time.
# - pull: skopeo copies into a fresh `oci:` layout; berth pulls into a fresh root. berth does
#   more: it also unpacks every layer into its snapshot (ready to run), which skopeo does not.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
repo=$PWD
RUNS=${RUNS:-5}
WARMUP=${WARMUP:-1}
log() { printf 'registry-bench: %s\n' "$*" >&2; }

if [[ $(id -u) != 0 ]]; then
    log "run me as root"
    exit 1
fi
for pkg in hyperfine:hyperfine skopeo:skopeo jq:jq docker-registry:docker-registry curl:curl; do
    command -v "${pkg%%:*}" >/dev/null || { log "installing ${pkg##*:}"; apt-get install -y -qq "${pkg##*:}" >/dev/null; }
done
if [[ -n ${BERTH:-} ]]; then
    berth_bin=$(realpath "$BERTH")
else
    log "building berth (release)"
    cargo build --release -p berth-cli
    berth_bin=${CARGO_TARGET_DIR:-$repo/target}/release/berth
fi

work=$(mktemp -d /tmp/berth-registry-bench.XXXXXX)
export BERTH_ROOT=$work/berth-root
export DOCKER_CONFIG=$work/docker-config
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
reg=127.0.0.1:$port

# --- the registry, and a script that wipes and restarts it ------------------------------------
cat >"$work/registry.yml" <<YAML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/registry-data
http:
  addr: $reg
YAML
cat >"$work/reset-registry.sh" <<SCRIPT
#!/usr/bin/env bash
set -e
if [[ -f $work/registry.pid ]]; then
    kill \$(cat $work/registry.pid) 2>/dev/null || true
    while kill -0 \$(cat $work/registry.pid) 2>/dev/null; do sleep 0.01; done
fi
rm -rf $work/registry-data
docker-registry serve $work/registry.yml >>$work/registry.log 2>&1 &
echo \$! >$work/registry.pid
until curl -sf http://$reg/v2/ >/dev/null; do sleep 0.02; done
SCRIPT
chmod +x "$work/reset-registry.sh"

cleanup() {
    local rc=$?
    set +e
    # The store's run root is on a tmpfs outside the work folder (see README.md).
    if [[ ${KEEP:-0} != 1 && -d ${BERTH_ROOT:-/nonexistent} && -x ${berth_bin:-} ]]; then
        remove_run_root "$berth_bin" "$work"
    fi
    [[ -f $work/registry.pid ]] && kill "$(cat "$work/registry.pid")" 2>/dev/null
    if [[ ${KEEP:-0} == 1 ]]; then log "kept $work"; else rm -rf "$work"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
"$work/reset-registry.sh"

# --- the images --------------------------------------------------------------------------------
log "making the images (3 x 50 MB random layers; 30 small layers)"
mkdir -p "$work/large" "$work/small"
{
    echo "FROM scratch"
    for i in 1 2 3; do
        head -c 50M /dev/urandom >"$work/large/blob$i"
        echo "COPY blob$i /blob$i"
    done
} >"$work/large/Dockerfile"
{
    echo "FROM scratch"
    for i in $(seq 1 30); do
        head -c $(((i % 16 + 1) * 4096)) /dev/urandom >"$work/small/file$i"
        echo "COPY file$i /file$i"
    done
} >"$work/small/Dockerfile"
for img in large small; do
    "$berth_bin" build -q -t "$reg/bench/$img:1" "$work/$img" >/dev/null
    "$berth_bin" save -o "$work/$img.tar" "$reg/bench/$img:1"
    mkdir -p "$work/layout-$img"
    tar -xf "$work/$img.tar" -C "$work/layout-$img"
done

berth_push() { echo "$berth_bin push -q $reg/bench/$1:1"; }
skopeo_push() { echo "skopeo copy -q --dest-tls-verify=false oci:$work/layout-$1:1 docker://$reg/bench/$1:1"; }
berth_pull() { echo "$berth_bin --root $work/pull-root pull -q $reg/bench/$1:1"; }
skopeo_pull() { echo "skopeo copy -q --src-tls-verify=false docker://$reg/bench/$1:1 oci:$work/skopeo-out:1"; }

log "checking that every command works"
for img in large small; do
    $(berth_push "$img") >/dev/null
    "$work/reset-registry.sh"
    $(skopeo_push "$img") >/dev/null
    $(berth_pull "$img") >/dev/null
    rm -rf "$work/pull-root"
    $(skopeo_pull "$img") >/dev/null
    rm -rf "$work/skopeo-out"
done

if hyperfine --help 2>/dev/null | grep -q -- '^ *-N'; then noshell=(-N); else noshell=(--shell=none); fi
measure() { # name, extra hyperfine args...
    local name=$1
    shift
    hyperfine "${noshell[@]}" --warmup "$WARMUP" --runs "$RUNS" --export-json "$work/$name.json" "$@"
}
log "load average before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
for img in large small; do
    measure "push-$img" --prepare "$work/reset-registry.sh" \
        -n berth "$(berth_push "$img")" -n skopeo "$(skopeo_push "$img")"
done
# The registry holds both images for the pulls.
for img in large small; do $(berth_push "$img") >/dev/null; done
for img in large small; do
    measure "pull-$img" --prepare "rm -rf $work/pull-root $work/skopeo-out" \
        -n berth "$(berth_pull "$img")" -n skopeo "$(skopeo_pull "$img")"
done
log "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

ratio() { jq -r '[.results[] | {(.command): .mean}] | add | (.skopeo / .berth * 100 | round / 100)' "$work/$1.json"; }
mean() { jq -r --arg c "$2" '.results[] | select(.command == $c) | .mean * 1000 | round' "$work/$1.json"; }
printf '\nskopeo/berth (mean time ratio; higher means berth is faster; aim >= 1x)\n'
fail=0
for name in push-large push-small pull-large pull-small; do
    r=$(ratio "$name")
    met=$(awk -v r="$r" 'BEGIN { print (r >= 1) ? "met" : "MISSED" }')
    printf '  %-11s %6sx   berth %5s ms, skopeo %5s ms  (%s)\n' "$name" "$r" \
        "$(mean "$name" berth)" "$(mean "$name" skopeo)" "$met"
    [[ $met == met ]] || fail=1
done
printf '  (berth pull also unpacks every layer into a snapshot, ready to run; skopeo only stores the blobs)\n'
if [[ ${STRICT:-0} == 1 ]]; then exit "$fail"; fi
