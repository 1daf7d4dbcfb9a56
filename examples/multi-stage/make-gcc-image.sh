#!/usr/bin/env bash
# Makes the compiler base image the multi-stage example builds on: a minimal Debian bookworm
# with gcc and libc6-dev, made by debootstrap from the Debian mirror apt uses on this machine
# and imported with `berth import`. No registry is involved. Run as root.
#
#   bash examples/multi-stage/make-gcc-image.sh [NAME]      # NAME defaults to gcc-bookworm
#
# Idempotent: nothing is done when NAME already exists in the berth root ($BERTH_ROOT or the
# default). The debootstrapped root filesystem is cached as a tarball outside the repository
# ($BERTH_TEST_CACHE, by default /var/cache/berth-test/gcc-bookworm.tar.gz), so a second root on
# the same machine only pays for the import. Delete the tarball to make it afresh.
#
# Environment: BERTH (the berth binary; `berth` on PATH, else this repository's target/debug/berth),
# BERTH_ROOT, BERTH_TEST_CACHE, BERTH_DEBIAN_MIRROR (overrides the mirror found in apt's sources).
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin" # debootstrap and chroot live there

name="${1:-gcc-bookworm}"
repo="$(cd "$(dirname "$0")/../.." && pwd)"
if [[ -z "${BERTH:-}" ]]; then
    if command -v berth >/dev/null 2>&1; then
        BERTH=berth
    elif [[ -x "$repo/target/debug/berth" ]]; then
        BERTH="$repo/target/debug/berth"
    else
        echo "make-gcc-image: no berth binary: set BERTH, put berth on PATH, or run cargo build" >&2
        exit 1
    fi
fi
cache="${BERTH_TEST_CACHE:-/var/cache/berth-test}"
tarball="$cache/gcc-bookworm.tar.gz"
log() { echo "make-gcc-image: $*" >&2; }
# Unmounts what debootstrap may have left mounted in a root filesystem (on failure: proc, sys,
# or a /dev bind-mounted from the host, whose nodes must never be deleted).
unmount_in() {
    local m
    for m in dev/pts dev sys proc; do umount -l "$1/$m" 2>/dev/null || true; done
    if grep -q " $1/" /proc/mounts; then
        log "something is still mounted under $1; not touching it"
        exit 1
    fi
}
# Removes a root filesystem, never crossing into another file system.
discard() {
    unmount_in "$1"
    rm -rf --one-file-system "$1"
}

if "$BERTH" inspect "$name" >/dev/null 2>&1; then
    log "$name is already there"
    exit 0
fi

mkdir -p "$cache"
# One maker at a time per cache (tests run in parallel); the others wait and reuse its tarball.
exec 9>"$cache/gcc-bookworm.lock"
flock 9
if [[ ! -s "$tarball" ]]; then
    if ! command -v debootstrap >/dev/null 2>&1; then
        log "installing debootstrap"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
    fi
    mirror="${BERTH_DEBIAN_MIRROR:-}"
    if [[ -z "$mirror" ]]; then
        # The site apt fetches bookworm's main component from (sources.list or deb822 .sources).
        mirror="$(apt-get indextargets --format '$(SITE)' 'Identifier: Packages' \
            'Codename: bookworm' 'Component: main' 2>/dev/null | head -n 1 || true)"
        mirror="${mirror:-http://deb.debian.org/debian}"
    fi
    started=$SECONDS
    # Leftovers of a maker that was killed (the lock says no other is at work).
    for old in "$cache"/gcc-bookworm.??????; do
        if [[ -d "$old" ]]; then discard "$old"; fi
    done
    rootfs="$(mktemp -d "$cache/gcc-bookworm.XXXXXX")"
    trap 'discard "$rootfs"; rm -f "$tarball.tmp"' EXIT
    log "debootstrap bookworm with gcc and libc6-dev from $mirror (takes a few minutes)"
    if ! debootstrap --variant=minbase --include=gcc,libc6-dev bookworm "$rootfs" "$mirror" \
        >"$cache/debootstrap.log" 2>&1; then
        tail -n 20 "$cache/debootstrap.log" >&2
        log "debootstrap failed; the whole log is in $cache/debootstrap.log"
        exit 1
    fi
    # What a container image does not need: downloaded packages, apt lists, docs, the device
    # nodes (the runtime gives every container its own /dev).
    unmount_in "$rootfs"
    rm -rf --one-file-system "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
        "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
        "$rootfs"/usr/share/locale/* "$rootfs"/dev/* "$rootfs"/var/log/*.log "$rootfs"/debootstrap
    tar --numeric-owner --sort=name -C "$rootfs" -czf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    discard "$rootfs"
    trap - EXIT
    log "cached $tarball ($(du -h "$tarball" | cut -f1)) in $((SECONDS - started)) s"
fi
flock -u 9

started=$SECONDS
"$BERTH" import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' "$tarball" "$name" >/dev/null
log "imported $name in $((SECONDS - started)) s"
