//! End-to-end: `berth pull`, `push`, `login`/`logout` against Debian's `docker-registry` (the
//! distribution project's registry) started by each test on a free loopback port: plain,
//! htpasswd basic auth, bearer tokens from a token server written here, TLS with a test CA;
//! interop with skopeo and umoci; a registry killed mid-push; multi-platform indexes; and the
//! failures users meet, each leaving `berth images` as it was.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::registry::{Registry, free_port, kill_child, put_blob};
use common::{Berth, busybox_rootfs, require, sh, succeed};
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

/// A TCP proxy in front of a registry that counts the bytes each way and, when `trigger`
/// says so, cuts the connection that carried them (after whatever side effect it has).
struct Proxy {
    port: u16,
}

type Trigger = dyn Fn(u64, u64) -> bool + Send + Sync;

impl Proxy {
    fn start(backend: u16, trigger: Arc<Trigger>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicU64::new(0));
        let down = Arc::new(AtomicU64::new(0));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", backend)) else {
                    continue;
                };
                for (from, to, upstream) in [
                    (
                        client.try_clone().unwrap(),
                        server.try_clone().unwrap(),
                        true,
                    ),
                    (server, client, false),
                ] {
                    let (up, down, trigger) = (up.clone(), down.clone(), trigger.clone());
                    std::thread::spawn(move || {
                        let (mut from, mut to) = (from, to);
                        let mut buf = vec![0u8; 64 << 10];
                        loop {
                            let n = match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            let counter = if upstream { &up } else { &down };
                            counter.fetch_add(n as u64, Ordering::SeqCst);
                            if trigger(up.load(Ordering::SeqCst), down.load(Ordering::SeqCst)) {
                                break;
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = from.shutdown(Shutdown::Both);
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Proxy { port }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// The `Digest:` line of a pull's output.
fn pulled_digest(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("Digest: "))
        .unwrap_or_else(|| panic!("no digest in pull output:\n{out}"))
        .trim()
        .to_string()
}

/// The digest a push printed (`TAG: digest: sha256:… size: N`).
fn pushed_digest(out: &str) -> String {
    out.lines()
        .find_map(|l| l.split("digest: ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no digest in push output:\n{out}"))
        .to_string()
}

fn inspect(b: &Berth, image: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&b.ok(&["inspect", image])).unwrap();
    v[0].clone()
}

/// `berth images` as JSON rows, without the relative age (it changes as the test runs).
fn images(b: &Berth) -> Vec<serde_json::Value> {
    b.ok(&["images", "--format", "json"])
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("CreatedSince");
            v
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A berth with its own Docker config folder, so logins stay in the test.
fn berth() -> Berth {
    Berth::new()
}

fn cmd_env(b: &Berth, args: &[&str]) -> Command {
    let mut c = b.cmd(args);
    c.env("DOCKER_CONFIG", b.path("docker-config"));
    c
}

fn ok(b: &Berth, args: &[&str]) -> String {
    let out = cmd_env(b, args).output().unwrap();
    assert!(
        out.status.success(),
        "berth {args:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fail(b: &Berth, args: &[&str]) -> String {
    let out = cmd_env(b, args).output().unwrap();
    assert!(
        !out.status.success(),
        "berth {args:?} succeeded but should have failed:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn push_rmi_pull_gives_the_same_digests_and_runs() {
    let reg = Registry::start();
    let b = berth();
    let id = b.import_busybox("bb");
    let name = format!("{}/tools/bb:1", reg.host());
    ok(&b, &["tag", "bb", &name]);
    let out = ok(&b, &["push", &name]);
    assert!(out.contains(": Pushed"), "{out}");
    let pushed = pushed_digest(&out);
    let local = inspect(&b, &name);
    assert_eq!(local["Descriptor"]["digest"], pushed.as_str());

    // Again: the registry has every blob.
    let again = ok(&b, &["push", &name]);
    assert!(
        again.contains("Layer already exists") && !again.contains(": Pushed"),
        "{again}"
    );
    // Another repository of the same registry: mounted, not uploaded.
    let other = format!("{}/other/bb:2", reg.host());
    ok(&b, &["tag", "bb", &other]);
    let mounted = ok(&b, &["push", &other]);
    assert!(mounted.contains("Mounted from tools/bb"), "{mounted}");
    // Chunked uploads (PATCH with Content-Range) for blobs over the chunk size.
    let chunked = format!("{}/chunked/bb:1", reg.host());
    ok(&b, &["tag", "bb", &chunked]);
    let out = cmd_env(&b, &["push", &chunked])
        .env("BERTH_PUSH_CHUNK_SIZE", "65536")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    ok(&b, &["rmi", "bb", &name, &other, &chunked]);
    assert!(b.ok(&["images", "-q"]).trim().is_empty());
    let out = ok(&b, &["pull", &name]);
    assert_eq!(pulled_digest(&out), pushed);
    assert!(out.contains("Status: Downloaded newer image"), "{out}");
    assert_eq!(inspect(&b, &name)["Id"], id.as_str());
    assert_eq!(b.ok(&["run", "--rm", &name, "echo", "hi"]), "hi\n");
    let again = ok(&b, &["pull", &name]);
    assert!(
        again.contains("Image is up to date") && again.contains("Already exists"),
        "{again}"
    );

    // Every tag of a repository.
    let all = berth();
    let out = ok(&all, &["pull", "-a", &format!("{}/tools/bb", reg.host())]);
    assert!(out.contains(&format!("{}/tools/bb:1", reg.host())), "{out}");

    // The chunked upload arrived whole.
    let c = berth();
    assert_eq!(pulled_digest(&ok(&c, &["pull", &chunked])), pushed);

    // run pulls a missing image (--pull missing is the default); --pull never does not.
    let r = berth();
    let out = cmd_env(&r, &["run", "--rm", "--pull", "never", &name, "true"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such image"));
    let out = cmd_env(&r, &["run", "--rm", &name, "echo", "on demand"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "on demand\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Unable to find image"));
    let out = cmd_env(&r, &["run", "--rm", "--pull", "always", &name, "true"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Image is up to date"));

    // build pulls a FROM image it does not have, and --pull pulls it fresh.
    let bd = berth();
    let ctx = bd.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {name}\nCMD [\"echo\", \"built on a pulled base\"]\n"),
    )
    .unwrap();
    let out = cmd_env(&bd, &["build", "-t", "app", ctx.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(bd.ok(&["run", "--rm", "app"]), "built on a pulled base\n");
    ok(
        &bd,
        &["build", "--pull", "-t", "app", ctx.to_str().unwrap()],
    );
}

/// An OCI layout made with umoci holding the busybox rootfs as tag `bb`.
fn umoci_layout(b: &Berth) -> PathBuf {
    require("umoci");
    let layout = b.path("layout");
    let bundle = b.path("bundle");
    let l = layout.display();
    sh(&format!(
        "umoci init --layout {l} && umoci new --image {l}:base"
    ));
    sh(&format!(
        "umoci unpack --rootless --image {l}:base {}",
        bundle.display()
    ));
    let rootfs = busybox_rootfs(&b.path("busybox-rootfs"));
    sh(&format!(
        "cp -a {}/. {}/rootfs/",
        rootfs.display(),
        bundle.display()
    ));
    sh(&format!(
        "umoci repack --image {l}:bb {} && umoci config --image {l}:bb --config.cmd /bin/sh",
        bundle.display()
    ));
    layout
}

/// Adds `TAG-zstd` to an OCI layout: the image `tag` with its layers recompressed with zstd
/// (skopeo 1.9 cannot convert compression).
fn recompress_zstd(layout: &Path, tag: &str) -> String {
    require("zstd");
    let index_path = layout.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let desc = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap()
        .clone();
    let blob = |d: &serde_json::Value| {
        let hex = d["digest"]
            .as_str()
            .unwrap()
            .strip_prefix("sha256:")
            .unwrap()
            .to_string();
        layout.join("blobs/sha256").join(hex)
    };
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(&desc)).unwrap()).unwrap();
    for layer in manifest["layers"].as_array_mut().unwrap() {
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(blob(layer)).unwrap())
            .read_to_end(&mut tar)
            .unwrap();
        let plain = layout.join("layer.tar");
        std::fs::write(&plain, &tar).unwrap();
        sh(&format!(
            "zstd -q -f --rm {} -o {}.zst",
            plain.display(),
            plain.display()
        ));
        let zst = std::fs::read(format!("{}.zst", plain.display())).unwrap();
        std::fs::remove_file(format!("{}.zst", plain.display())).unwrap();
        *layer = put_blob(layout, "application/vnd.oci.image.layer.v1.tar+zstd", &zst);
    }
    let mut new = put_blob(
        layout,
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    let name = format!("{tag}-zstd");
    new["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": name});
    index["manifests"].as_array_mut().unwrap().push(new);
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    name
}

#[test]
fn images_pushed_by_skopeo_pull_and_run() {
    require("skopeo");
    let reg = Registry::start();
    let maker = berth();
    let layout = umoci_layout(&maker);
    let src = format!("oci:{}:bb", layout.display());
    for (tag, flags) in [
        ("oci-gzip", ""),
        ("docker-v2s2", "--format v2s2"),
        ("oci-zstd", "zstd"),
    ] {
        let src = if flags == "zstd" {
            format!(
                "oci:{}:{}",
                layout.display(),
                recompress_zstd(&layout, "bb")
            )
        } else {
            src.clone()
        };
        let flags = flags.trim_start_matches("zstd");
        sh(&format!(
            "skopeo copy -q {flags} --dest-tls-verify=false {src} docker://{}/umoci:{tag}",
            reg.host()
        ));
        let name = format!("{}/umoci:{tag}", reg.host());
        let b = berth();
        let out = ok(&b, &["pull", &name]);
        assert!(out.contains("Pull complete"), "{out}");
        assert_eq!(b.ok(&["run", "--rm", &name, "echo", "hi"]), "hi\n", "{tag}");
        let manifest = &inspect(&b, &name)["Manifest"];
        let layer_type = manifest["layers"][0]["mediaType"]
            .as_str()
            .unwrap()
            .to_string();
        match tag {
            "docker-v2s2" => assert!(layer_type.contains("docker.image.rootfs"), "{layer_type}"),
            "oci-zstd" => assert!(layer_type.ends_with("zstd"), "{layer_type}"),
            _ => assert!(layer_type.ends_with("gzip"), "{layer_type}"),
        }
    }
}

#[test]
fn image_pushed_by_berth_copies_with_skopeo_and_unpacks_with_umoci() {
    require("skopeo");
    require("umoci");
    let reg = Registry::start();
    let b = berth();
    b.import_busybox("bb");
    let name = format!("{}/bb:1", reg.host());
    ok(&b, &["tag", "bb", &name]);
    let pushed = pushed_digest(&ok(&b, &["push", &name]));
    let layout = b.path("copied");
    sh(&format!(
        "skopeo copy -q --src-tls-verify=false docker://{name} oci:{}:bb",
        layout.display()
    ));
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"][0]["digest"],
        pushed.as_str(),
        "skopeo kept the manifest as is"
    );
    let bundle = b.path("unpacked");
    sh(&format!(
        "umoci unpack --rootless --image {}:bb {}",
        layout.display(),
        bundle.display()
    ));
    assert!(bundle.join("rootfs/bin/busybox").is_file());
}

/// A Docker config folder's config.json.
fn docker_config(b: &Berth) -> PathBuf {
    b.path("docker-config").join("config.json")
}

/// A registry that takes alice / s3cret (htpasswd basic auth); the folder holds the file.
fn htpasswd_registry() -> (TempDir, Registry) {
    require("htpasswd");
    let auth_dir = tempfile::tempdir().unwrap();
    let htpasswd = auth_dir.path().join("htpasswd");
    sh(&format!(
        "htpasswd -Bbc {} alice s3cret 2>/dev/null",
        htpasswd.display()
    ));
    let reg = Registry::start_with(
        "",
        &format!(
            "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
            htpasswd.display()
        ),
    );
    (auth_dir, reg)
}

/// `berth login -u alice --password-stdin SERVER` with `extra` added to its environment.
fn login_stdin(
    b: &Berth,
    server: &str,
    password: &str,
    env: &[(&str, &Path)],
) -> std::process::Output {
    let mut login = cmd_env(b, &["login", "-u", "alice", "--password-stdin", server]);
    for (k, v) in env {
        login.env(k, v);
    }
    let mut child = login
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn basic_auth_login_push_pull_logout() {
    let (_auth_dir, reg) = htpasswd_registry();
    let b = berth();
    b.import_busybox("bb");
    let name = format!("{}/bb:1", reg.host());
    ok(&b, &["tag", "bb", &name]);

    let err = fail(&b, &["push", &name]);
    assert!(err.contains("authentication required"), "{err}");
    let err = fail(&b, &["login", "-u", "alice", "-p", "wrong", &reg.host()]);
    assert!(err.contains("wrong username or password"), "{err}");
    assert!(
        !docker_config(&b).exists(),
        "nothing stored for a failed login"
    );

    let out = login_stdin(&b, &reg.host(), "s3cret", &[]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Login Succeeded"));
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(docker_config(&b)).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(docker_config(&b)).unwrap()).unwrap();
    assert_eq!(cfg["auths"][reg.host()]["auth"], "YWxpY2U6czNjcmV0");

    let pushed = pushed_digest(&ok(&b, &["push", &name]));
    ok(&b, &["rmi", "bb", &name]);
    assert_eq!(pulled_digest(&ok(&b, &["pull", &name])), pushed);

    assert!(ok(&b, &["logout", &reg.host()]).contains("Removing login credentials"));
    let err = fail(&b, &["pull", &name]);
    assert!(err.contains("authentication required"), "{err}");
}

/// A Docker credential helper as docker-credential-helpers define them (`store` reads the
/// login as JSON, `get` and `erase` read the server), keeping each login in a file of its own
/// folder where a real one would use a keychain.
const CREDENTIAL_HELPER: &str = r#"#!/bin/sh
store="$(dirname "$0")/logins"
mkdir -p "$store"
input=$(cat)
case "$1" in
store)
    server=$(printf '%s' "$input" | sed -n 's/.*"ServerURL":"\([^"]*\)".*/\1/p')
    printf '%s' "$input" >"$store/$(printf '%s' "$server" | tr '/:' '__')" ;;
get|erase)
    file="$store/$(printf '%s' "$input" | tr '/:' '__')"
    if [ ! -f "$file" ]; then
        echo "credentials not found in native keychain"
        exit 1
    fi
    if [ "$1" = get ]; then cat "$file"; else rm "$file"; fi ;;
*)
    echo "unknown action $1"
    exit 1 ;;
esac
"#;

#[test]
fn logins_kept_by_a_docker_credential_helper() {
    let (_auth_dir, reg) = htpasswd_registry();
    let b = berth();
    b.import_busybox("bb");
    let name = format!("{}/bb:1", reg.host());
    ok(&b, &["tag", "bb", &name]);
    // The helper on the PATH, named by config.json as Docker's `credsStore`.
    let bin = b.path("helper-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-berthtest");
    std::fs::write(&helper, CREDENTIAL_HELPER).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = std::env::join_paths(
        std::iter::once(bin.clone())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let path = PathBuf::from(path);
    std::fs::create_dir_all(b.path("docker-config")).unwrap();
    std::fs::write(docker_config(&b), r#"{"credsStore":"berthtest"}"#).unwrap();
    let with_helper = |args: &[&str]| {
        let mut c = cmd_env(&b, args);
        c.env("PATH", &path);
        c.output().unwrap()
    };

    let out = login_stdin(&b, &reg.host(), "s3cret", &[("PATH", &path)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The secret is in the helper; the file only lists the server, as Docker's does.
    let kept =
        std::fs::read_to_string(bin.join("logins").join(reg.host().replace(':', "_"))).unwrap();
    assert!(kept.contains(r#""Secret":"s3cret""#), "{kept}");
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(docker_config(&b)).unwrap()).unwrap();
    assert_eq!(cfg["credsStore"], "berthtest");
    assert_eq!(cfg["auths"][reg.host()], serde_json::json!({}));

    // Pushes and pulls get the login from the helper.
    let out = with_helper(&["push", &name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ok(&b, &["rmi", &name]);
    assert!(with_helper(&["pull", &name]).status.success());

    // Logout erases it from the helper too.
    let out = with_helper(&["logout", &reg.host()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Removing login credentials"));
    assert!(
        !bin.join("logins")
            .join(reg.host().replace(':', "_"))
            .exists()
    );
    let out = with_helper(&["pull", &name]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("authentication required"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A helper that is not installed is named, with the fix.
    std::fs::write(docker_config(&b), r#"{"credsStore":"nosuchhelper"}"#).unwrap();
    let out = login_stdin(&b, &reg.host(), "s3cret", &[("PATH", &path)]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("docker-credential-nosuchhelper is not on the PATH"),
        "{err}"
    );
}

const TOKEN_SERVER: &str = r#"
import base64, json, os, subprocess, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse, parse_qs

key, cert_b64, users, port_file = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]

def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

class Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def answer(self, status, body=b""):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        q = parse_qs(urlparse(self.path).query)
        user, allowed = "", []
        auth = self.headers.get("Authorization")
        if auth:
            if not auth.startswith("Basic "):
                return self.answer(401)
            u, _, p = base64.b64decode(auth[6:]).decode().partition(":")
            if u not in users or users[u][0] != p:
                return self.answer(401)
            user, allowed = u, users[u][1].split(",")
        access = []
        for s in q.get("scope", []):
            parts = s.split(":")
            if len(parts) == 3 and parts[0] == "repository":
                acts = [a for a in parts[2].split(",") if a in allowed]
                access.append({"type": "repository", "name": parts[1], "actions": acts})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [cert_b64]}
        claims = {"iss": "berth-test", "sub": user, "aud": q.get("service", [""])[0],
                  "exp": now + 600, "nbf": now - 10, "iat": now,
                  "jti": os.urandom(8).hex(), "access": access}
        signing = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key],
                             input=signing.encode(), capture_output=True, check=True).stdout
        token = signing + "." + b64(sig)
        self.answer(200, json.dumps({"token": token, "expires_in": 600}).encode())

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
"#;

struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn bearer_token_auth_and_denied() {
    require("openssl");
    require("python3");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sh(&format!(
        "cd {} && openssl req -x509 -newkey rsa:2048 -nodes -keyout token.key -out token.crt -days 2 -subj /CN=berth-test-token 2>/dev/null",
        d.display()
    ));
    let cert_b64 = sh(&format!(
        "openssl x509 -in {}/token.crt -outform DER | base64 -w0",
        d.display()
    ));
    std::fs::write(d.join("token_server.py"), TOKEN_SERVER).unwrap();
    let port_file = d.join("port");
    let users = r#"{"alice": ["s3cret", "pull,push"], "reader": ["r", "pull"]}"#;
    let _server = ChildGuard(
        Command::new("python3")
            .arg(d.join("token_server.py"))
            .arg(d.join("token.key"))
            .arg(cert_b64.trim())
            .arg(users)
            .arg(&port_file)
            .spawn()
            .expect("start the token server"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !port_file.exists() {
        assert!(Instant::now() < deadline, "the token server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let token_port = std::fs::read_to_string(&port_file).unwrap();
    let reg = Registry::start_with(
        "",
        &format!(
            "auth:\n  token:\n    realm: http://127.0.0.1:{token_port}/token\n    service: berth-test-registry\n    issuer: berth-test\n    rootcertbundle: {}/token.crt\n",
            d.display()
        ),
    );
    let b = berth();
    b.import_busybox("bb");
    let name = format!("{}/team/bb:1", reg.host());
    ok(&b, &["tag", "bb", &name]);

    // Anonymous: the token carries no access.
    let err = fail(&b, &["push", &name]);
    assert!(err.contains("denied"), "{err}");
    let err = fail(&b, &["login", "-u", "alice", "-p", "nope", &reg.host()]);
    assert!(err.contains("wrong username or password"), "{err}");
    assert!(
        ok(&b, &["login", "-u", "alice", "-p", "s3cret", &reg.host()]).contains("Login Succeeded")
    );
    let pushed = pushed_digest(&ok(&b, &["push", &name]));

    // A reader pulls but may not push.
    let r = berth();
    ok(&r, &["login", "-u", "reader", "-p", "r", &reg.host()]);
    assert_eq!(pulled_digest(&ok(&r, &["pull", &name])), pushed);
    assert_eq!(r.ok(&["run", "--rm", &name, "echo", "hi"]), "hi\n");
    let before = images(&r);
    let other = format!("{}/team/other:1", reg.host());
    ok(&r, &["tag", &name, &other]);
    let err = fail(&r, &["push", &other]);
    assert!(err.contains("denied"), "{err}");
    ok(&r, &["rmi", &other]);
    assert_eq!(images(&r), before);
}

#[test]
fn tls_with_a_test_ca() {
    require("openssl");
    let certs = tempfile::tempdir().unwrap();
    let c = certs.path();
    sh(&format!(
        "cd {} && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=berth-test-ca \
         -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null && \
         openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=127.0.0.1 2>/dev/null && \
         printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > ext && \
         openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.crt -days 2 -extfile ext 2>/dev/null",
        c.display()
    ));
    let reg = Registry::start_with(
        &format!(
            "  tls:\n    certificate: {0}/srv.crt\n    key: {0}/srv.key\n",
            c.display()
        ),
        "",
    );
    let b = berth();
    b.import_busybox("bb");
    let name = format!("{}/bb:1", reg.host());
    ok(&b, &["tag", "bb", &name]);
    // Unknown CA: refused, and no fallback to plain HTTP.
    let err = fail(&b, &["push", &name]);
    assert!(err.contains("tls") && err.contains("certs.d"), "{err}");

    let certs_d = b.path("certs.d");
    std::fs::create_dir_all(certs_d.join(reg.host())).unwrap();
    std::fs::copy(c.join("ca.pem"), certs_d.join(reg.host()).join("ca.crt")).unwrap();
    let with_ca = |args: &[&str]| succeed(cmd_env(&b, args).env("BERTH_CERTS_D", &certs_d));
    let pushed = pushed_digest(&with_ca(&["push", &name]));
    ok(&b, &["rmi", "bb", &name]);
    assert_eq!(pulled_digest(&with_ca(&["pull", &name])), pushed);
    // --insecure-registry skips verification, as Docker's does.
    let c2 = berth();
    let out = ok(&c2, &["--insecure-registry", &reg.host(), "pull", &name]);
    assert_eq!(pulled_digest(&out), pushed);
}

/// An image of three layers of random bytes, built from scratch.
fn random_image(b: &Berth, name: &str, layers: usize, size: usize) {
    let ctx = b.path(&format!("ctx-{}", name.replace(['/', ':'], "-")));
    std::fs::create_dir_all(&ctx).unwrap();
    let mut dockerfile = String::from("FROM scratch\n");
    for i in 0..layers {
        let mut f = std::fs::File::open("/dev/urandom").unwrap();
        let mut bytes = vec![0u8; size];
        f.read_exact(&mut bytes).unwrap();
        std::fs::write(ctx.join(format!("f{i}")), bytes).unwrap();
        dockerfile.push_str(&format!("COPY f{i} /f{i}\n"));
    }
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    b.ok(&["build", "-q", "-t", name, ctx.to_str().unwrap()]);
}

#[test]
fn registry_killed_mid_push_then_push_again() {
    let reg = Registry::start();
    let child = reg.child.clone();
    let killed = Arc::new(AtomicBool::new(false));
    let armed = Arc::new(AtomicBool::new(true));
    let (k, a) = (killed.clone(), armed.clone());
    // Once 5 MB have gone up, the registry dies (SIGKILL) under the push.
    let proxy = Proxy::start(
        reg.port,
        Arc::new(move |up, _| {
            if a.load(Ordering::SeqCst) && up > 5 << 20 {
                a.store(false, Ordering::SeqCst);
                kill_child(&child);
                k.store(true, Ordering::SeqCst);
                return true;
            }
            false
        }),
    );
    let b = berth();
    let name = format!("{}/big:1", proxy.host());
    random_image(&b, &name, 3, 3 << 20);
    let out = cmd_env(&b, &["push", &name])
        .env("BERTH_PUSH_CHUNK_SIZE", "1048576")
        .output()
        .unwrap();
    assert!(killed.load(Ordering::SeqCst));
    assert!(
        !out.status.success(),
        "the push survived the registry's death?"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach registry") || err.contains("connection was cut"),
        "{err}"
    );

    reg.restart();
    let out = cmd_env(&b, &["push", &name])
        .env("BERTH_PUSH_CHUNK_SIZE", "1048576")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\nthe registry's log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(reg.dir.path().join("registry.log")).unwrap_or_default()
    );
    let pushed = pushed_digest(&String::from_utf8_lossy(&out.stdout));
    let c = berth();
    assert_eq!(pulled_digest(&ok(&c, &["pull", &name])), pushed);
    assert_eq!(inspect(&c, &name)["Id"], inspect(&b, &name)["Id"]);
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[test]
fn multi_platform_index_pulls_the_right_image() {
    require("skopeo");
    let reg = Registry::start();
    let b = berth();
    b.import_busybox("bb");
    // The linux image from `berth save`, then a WASI image and two indexes, by hand.
    let tarball = b.path("bb.tar");
    b.ok(&["save", "-o", tarball.to_str().unwrap(), "bb"]);
    let layout = b.path("layout");
    std::fs::create_dir_all(&layout).unwrap();
    sh(&format!(
        "tar -xf {} -C {}",
        tarball.display(),
        layout.display()
    ));
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mut linux = saved["manifests"][0].clone();
    linux.as_object_mut().unwrap().remove("annotations");
    linux["platform"] = serde_json::json!({"os": "linux", "architecture": host_arch()});

    let mut tar = tar::Builder::new(Vec::new());
    let module = b"\0asm\x01\0\0\0";
    let mut h = tar::Header::new_ustar();
    h.set_size(module.len() as u64);
    h.set_mode(0o755);
    tar.append_data(&mut h, "hello.wasm", &module[..]).unwrap();
    let layer = tar.into_inner().unwrap();
    let layer_desc = put_blob(&layout, "application/vnd.oci.image.layer.v1.tar", &layer);
    let config = serde_json::json!({
        "architecture": "wasm", "os": "wasip1",
        "config": {"Entrypoint": ["/hello.wasm"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", sha256_hex(&layer))]}
    });
    let config_desc = put_blob(
        &layout,
        "application/vnd.oci.image.config.v1+json",
        &serde_json::to_vec(&config).unwrap(),
    );
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc, "layers": [layer_desc]
    });
    let mut wasm = put_blob(
        &layout,
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    wasm["platform"] = serde_json::json!({"os": "wasip1", "architecture": "wasm"});
    let index = |manifests: Vec<serde_json::Value>, name: &str| {
        let mut d = put_blob(
            &layout,
            "application/vnd.oci.image.index.v1+json",
            &serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": manifests
            }))
            .unwrap(),
        );
        d["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": name});
        d
    };
    let both = index(vec![wasm.clone(), linux.clone()], "multi");
    let only_wasm = index(vec![wasm.clone()], "wasmonly");
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(
            &serde_json::json!({"schemaVersion": 2, "manifests": [both, only_wasm]}),
        )
        .unwrap(),
    )
    .unwrap();
    for tag in ["multi", "wasmonly"] {
        sh(&format!(
            "skopeo copy -q --all --dest-tls-verify=false oci:{}:{tag} docker://{}/{tag}:1",
            layout.display(),
            reg.host()
        ));
    }

    let multi = format!("{}/multi:1", reg.host());
    let c = berth();
    let out = ok(&c, &["pull", &multi]);
    assert_eq!(pulled_digest(&out), linux["digest"].as_str().unwrap());
    assert_eq!(inspect(&c, &multi)["Os"], "linux");
    assert_eq!(c.ok(&["run", "--rm", &multi, "echo", "hi"]), "hi\n");

    let w = berth();
    ok(&w, &["pull", "--platform", "wasi/wasm", &multi]);
    assert_eq!(inspect(&w, &multi)["Os"], "wasip1");
    let wasm_only = format!("{}/wasmonly:1", reg.host());
    ok(&w, &["pull", &wasm_only]);
    assert_eq!(inspect(&w, &wasm_only)["Architecture"], "wasm");

    let err = fail(&w, &["pull", "--platform", "linux/s390x", &multi]);
    assert!(
        err.contains("linux/s390x") && err.contains("wasip1/wasm"),
        "{err}"
    );

    // By the index's digest (as the registry has it): the platform's image, findable by that name.
    let index_digest = sh(&format!(
        "curl -sfI -H 'Accept: application/vnd.oci.image.index.v1+json' http://{}/v2/multi/manifests/1 | tr -d '\\r' | sed -n 's/^docker-content-digest: //Ip'",
        reg.host()
    ));
    let by_digest = format!("{}/multi@{}", reg.host(), index_digest.trim());
    let d = berth();
    ok(&d, &["pull", &by_digest]);
    assert_eq!(
        d.ok(&["run", "--rm", &by_digest, "echo", "pinned"]),
        "pinned\n"
    );
}

#[test]
fn failures_are_clear_and_leave_images_unchanged() {
    let reg = Registry::start();
    let b = berth();
    b.import_busybox("bb");
    let name = format!("{}/bb:1", reg.host());
    ok(&b, &["tag", "bb", &name]);
    ok(&b, &["push", &name]);

    let c = berth();
    c.import_busybox("local");
    let before = images(&c);
    let err = fail(&c, &["pull", &format!("{}/nothing:1", reg.host())]);
    assert!(err.contains("repository nothing not found"), "{err}");
    let err = fail(&c, &["pull", &format!("{}/bb:nosuchtag", reg.host())]);
    assert!(err.contains("not found: no such tag"), "{err}");
    let down = format!("127.0.0.1:{}/bb:1", free_port());
    let err = fail(&c, &["pull", &down]);
    assert!(
        err.contains("cannot reach registry") && err.contains("connection refused"),
        "{err}"
    );
    assert_eq!(images(&c), before);

    // A registry serving a blob whose content does not match its digest.
    let random = format!("{}/random:1", reg.host());
    random_image(&b, &random, 1, 1 << 20);
    ok(&b, &["push", &random]);
    let layer = inspect(&b, &random)["Manifest"]["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let data = reg.blob_data(&layer);
    let good = std::fs::read(&data).unwrap();
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    std::fs::write(&data, &bad).unwrap();
    let err = fail(&c, &["pull", &random]);
    assert!(
        err.contains("digest mismatch") && err.contains(&layer),
        "{err}"
    );
    assert_eq!(images(&c), before);
    assert_eq!(
        std::fs::read_dir(c.root().join("tmp")).unwrap().count(),
        0,
        "no partial download is kept for a corrupt blob"
    );
    std::fs::write(&data, &good).unwrap();

    // A connection cut mid-transfer: the download resumes where it stopped.
    let cut_once = Arc::new(AtomicBool::new(true));
    let flag = cut_once.clone();
    let proxy = Proxy::start(
        reg.port,
        Arc::new(move |_, down| down > 300_000 && flag.swap(false, Ordering::SeqCst)),
    );
    let via_proxy = format!("{}/random:1", proxy.host());
    let out = cmd_env(&c, &["pull", &via_proxy])
        .env("BERTH_LOG_LEVEL", "debug")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !cut_once.load(Ordering::SeqCst),
        "the proxy cut the transfer"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("from byte"),
        "the download resumed with a range: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(inspect(&c, &via_proxy)["Id"], inspect(&b, &random)["Id"]);
    // A connection that stays down: the pull gives up after its retries and says so, keeping
    // what it has; the next pull continues from there.
    let cut_all = Arc::new(AtomicBool::new(true));
    let flag = cut_all.clone();
    let proxy = Proxy::start(
        reg.port,
        Arc::new(move |_, down| down > 400_000 && flag.load(Ordering::SeqCst)),
    );
    let d = berth();
    let via_proxy = format!("{}/random:1", proxy.host());
    let err = fail(&d, &["pull", &via_proxy]);
    assert!(
        err.contains("connection was cut") && err.contains("it resumes"),
        "{err}"
    );
    assert!(
        d.ok(&["images", "-q"]).trim().is_empty(),
        "nothing half-pulled is named"
    );
    cut_all.store(false, Ordering::SeqCst);
    let out = cmd_env(&d, &["pull", &via_proxy])
        .env("BERTH_LOG_LEVEL", "debug")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("from byte"),
        "the second pull resumed the first one's download: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(inspect(&d, &via_proxy)["Id"], inspect(&b, &random)["Id"]);

    // The same image by another name: every layer is here, none is fetched again.
    let again = ok(&c, &["pull", &random]);
    assert!(
        again.contains("Already exists") && !again.contains("Pull complete"),
        "{again}"
    );
}
