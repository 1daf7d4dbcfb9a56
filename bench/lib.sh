# Shared by the bench scripts (sourced).

# remove_run_root BERTH_BIN WORK: removes the run root of the store BERTH_ROOT names, which is
# on a tmpfs outside the work folder WORK (see README.md), with the network namespaces made
# ahead there (mounts). A `--rm` container's init may still be making one: tried again until
# the folder goes. First `system prune` takes down the store's bridges and firewall table,
# which are the host's and would outlive the store's folder.
remove_run_root() {
    "$1" system prune -f >/dev/null 2>&1 || true
    local rr
    rr=$("$1" info --format json 2>/dev/null | sed -n 's/.*"RunRoot":"\([^"]*\)".*/\1/p')
    [[ -n $rr && $rr != "$2"* ]] || return 0
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        for s in "$rr"/netns/spare-*; do umount -l "$s" 2>/dev/null || true; done
        rm -rf "$rr" 2>/dev/null && return 0
        sleep 0.2
    done
}

# berth_binary REPO: sets berth_bin to $BERTH (a prebuilt binary), else builds berth in release
# mode in REPO and uses that.
berth_binary() {
    if [[ -n ${BERTH:-} ]]; then
        berth_bin=$(realpath "$BERTH")
    else
        printf 'building berth (release)\n' >&2
        cargo build --release -p berth-cli --manifest-path "$1/Cargo.toml"
        berth_bin=$1/target/release/berth
    fi
}
