#!/usr/bin/env bash
# The berth demo: builds berth, makes a busybox image from Debian's busybox-static with
# `berth import`, and shows the image commands a Docker user knows. Uses a root of its own
# under /tmp so it leaves your images alone.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! dpkg -s busybox-static >/dev/null 2>&1; then
    echo "demo: installing busybox-static" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
fi
cargo build -q --bin berth
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
step berth info
berth info
