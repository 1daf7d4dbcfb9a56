#!/usr/bin/env bash
# The berth demo: builds berth, makes a busybox image from Debian's busybox-static with
# `berth import`, shows the image commands a Docker user knows, builds a Dockerfile, runs a
# native container, two that find each other by name on a network, a WASI one, and serves an
# HTTP function (a wasi:http component, then a native app as a scale-to-zero function in a
# detached server). Uses a root of its own under /tmp
# so it leaves your images alone.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
# Bridge networks' NAT rules.
[ -x /usr/sbin/nft ] || need+=(nftables)
if ((${#need[@]})); then
    echo "demo: installing ${need[*]}" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
for t in wasm32-wasip1 wasm32-wasip2; do
    rustup target list --installed 2>/dev/null | grep -qx "$t" || rustup target add "$t"
done
cargo build -q --bin berth
# The WASI examples' programs (a module and a wasi:http component), built as their READMEs say.
(cd examples/hello-wasi && cargo build -q --release --target wasm32-wasip1)
(cd examples/hello-http && cargo build -q --release --target wasm32-wasip2)
berth() { ./target/debug/berth "$@"; }
export BERTH_ROOT="${BERTH_ROOT:-/tmp/berth-demo}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

# A minimal root filesystem: busybox and its applets.
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/tmp"
cp /bin/busybox "$work/rootfs/bin/"
for a in sh ls cat echo httpd hostname ps sleep wget; do ln -s busybox "$work/rootfs/bin/$a"; done
mkdir -p "$work/rootfs/var/www" && echo 'hello from a berth container' > "$work/rootfs/var/www/index.html"
echo 'root:x:0:0:root:/root:/bin/sh' > "$work/rootfs/etc/passwd"
tar -C "$work/rootfs" -czf "$work/rootfs.tar.gz" .

step berth import --change 'CMD ["/bin/sh"]' rootfs.tar.gz busybox:demo
berth import --change 'CMD ["/bin/sh"]' "$work/rootfs.tar.gz" busybox:demo
step berth tag busybox:demo localhost:5000/busybox:1
berth tag busybox:demo localhost:5000/busybox:1
step berth images
berth images
step berth history busybox:demo
berth history busybox:demo
step "berth inspect busybox:demo  (Config only)"
berth inspect busybox:demo | sed -n '/"Config"/,/}/p'
step berth save -o busybox.tar busybox:demo
berth save -o "$work/busybox.tar" busybox:demo
if command -v skopeo >/dev/null; then
    step skopeo inspect oci-archive:busybox.tar
    skopeo inspect "oci-archive:$work/busybox.tar" | head -8
fi
step berth rmi localhost:5000/busybox:1 busybox:demo
berth rmi localhost:5000/busybox:1 busybox:demo
step berth load -i busybox.tar
berth load -i "$work/busybox.tar"
step berth run --rm busybox:demo sh -c 'echo "hello from $(hostname), I am PID $$"; ps'
berth run --rm busybox:demo sh -c 'echo "hello from $(hostname), I am PID $$"; ps'
step berth run -d --name demo-web -p 18088:80 busybox:demo httpd -f -p 80 -h /var/www
berth rm -f demo-web >/dev/null 2>&1 || true
berth run -d --name demo-web -p 18088:80 busybox:demo httpd -f -p 80 -h /var/www
step berth ps
berth ps
step "wget -qO- http://127.0.0.1:18088/   (from the host, through the published port)"
for _ in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://127.0.0.1:18088/ 2>/dev/null && break || sleep 0.2; done || busybox wget -qO- http://127.0.0.1:18088/
step berth exec demo-web ls /var/www
berth exec demo-web ls /var/www
step berth rm -f demo-web
berth rm -f demo-web
step "berth network create demo-net; berth run -d --name demo-db --network demo-net busybox:demo sleep 60"
berth rm -f demo-db >/dev/null 2>&1 || true
berth network rm demo-net >/dev/null 2>&1 || true
berth network create demo-net >/dev/null
berth run -d --name demo-db --network demo-net busybox:demo sleep 60 >/dev/null
step "berth run --rm --network demo-net busybox:demo sh -c 'ping -c 1 demo-db'   (by name)"
berth run --rm --network demo-net busybox:demo sh -c 'ping -c 1 demo-db'
berth rm -f demo-db >/dev/null
berth network rm demo-net >/dev/null
step "berth tag busybox:demo busybox && berth build -t static-site examples/static-site"
berth tag busybox:demo busybox
berth build -q -t static-site examples/static-site >/dev/null && echo "built static-site"
step berth run --rm static-site cat /var/www/index.html
berth run --rm static-site cat /var/www/index.html | head -3

step "berth build -t hello-wasi examples/hello-wasi   (FROM scratch + a wasm32-wasip1 module)"
berth build -q -t hello-wasi examples/hello-wasi
step berth run --rm -e NAME=demo hello-wasi
berth run --rm -e NAME=demo hello-wasi

step "berth build -t hello-http examples/hello-http   (a wasi:http component)"
berth build -q -t hello-http examples/hello-http
step "berth serve --listen 127.0.0.1:18089 hello-http   (in the background)"
# The binary itself, not the function: the pid below must be the server's.
./target/debug/berth serve --listen 127.0.0.1:18089 hello-http 2>"$work/serve.log" &
serve_pid=$!
for _ in $(seq 50); do grep -q listening "$work/serve.log" && break; sleep 0.1; done
cat "$work/serve.log"
step "curl -H 'x-echo: demo' http://127.0.0.1:18089/anything   (a fresh instance per request)"
curl -s -H 'x-echo: demo' http://127.0.0.1:18089/anything
kill -TERM "$serve_pid"; wait "$serve_pid" || true
echo "(its access log:)"; grep ' GET ' "$work/serve.log"

step "berth build -t seed-app examples/seed-app   (a native app: FROM busybox, EXPOSE 8000)"
berth build -q -t seed-app examples/seed-app >/dev/null && echo "built seed-app"
step "berth serve -d --name demo-fn --listen 127.0.0.1:18090 --container-port 8000 seed-app"
berth rm -f demo-fn >/dev/null 2>&1 || true
berth serve -d --name demo-fn --listen 127.0.0.1:18090 --container-port 8000 seed-app
step "curl -si http://127.0.0.1:18090/cgi-bin/hello   (the first request starts its container)"
curl -si http://127.0.0.1:18090/cgi-bin/hello | grep -iE '^(HTTP|x-berth-cold-start)|hello'
step "curl -si http://127.0.0.1:18090/cgi-bin/hello   (warm: no cold-start header)"
curl -si http://127.0.0.1:18090/cgi-bin/hello | grep -iE '^(HTTP|x-berth-cold-start)|hello'
step berth ps
berth ps
step "berth logs demo-fn; berth stop demo-fn; berth rm demo-fn"
berth logs --tail 2 demo-fn
berth stop demo-fn && berth rm demo-fn

step berth info
berth info
