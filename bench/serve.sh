#!/usr/bin/env bash
# HTTP functions, side by side on this machine: `berth serve` against its peers, under load
# from wrk (issue 18).
#
#   wasi:http  the same component file (examples/hello-http built for wasm32-wasip2) served by
#                berth serve --listen 127.0.0.1:0 bench-http   (an image built from that file)
#                wasmtime serve -S cli --addr 127.0.0.1:0 F.wasm (wasmtime-cli 48, the peer)
#              wrk -c 1 and -c 64. Aim: berth >= 1.2x wasmtime serve's requests/s; floor:
#              >= 1.0x with p99 at most 10% worse.
#   container  a native image as a function: bench/serve-cold.sh (ONLY=container runs it)
#   wagi       the same preview-1 module (examples/wagi-hello built for wasm32-wasip1) run
#              once per request as CGI:
#                berth serve --listen 127.0.0.1:0 bench-wagi   (the image at /...)
#                busybox httpd, whose cgi-bin/wagi is a shell script that execs
#                `wasmtime run --allow-precompiled M.cwasm` (precompiled with `wasmtime
#                compile`, the peer at its fastest)
#              both at GET /cgi-bin/wagi; wrk -c 1 and -c 8. Aim: berth >= 20x the requests/s.
#
# Every measured run is `wrk -t1 -cN -dDs --latency`, after a warm-up of WARMUP seconds at
# the same concurrency. A single 10 s run's p99 at -c 1 swings by 2x on this VM for either
# server, so each scenario runs ROUNDS times, the two servers taking turns (each started
# afresh for its turn); the table gives the median requests/s and the median p99 of each
# side, and berth/peer of those medians.
# Timings are reported, never asserted: the exit status is 0 whether or not an aim is met
# (STRICT=1 makes a missed aim exit 1).
#
# Run on Debian 12:  bash bench/serve.sh
# Knobs (environment):
#   DURATION (10)   seconds of each measured wrk run;  WARMUP (2)  seconds of its warm-up
#   ROUNDS (3)      measured runs of each side at each concurrency (medians are reported)
#   HTTP_CONNS ("1 64")  WAGI_CONNS ("1 8")  the wrk concurrencies of each scenario
#   SERVER_CPU (0) and CLIENT_CPU (1)  the cores the servers and wrk are pinned to (taskset)
#   BERTH     a prebuilt berth binary (default target/release/berth, built when missing)
#   WASMTIME  the wasmtime CLI (default: `command -v wasmtime`, else
#             /opt/wasmtime-cli/bin/wasmtime, else installed there with
#             `cargo install --locked wasmtime-cli@48.0.8 --root /opt/wasmtime-cli`)
#   MODULES   where the two examples are built and kept (/tmp/berth-bench-serve)
#   ONLY=peers  measure the peers alone (no berth needed); ONLY=http or ONLY=wagi  one scenario
#   KEEP=1    keep the work folder (wrk outputs, access log);  STRICT=1  exit 1 on a missed aim
#
# Fairness, and what each number covers:
# - Servers listen on 127.0.0.1 only; the server (and every process it starts: busybox's CGI
#   children) is pinned to SERVER_CPU, wrk (one thread) to CLIENT_CPU, so the load generator
#   does not take the server's core.
# - Both wasi:http servers run the very same .wasm file, compiled by the same wasmtime (48)
#   with cranelift, and make a fresh instance per request: wasmtime serve does by default for
#   a WASIp2 component (--max-instance-reuse-count 1; nothing else is passed), berth serve
#   always. Each compiles the component once at start (berth: at `berth build`, cached).
#   wasmtime serve writes nothing per request; berth serve writes its access log, one line a
#   request, to a file in the work folder (the issue's floor is "with the access log on").
# - WAGI: busybox httpd forks a shell per request that execs wasmtime, which maps the
#   precompiled module; the guest gets the CGI variables busybox sets (--env NAME each) and
#   the module's folder as its `/`. busybox httpd closes the connection after each response
#   (no keep-alive), so wrk reconnects for every request there; that is part of the peer.
# - wasmtime's own compile cache would write under ~/.cache: XDG_CACHE_HOME points into the
#   work folder.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
repo=$PWD

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-3}
HTTP_CONNS=${HTTP_CONNS:-1 64}
WAGI_CONNS=${WAGI_CONNS:-1 8}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
MODULES=${MODULES:-/tmp/berth-bench-serve}
ONLY=${ONLY:-all}
WASMTIME_VERSION=48.0.8
HTTP_AIM=1.2 HTTP_FLOOR=1.0 HTTP_P99_FLOOR=1.1 WAGI_AIM=20

log() { printf 'serve-bench: %s\n' "$*" >&2; }

case $ONLY in
all | peers | http | wagi) ;;
container) exec bash bench/serve-cold.sh ;;
*) log "ONLY is all, peers, http, wagi or container, not '$ONLY'"; exit 1 ;;
esac
with_berth=1
[[ $ONLY == peers ]] && with_berth=0
run_http=1 run_wagi=1
[[ $ONLY == wagi ]] && run_http=0
[[ $ONLY == http ]] && run_wagi=0

# --- what the benchmark needs --------------------------------------------------------------
need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v taskset >/dev/null 2>&1 || need+=(util-linux)
{ command -v busybox >/dev/null 2>&1 && busybox --list | grep -x httpd >/dev/null; } || need+=(busybox)
if ((${#need[@]})); then
    log "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
for t in wasm32-wasip1 wasm32-wasip2; do
    if ! rustup target list --installed 2>/dev/null | grep -qx "$t"; then
        log "adding the $t Rust target"
        rustup target add "$t"
    fi
done
if (($(nproc) < 2)); then
    log "note: one CPU only: server and wrk share it (SERVER_CPU=CLIENT_CPU=0)"
    SERVER_CPU=0 CLIENT_CPU=0
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

berth_bin=
if ((with_berth)); then
    if [[ -n ${BERTH:-} ]]; then
        berth_bin=$(realpath "$BERTH")
    elif [[ -x target/release/berth ]]; then
        berth_bin=$repo/target/release/berth
    else
        log "building berth (release; this compiles wasmtime: several minutes)"
        cargo build --release -p berth-cli
        berth_bin=$repo/target/release/berth
    fi
fi

# --- the modules (kept in $MODULES between runs) -------------------------------------------
# Each example is built from a copy, so the repository stays untouched.
build_example() { # example, target, output file name; prints the module's path
    local ex=$1 target=$2 file=$3 out=$MODULES/$3
    if [[ ! -s $out || -n $(find "examples/$ex/src" "examples/$ex/Cargo.toml" -newer "$out" 2>/dev/null) ]]; then
        log "building examples/$ex for $target"
        rm -rf "$MODULES/$ex-src"
        mkdir -p "$MODULES/$ex-src"
        cp -r "examples/$ex/Cargo.toml" "examples/$ex/src" "$MODULES/$ex-src/"
        [[ -f examples/$ex/Cargo.lock ]] && cp "examples/$ex/Cargo.lock" "$MODULES/$ex-src/"
        (cd "$MODULES/$ex-src" && CARGO_TARGET_DIR=$MODULES/target-$ex \
            cargo build --release --target "$target" -q ${JOBS:+-j "$JOBS"})
        cp "$MODULES/target-$ex/$target/release/$file" "$out"
    fi
    printf '%s\n' "$out"
}
mkdir -p "$MODULES"
((run_http)) && http_wasm=$(build_example hello-http wasm32-wasip2 hello_http.wasm)
((run_wagi)) && wagi_wasm=$(build_example wagi-hello wasm32-wasip1 wagi-hello.wasm)

# --- a throwaway work folder, removed on exit ----------------------------------------------
work=$(mktemp -d /tmp/berth-serve-bench.XXXXXX)
export BERTH_ROOT=$work/berth-root
export XDG_CACHE_HOME=$work/xdg-cache
server_pid=
stop_server() {
    [[ -n $server_pid ]] || return 0
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
}
cleanup() {
    local rc=$?
    set +e
    stop_server
    if [[ ${KEEP:-0} != 1 && -d ${BERTH_ROOT:-/nonexistent} && -n $berth_bin ]]; then
        remove_run_root "$berth_bin" "$work"
    fi
    if [[ ${KEEP:-0} == 1 ]]; then log "kept $work"; else rm -rf "$work"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_server NAME PATTERN CMD...: starts CMD pinned to SERVER_CPU, its stderr to
# $work/NAME.stderr, and waits (up to a minute: a server may compile first) for a line
# matching PATTERN (an ERE whose first http://HOST:PORT is the address); sets server_url.
start_server() {
    local name=$1 pattern=$2 errf=$work/$1.stderr
    shift 2
    : >"$errf"
    taskset -c "$SERVER_CPU" "$@" >"$work/$name.stdout" 2>"$errf" &
    server_pid=$!
    for _ in $(seq 600); do
        if grep -qE "$pattern" "$errf"; then
            server_url=$(grep -oE 'http://[0-9.]+:[0-9]+' "$errf" | head -n1)
            return 0
        fi
        if ! kill -0 "$server_pid" 2>/dev/null; then
            wait "$server_pid" 2>/dev/null || true
            server_pid=
            log "$name did not start: $*"
            cat "$errf" >&2
            return 1
        fi
        sleep 0.1
    done
    log "$name printed no address within a minute: $*"
    cat "$errf" >&2
    stop_server
    return 1
}

# wrk_run NAME URL CONNS: a warm-up, then the measured run into $work/NAME.wrk.
wrk_run() {
    local name=$1 url=$2 c=$3
    taskset -c "$CLIENT_CPU" wrk -t1 -c"$c" -d"${WARMUP}s" "$url" >/dev/null
    taskset -c "$CLIENT_CPU" wrk -t1 -c"$c" -d"${DURATION}s" --latency "$url" >"$work/$name.wrk"
    read -r rps p99 errs closed < <(wrk_stats "$name")
    log "  $name: $rps requests/s, p99 $p99 ms, errors $errs, connections closed by the server $closed"
}

# wrk_stats NAME: "requests/s p99_ms errors closed" of $work/NAME.wrk ("- - - -" when it is
# missing). errors: non-2xx/3xx responses, and connect, write and timeout errors. closed: wrk's
# "read" errors, a connection the server closed; busybox httpd closes one after every
# response (it ends the body so), which wrk counts as an error each time.
wrk_stats() {
    local f=$work/$1.wrk
    [[ -s $f ]] || { echo "- - - -"; return; }
    awk '
        function ms(v) {
            if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
            if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
            if (v ~ /m$/) return substr(v, 1, length(v) - 1) * 60000
            if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
            return v + 0
        }
        /Requests\/sec:/ { rps = $2 }
        $1 == "99%" { p99 = ms($2) }
        /Non-2xx or 3xx responses:/ { errs += $NF }
        /Socket errors:/ { gsub(/,/, ""); errs += $4 + $8 + $10; closed += $6 }
        END { printf "%s %s %d %d\n", rps, p99, errs, closed }
    ' "$f"
}

# median_stats NAME: "requests/s p99_ms errors closed" over the rounds NAME-r1..: the median
# requests/s and the median p99 (each on its own), the errors and closes summed.
median_stats() {
    local r rows=()
    for r in $(seq "$ROUNDS"); do
        [[ -s $work/$1-r$r.wrk ]] && rows+=("$(wrk_stats "$1-r$r")")
    done
    ((${#rows[@]})) || { echo "- - - -"; return; }
    printf '%s\n' "${rows[@]}" | awk '
        { rps[NR] = $1; p99[NR] = $2; errs += $3; closed += $4 }
        function median(a, n,   i, j, t) {
            for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
            return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        END { printf "%s %s %d %d\n", median(rps, NR), median(p99, NR), errs, closed }'
}

# check_body NAME URL: GETs URL once (must be a 200) and keeps the body in $work/NAME.body.
check_body() {
    if ! curl -fsS -H 'user-agent: serve-bench' -o "$work/$1.body" "$2"; then
        log "$1: GET $2 failed, so there is nothing to measure"
        return 1
    fi
}
compare_bodies() { # A B: notes whether the two bodies are the same
    if cmp -s "$work/$1.body" "$work/$2.body"; then
        log "$1 and $2 answer the same body ($(wc -c <"$work/$1.body") bytes)"
    else
        log "note: the bodies of $1 and $2 differ:"
        diff "$work/$1.body" "$work/$2.body" | sed 's/^/    /' >&2 || true
    fi
}

# --- images and the CGI folder -------------------------------------------------------------
if ((with_berth)); then
    log "berth build (makes the images and precompiles their modules)"
    if ((run_http)); then
        mkdir -p "$work/http-ctx"
        cp "$http_wasm" "$work/http-ctx/hello-http.wasm"
        printf 'FROM scratch\nCOPY hello-http.wasm /hello-http.wasm\nENTRYPOINT ["/hello-http.wasm"]\n' \
            >"$work/http-ctx/Dockerfile"
        "$berth_bin" build -q -t bench-http "$work/http-ctx" >/dev/null
    fi
    if ((run_wagi)); then
        mkdir -p "$work/wagi-ctx"
        cp "$wagi_wasm" "$work/wagi-ctx/wagi-hello.wasm"
        printf 'FROM scratch\nCOPY wagi-hello.wasm /wagi-hello.wasm\nENTRYPOINT ["/wagi-hello.wasm"]\n' \
            >"$work/wagi-ctx/Dockerfile"
        "$berth_bin" build -q -t bench-wagi "$work/wagi-ctx" >/dev/null
    fi
fi
if ((run_wagi)); then
    # The CGI peer: the module precompiled, its folder as the guest's `/` (as berth's guest
    # sees its image), and a script that hands busybox's CGI variables through.
    mkdir -p "$work/cgi-root/cgi-bin" "$work/wagi-guest-root"
    "$wasmtime_bin" compile "$wagi_wasm" -o "$work/wagi-hello.cwasm"
    cp "$wagi_wasm" "$work/wagi-guest-root/wagi-hello.wasm"
    envs=""
    for v in AUTH_TYPE CONTENT_LENGTH CONTENT_TYPE GATEWAY_INTERFACE PATH_INFO QUERY_STRING \
        REMOTE_ADDR REMOTE_PORT REMOTE_USER REQUEST_METHOD REQUEST_URI SCRIPT_NAME \
        SERVER_PROTOCOL SERVER_SOFTWARE HTTP_HOST HTTP_USER_AGENT; do
        envs+=" --env $v"
    done
    cat >"$work/cgi-root/cgi-bin/wagi" <<EOF
#!/bin/sh
# One wasmtime per request: the module as a CGI script (busybox httpd sets the variables).
exec $wasmtime_bin run --allow-precompiled --dir $work/wagi-guest-root::/$envs \\
    --env X_MATCHED_ROUTE=/... --argv0 /wagi-hello.wasm $work/wagi-hello.cwasm
EOF
    chmod +x "$work/cgi-root/cgi-bin/wagi"
fi

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average before: $load_before on $(nproc) cores; server on CPU $SERVER_CPU, wrk on CPU $CLIENT_CPU"
log "runs: ${WARMUP}s warm-up, then ${DURATION}s measured, each"

# --- wasi:http -----------------------------------------------------------------------------
if ((run_http)); then
    for c in $HTTP_CONNS; do
        for r in $(seq "$ROUNDS"); do
            log "wasi:http -c $c, round $r of $ROUNDS: wasmtime serve -S cli"
            start_server wasmtime-serve '^Serving HTTP on http://' \
                "$wasmtime_bin" serve -S cli --addr 127.0.0.1:0 "$http_wasm"
            check_body wasmtime-serve "$server_url/"
            wrk_run "http-wasmtime-c$c-r$r" "$server_url/" "$c"
            stop_server
            ((with_berth)) || continue
            log "wasi:http -c $c, round $r of $ROUNDS: berth serve (access log to $work/berth-http.stderr)"
            start_server berth-http '^berth serve: listening on http://' \
                "$berth_bin" serve --listen 127.0.0.1:0 bench-http
            check_body berth-http "$server_url/"
            compare_bodies berth-http wasmtime-serve
            wrk_run "http-berth-c$c-r$r" "$server_url/" "$c"
            stop_server
            log "berth's access log: $(grep -c . "$work/berth-http.stderr") lines, the last: $(tail -n1 "$work/berth-http.stderr")"
        done
    done
fi

# --- WAGI ----------------------------------------------------------------------------------
start_busybox() { # busybox httpd prints nothing when ready (-vv logs each request): poll
    local port
    port=$(free_port)
    taskset -c "$SERVER_CPU" busybox httpd -f -p "127.0.0.1:$port" -h "$work/cgi-root" \
        >"$work/busybox.stdout" 2>"$work/busybox.stderr" &
    server_pid=$!
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$port/" && break
        sleep 0.1
    done
    server_url=http://127.0.0.1:$port
}
if ((run_wagi)); then
    for c in $WAGI_CONNS; do
        for r in $(seq "$ROUNDS"); do
            log "wagi -c $c, round $r of $ROUNDS: busybox httpd with cgi-bin/wagi (wasmtime run of the precompiled module)"
            start_busybox
            check_body busybox-cgi "$server_url/cgi-bin/wagi"
            wrk_run "wagi-cgi-c$c-r$r" "$server_url/cgi-bin/wagi" "$c"
            stop_server
            ((with_berth)) || continue
            log "wagi -c $c, round $r of $ROUNDS: berth serve (access log to $work/berth-wagi.stderr)"
            start_server berth-wagi '^berth serve: listening on http://' \
                "$berth_bin" serve --listen 127.0.0.1:0 bench-wagi
            check_body berth-wagi "$server_url/cgi-bin/wagi"
            compare_bodies berth-wagi busybox-cgi
            wrk_run "wagi-berth-c$c-r$r" "$server_url/cgi-bin/wagi" "$c"
            stop_server
        done
    done
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# --- the tables ----------------------------------------------------------------------------
fail=0
# row SCENARIO CONNS BERTH_RUN PEER_RUN AIM FLOOR P99_FLOOR (FLOOR and P99_FLOOR may be -)
row() {
    local br bp be bc pr pp pe pc
    read -r br bp be bc < <(median_stats "$3")
    read -r pr pp pe pc < <(median_stats "$4")
    awk -v c="$2" -v br="$br" -v bp="$bp" -v be="$be" -v bc="$bc" -v pr="$pr" -v pp="$pp" -v pe="$pe" \
        -v aim="$5" -v floor="$6" -v pfloor="$7" 'BEGIN {
        if (br == "-" || pr == "-") {
            printf "  %5s %10s %9s %6s %10s %9s %6s %8s %8s  %s\n", c, br, bp, be, pr, pp, pe, "-", "-", "(berth not measured)"
            exit 0
        }
        r = br / pr; rp = bp / pp
        v = sprintf("aim >= %sx %s", aim, (r >= aim ? "met" : "MISSED"))
        if (floor != "-")
            v = v sprintf("; floor (>= %sx, p99 <= %sx) %s", floor, pfloor, (r >= floor && rp <= pfloor ? "held" : "BROKEN"))
        if (be > 0) v = v "; berth had errors"
        # berth keeps connections alive: any it closed is worth a look.
        if (bc > 0) v = v sprintf("; berth closed %d connections", bc)
        printf "  %5s %10.0f %9.2f %6d %10.0f %9.2f %6d %7.2fx %7.2fx  %s\n", c, br, bp, be, pr, pp, pe, r, rp, v
        exit (r >= aim) ? 0 : 3
    }' || fail=1
}
header() {
    printf '  %5s %10s %9s %6s %10s %9s %6s %8s %8s  %s\n' conns 'berth' 'berth' 'berth' 'peer' 'peer' 'peer' 'rps' 'p99' 'verdict'
    printf '  %5s %10s %9s %6s %10s %9s %6s %8s %8s\n' '' 'req/s' 'p99 ms' 'errors' 'req/s' 'p99 ms' 'errors' 'ratio' 'ratio'
}
# errors: non-2xx responses and socket errors, bar the server closing a connection (see wrk_stats)
if ((run_http)); then
    printf '\nwasi:http: berth serve against wasmtime serve -S cli (%s); ratio = berth/peer\n' "$wasmtime_version"
    header
    for c in $HTTP_CONNS; do
        row http "$c" "http-berth-c$c" "http-wasmtime-c$c" "$HTTP_AIM" "$HTTP_FLOOR" "$HTTP_P99_FLOOR"
    done
    printf '  the same component (%s bytes); berth'"'"'s access log on (a file); fresh instance per request on both\n' \
        "$(stat -c %s "$http_wasm")"
fi
if ((run_wagi)); then
    printf '\nWAGI: berth serve against busybox httpd + cgi-bin running wasmtime run (precompiled); ratio = berth/peer\n'
    header
    for c in $WAGI_CONNS; do
        row wagi "$c" "wagi-berth-c$c" "wagi-cgi-c$c" "$WAGI_AIM" - -
    done
    printf '  the same module (%s bytes); GET /cgi-bin/wagi on both; busybox closes each connection\n' \
        "$(stat -c %s "$wagi_wasm")"
fi
printf '  medians of %s rounds of wrk -t1, %ss after a %ss warm-up; server on CPU %s, wrk on CPU %s; load average %s before, %s after\n' \
    "$ROUNDS" "$DURATION" "$WARMUP" "$SERVER_CPU" "$CLIENT_CPU" "$load_before" "$load_after"
if [[ ${STRICT:-0} == 1 ]]; then exit "$fail"; fi
