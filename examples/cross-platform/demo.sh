#!/usr/bin/env bash
# One WASI image, three platforms: built once on Linux by berth (its RUN step runs as wasm),
# pushed to a local registry, then pulled and run by berth for Linux x86_64, by berth for
# Linux aarch64 (under qemu-aarch64-static) and by berth.exe for Windows (under wine). Prints
# the image id each one pulled and what each run printed, side by side: the same.
#
# The binaries are built when missing; BERTH, BERTH_AARCH64 and BERTH_EXE name others. Uses
# a folder of its own under /tmp and a registry on a free loopback port.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"

need=()
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
command -v qemu-aarch64-static >/dev/null 2>&1 || need+=(qemu-user-static)
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || need+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || need+=(gcc-mingw-w64-x86-64-posix)
command -v wine >/dev/null 2>&1 || need+=(wine wine64)
command -v curl >/dev/null 2>&1 || need+=(curl)
if ((${#need[@]})); then
    echo "demo: installing ${need[*]}" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
for t in wasm32-wasip1 aarch64-unknown-linux-gnu x86_64-pc-windows-gnu; do
    rustup target list --installed 2>/dev/null | grep -qx "$t" || rustup target add "$t"
done

if [[ -z ${BERTH:-} ]]; then
    cargo build -q --bin berth
    BERTH=$repo/target/debug/berth
fi
if [[ -z ${BERTH_AARCH64:-} ]]; then
    cargo build -q --profile wine --target aarch64-unknown-linux-gnu -p berth-cli
    BERTH_AARCH64=$repo/target/aarch64-unknown-linux-gnu/wine/berth
fi
if [[ -z ${BERTH_EXE:-} ]]; then
    cargo build -q --profile wine --target x86_64-pc-windows-gnu -p berth-cli
    BERTH_EXE=$repo/target/x86_64-pc-windows-gnu/wine/berth.exe
fi
(cd "$here" && cargo build -q --release --target wasm32-wasip1)

work=$(mktemp -d /tmp/berth-cross-platform.XXXXXX)
registry_pid=
cleanup() {
    [[ -n $registry_pid ]] && kill "$registry_pid" 2>/dev/null
    # wine's server keeps the prefix until it ends.
    WINEPREFIX=$work/wine wineserver -k 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

# The three berths, each with a store of its own.
x86() { "$BERTH" --root "$work/x86_64" "$@"; }
arm() { qemu-aarch64-static -L /usr/aarch64-linux-gnu "$BERTH_AARCH64" --root "$work/aarch64" "$@"; }
# Debian's wine lacks bcryptprimitives.dll, which Rust's std imports on Windows: the prefix
# gets a small one (tests/wine/bcryptprimitives.c).
export WINEPREFIX=$work/wine WINEDEBUG=-all
win() { wine "$BERTH_EXE" --root "Z:${work//\//\\}\\windows" "$@" | tr -d '\r'; }
wineboot --init >/dev/null 2>&1
x86_64-w64-mingw32-gcc -shared -O2 -o "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll" \
    tests/wine/bcryptprimitives.c -ladvapi32

# A registry on a free loopback port.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$work/registry"
printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
    "$work/registry" "$port" > "$work/registry.yml"
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break || sleep 0.1; done
image=127.0.0.1:$port/everywhere:1

step "berth build -t $image examples/cross-platform   (on Linux x86_64)"
x86 build -t "$image" "$here"
step berth push "$image"
x86 push "$image"

step "berth pull, then berth run --rm, on each platform"
x86 pull -q "$image" >/dev/null
x86 run --rm "$image" >"$work/out.x86_64"
arm pull -q "$image" >/dev/null
# qemu-user refuses namespaces: the aarch64 berth runs the guest with WASI's isolation alone.
arm run --rm --isolation wasi "$image" >"$work/out.aarch64"
win pull -q "$image" >/dev/null
win run --rm "$image" >"$work/out.windows"

printf '\n%-22s %-14s %s\n' PLATFORM "IMAGE ID" "OUTPUT (first line)"
ids=()
for p in x86_64 aarch64 windows; do
    case $p in
    x86_64) id=$(x86 images -q "$image") name="linux/amd64" ;;
    aarch64) id=$(arm images -q "$image") name="linux/arm64 (qemu)" ;;
    windows) id=$(win images -q "$image") name="windows/amd64 (wine)" ;;
    esac
    ids+=("$id")
    printf '%-22s %-14s %s\n' "$name" "$id" "$(head -1 "$work/out.$p")"
done
echo
echo "what each printed:"
cat "$work/out.x86_64"
if [[ ${ids[0]} == "${ids[1]}" && ${ids[0]} == "${ids[2]}" ]] &&
    cmp -s "$work/out.x86_64" "$work/out.aarch64" && cmp -s "$work/out.x86_64" "$work/out.windows"; then
    echo "the same image (${ids[0]}) and the same output on all three"
else
    echo "the platforms differ:" >&2
    diff "$work/out.x86_64" "$work/out.aarch64" >&2 || true
    diff "$work/out.x86_64" "$work/out.windows" >&2 || true
    exit 1
fi
