#!/usr/bin/env bash
# Runs every test of the workspace. Installs what the tests need first when it is missing
# (Debian packages; run as root on a fresh machine), so a fresh clone needs nothing else.
# The multi-stage example test debootstraps a gcc image once per machine (a few minutes; the
# tarball is cached in /var/cache/berth-test, or $BERTH_TEST_CACHE).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
command -v umoci >/dev/null 2>&1 || need+=(umoci)
command -v zstd >/dev/null 2>&1 || need+=(zstd)
# The proxy's tests serve through real network namespaces: python3 servers, `ip` to check lo.
[ -x /usr/bin/python3 ] || need+=(python3)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
# Bridge networks (tests/network.rs): their NAT and forwarding rules go through nft.
[ -x /usr/sbin/nft ] || need+=(nftables)
# The registry tests: the distribution registry, htpasswd for basic auth, openssl for the test
# CA and token keys, curl to read a digest.
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || need+=(apache2-utils)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v curl >/dev/null 2>&1 || need+=(curl)
# tests/hardening.rs compiles its attack programs (tests/attacks/*.c) statically.
command -v gcc >/dev/null 2>&1 || need+=(gcc)
dpkg -s libc6-dev >/dev/null 2>&1 || need+=(libc6-dev)
# The multi-stage example's compiler image (examples/multi-stage/make-gcc-image.sh).
dpkg -s debootstrap >/dev/null 2>&1 || need+=(debootstrap)
# berth.exe: cross-compiled with mingw-w64 and run under wine by tests/windows.rs.
command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || need+=(gcc-mingw-w64-x86-64-posix)
command -v wine >/dev/null 2>&1 || need+=(wine wine64)
# tests/aarch64.rs: berth cross-built for aarch64 (Debian's cross gcc) and run under qemu-user.
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || need+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v qemu-aarch64-static >/dev/null 2>&1 || need+=(qemu-user-static)
# tests/shim.rs: containerd-shim-berth-v1 under containerd and ctr; `ip netns` for a pod's netns.
command -v containerd >/dev/null 2>&1 || need+=(containerd)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
if ((${#need[@]})); then
    echo "tests/run.sh: installing ${need[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The WASI tests build their guests (tests/guests, examples/hello-wasi) for the wasm targets.
for t in wasm32-wasip1 wasm32-wasip2 x86_64-pc-windows-gnu aarch64-unknown-linux-gnu; do
    rustup target list --installed 2>/dev/null | grep -qx "$t" || rustup target add "$t"
done

# A CI run builds everything once from nothing: incremental compilation would only add work.
if [[ ${CI:-} == true ]]; then
    export CARGO_INCREMENTAL=0
fi

# Without Linux namespaces, berth runs WASI images only: tests/windows.rs runs this under wine
# (the `wine` profile: dependencies unoptimized, which halves this build).
cargo build --profile wine --target x86_64-pc-windows-gnu -p berth-cli
# The aarch64 Linux build, with the same profile, for tests/aarch64.rs (qemu-user).
cargo build --profile wine --target aarch64-unknown-linux-gnu -p berth-cli

# With BERTH_LINT=1 (.ci/run), the workspace's crates are compiled through clippy-driver with
# every warning an error: `cargo clippy --workspace --all-targets -D warnings` in the same build,
# rather than a second pass over every dependency.
if [[ ${BERTH_LINT:-} == 1 ]]; then
    RUSTC_WORKSPACE_WRAPPER=$(rustup which clippy-driver)
    export RUSTC_WORKSPACE_WRAPPER
    export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
fi

# `cargo test` builds other packages' binaries only as test harnesses: tests/shim.rs runs the
# real shim, built here beside berth.
cargo build -p berth-shim --bin containerd-shim-berth-v1

cargo test --workspace --all-targets "$@"

