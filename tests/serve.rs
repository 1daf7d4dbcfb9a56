//! `berth serve` end to end: the real binary serving real images over loopback, checked by a
//! real HTTP client (ureq, or raw sockets for what a client should not do). Images are built
//! from the examples and from tests/guests (http-probe: a wasi:http component that acts by
//! path; wagi-probe: a preview-1 CGI module).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::served::*;
use common::*;
use sha2::{Digest as _, Sha256};

/// The guests, built once per test run.
struct Guests {
    http_probe: PathBuf,
    wagi_probe: PathBuf,
}

fn guests() -> &'static Guests {
    static G: OnceLock<Guests> = OnceLock::new();
    G.get_or_init(|| {
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("guests");
        let g = repo().join("tests/guests");
        Guests {
            http_probe: cargo_wasm(
                &g.join("http-probe"),
                "wasm32-wasip2",
                &target,
                "http_probe.wasm",
                true,
            ),
            wagi_probe: cargo_wasm(
                &g.join("wagi-probe"),
                "wasm32-wasip1",
                &target,
                "wagi-probe.wasm",
                true,
            ),
        }
    })
}

/// Builds the examples once (into their own target folders, where their Dockerfiles look).
fn examples() {
    example("hello-http", "wasm32-wasip2");
    example("wagi-hello", "wasm32-wasip1");
}

/// Makes image `tag` of the module at `wasm` (`FROM scratch`, the module as its entrypoint).
fn wasm_image(b: &Berth, tag: &str, wasm: &Path) {
    let ctx = b.path(&format!("ctx-{tag}"));
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy(wasm, ctx.join("fn.wasm")).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY fn.wasm /fn.wasm\nENTRYPOINT [\"/fn.wasm\"]\n",
    )
    .unwrap();
    b.ok(&["build", "-q", "-t", tag, ctx.to_str().unwrap()]);
}

#[test]
fn the_examples_serve_both_executors_from_one_file() {
    examples();
    let b = Berth::new();
    let ex = repo().join("examples");
    b.ok(&[
        "build",
        "-q",
        "-t",
        "hello-http",
        ex.join("hello-http").to_str().unwrap(),
    ]);
    b.ok(&[
        "build",
        "-q",
        "-t",
        "wagi-hello",
        ex.join("wagi-hello").to_str().unwrap(),
    ]);
    b.import_busybox("busybox");
    b.ok(&[
        "build",
        "-q",
        "-t",
        "seed-app",
        ex.join("seed-app").to_str().unwrap(),
    ]);
    // A compiled module nobody has: the first serve compiles it, the second finds it.
    std::fs::remove_dir_all(b.root().join("wasm-cache")).unwrap();
    let file = ex.join("functions/berth.toml");
    let s = Served::start(&b, &["-f", file.to_str().unwrap(), "--log-format", "json"]);
    assert!(
        s.log().contains("/hello/... -> hello-http") && s.log().contains("wasi-http, compiled"),
        "{}",
        s.log()
    );
    let mut r = agent()
        .get(&s.url("/hello/anything?x=1"))
        .header("x-echo", "berth")
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.body_mut().read_to_string().unwrap();
    assert!(body.starts_with("Hello from a berth function!"), "{body}");
    assert!(
        body.contains("method: GET")
            && body.contains("path: /hello/anything?x=1")
            && body.contains("x-echo: berth"),
        "{body}"
    );

    let mut r = agent()
        .post(&s.url("/wagi/x/y?a=1&b=two"))
        .send("the body")
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.body_mut().read_to_string().unwrap();
    for want in [
        "REQUEST_METHOD: POST",
        "PATH_INFO: /x/y",
        "QUERY_STRING: a=1&b=two",
        "X_MATCHED_ROUTE: /wagi/...",
        "body: 8 bytes",
        "the body",
    ] {
        assert!(body.contains(want), "{want:?} missing from {body}");
    }
    // The exact route beats the wildcard above it.
    let (status, body) = get(&s.url("/hello/exact"));
    assert_eq!(status, 200);
    assert!(body.contains("X_MATCHED_ROUTE: /hello/exact"), "{body}");
    // The native seed app, a container started by this first request, sees the path below
    // its route.
    let r = agent().get(&s.url("/seed/cgi-bin/hello")).call().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-berth-cold-start"], "1");
    let (status, body) = get(&s.url("/seed/"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(get(&s.url("/nowhere")).0, 404);

    // One JSON access-log line per request, with its route.
    let log = s.wait_log("\"path\":\"/nowhere\"");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6, "{log}");
    assert_eq!(lines[0]["method"], "GET");
    assert_eq!(lines[0]["status"], 200);
    assert_eq!(lines[0]["route"], "/hello/...");
    assert!(lines[0]["bytes"].as_u64().unwrap() > 50);
    assert_eq!(lines[3]["route"], "/seed/...");
    assert_eq!(lines[5]["status"], 404);
    let (status, _) = s.terminate();
    assert!(status.success());

    let s = Served::start(&b, &["-f", file.to_str().unwrap()]);
    assert!(
        s.log().contains("wasi-http, from the compile cache")
            && s.log().contains("wagi, from the compile cache"),
        "{}",
        s.log()
    );
}

#[test]
fn routes_follow_spins_precedence() {
    let b = Berth::new();
    wasm_image(&b, "wagi-probe", &guests().wagi_probe);
    let file = b.path("routes.toml");
    std::fs::write(
        &file,
        r#"
[[route]]
route = "/..."
image = "wagi-probe"

[[route]]
route = "/a/..."
image = "wagi-probe"

[[route]]
route = "/a/b/..."
image = "wagi-probe"

[[route]]
route = "/a/b"
image = "wagi-probe"
"#,
    )
    .unwrap();
    let s = Served::start(&b, &["-f", file.to_str().unwrap()]);
    for (path, route, path_info) in [
        ("/x", "/...", "/x"),
        ("/a", "/a/...", ""),
        ("/ab", "/...", "/ab"),
        ("/a/x/y", "/a/...", "/x/y"),
        ("/a/b", "/a/b", ""),
        ("/a/b/c", "/a/b/...", "/c"),
    ] {
        let (status, body) = get(&s.url(path));
        assert_eq!(status, 200, "{path}: {body}");
        assert!(
            body.contains(&format!("\nX_MATCHED_ROUTE={route}\n")),
            "{path} should match {route}: {body}"
        );
        assert!(
            body.contains(&format!("\nPATH_INFO={path_info}\n")),
            "{path}: {body}"
        );
    }
    // CGI's variables: headers as HTTP_*, never the credentials; argv is the path and the query.
    let mut r = agent()
        .get(&s.url("/a/q?k=v&x=y%20z"))
        .header("X-Thing", "yes")
        .header("Authorization", "Bearer secret")
        .call()
        .unwrap();
    let body = r.body_mut().read_to_string().unwrap();
    for want in [
        "\nHTTP_X_THING=yes\n",
        "\nREQUEST_METHOD=GET\n",
        "\nQUERY_STRING=k=v&x=y%20z\n",
        "\nSCRIPT_NAME=/a\n",
        "\nSERVER_NAME=127.0.0.1\n",
        "argv[0]=/a/q",
        "argv[1]=k=v",
        "argv[2]=x=y z",
        "\nX_RAW_PATH_INFO=/q\n",
        "\nGATEWAY_INTERFACE=CGI/1.1\n",
    ] {
        assert!(body.contains(want), "{want:?} missing from {body}");
    }
    assert!(!body.contains("secret"), "{body}");
    // CGI responses: Status, Location alone (302), and what is not CGI (500, said in the log).
    let mut r = agent().get(&s.url("/status")).call().unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["x-probe"], "yes");
    assert_eq!(r.body_mut().read_to_string().unwrap(), "made");
    let r = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .new_agent()
        .get(&s.url("/redirect"))
        .call()
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "/elsewhere");
    assert_eq!(get(&s.url("/noheaders")).0, 500);
    assert_eq!(get(&s.url("/badheader")).0, 500);
    let log = s.wait_log("/badheader 500");
    assert!(log.contains("is the image built for WAGI?"), "{log}");
    assert!(log.contains("is not `Name: value`"), "{log}");
}

#[test]
fn two_hundred_parallel_keep_alive_requests_are_all_answered() {
    examples();
    let b = Berth::new();
    b.ok(&[
        "build",
        "-q",
        "-t",
        "hello-http",
        repo().join("examples/hello-http").to_str().unwrap(),
    ]);
    let s = Served::start(&b, &["hello-http", "--max-concurrent-requests", "16"]);
    let url = s.url("/p");
    let threads: Vec<_> = (0..50)
        .map(|t| {
            let url = url.clone();
            std::thread::spawn(move || {
                let a = agent();
                for i in 0..4 {
                    let tag = format!("t{t}-r{i}");
                    let mut r = a.get(&url).header("x-echo", &tag).call().unwrap();
                    assert_eq!(r.status(), 200);
                    let body = r.body_mut().read_to_string().unwrap();
                    assert!(body.contains(&format!("x-echo: {tag}\n")), "{tag}: {body}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a client thread failed");
    }
    // 200 requests over at most 50 connections: keep-alive held.
    assert!(
        eventually(|| s.log().matches(" GET /p 200 ").count() == 200),
        "{}",
        s.log()
    );
    let log = s.log();
    let clients: std::collections::HashSet<&str> = log
        .lines()
        .filter(|l| l.contains(" GET /p 200 "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert!(
        clients.len() <= 50,
        "{} connections for 200 requests",
        clients.len()
    );
}

#[test]
fn a_failing_request_fails_alone() {
    let b = Berth::new();
    wasm_image(&b, "probe", &guests().http_probe);
    wasm_image(&b, "wagi-probe", &guests().wagi_probe);
    let file = b.path("f.toml");
    std::fs::write(
        &file,
        "[[route]]\nroute = \"/...\"\nimage = \"probe\"\n\n[[route]]\nroute = \"/cgi/...\"\nimage = \"wagi-probe\"\n",
    )
    .unwrap();
    let s = Served::start(
        &b,
        &["-f", file.to_str().unwrap(), "--timeout", "2s", "-m", "64m"],
    );
    let ok = || assert_eq!(get(&s.url("/")), (200, "probe".into()));
    ok();
    assert_eq!(get(&s.url("/trap")).0, 500);
    ok();
    // An endless loop is killed at its deadline: 504, well within a watchdog.
    let started = Instant::now();
    assert_eq!(get(&s.url("/loop")).0, 504);
    assert!(started.elapsed() < Duration::from_secs(30));
    ok();
    // Two loops at once and a normal request beside them.
    let loops: Vec<_> = (0..2)
        .map(|_| {
            let u = s.url("/loop");
            std::thread::spawn(move || get(&u).0)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    ok();
    for l in loops {
        assert_eq!(l.join().unwrap(), 504);
    }
    assert_eq!(get(&s.url("/hog")).0, 500);
    ok();
    assert_eq!(get(&s.url("/cgi/trap")).0, 500);
    assert_eq!(get(&s.url("/cgi/loop")).0, 504);
    assert_eq!(get(&s.url("/cgi/x")).0, 200);
    // A WAGI request whose body never comes in full: 408 at the deadline, no slot taken.
    let out = raw_exchange(
        &s.addr,
        b"POST /cgi/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab",
    );
    assert!(out.starts_with("HTTP/1.1 408"), "{out:?}");
    // A full house: one slot, one place in the queue, then 503 at once.
    let s2 = Served::start(
        &b,
        &[
            "probe",
            "--max-concurrent-requests",
            "1",
            "--max-queued-requests",
            "1",
        ],
    );
    let sleepers: Vec<_> = (0..2)
        .map(|_| {
            let u = s2.url("/sleep/1500");
            let t = std::thread::spawn(move || get(&u).0);
            std::thread::sleep(Duration::from_millis(200));
            t
        })
        .collect();
    let started = Instant::now();
    assert_eq!(get(&s2.url("/")).0, 503);
    assert!(started.elapsed() < Duration::from_secs(1));
    for t in sleepers {
        assert_eq!(
            t.join().unwrap(),
            200,
            "a queued request is served once a slot frees"
        );
    }
    assert_eq!(get(&s2.url("/")).0, 200);
    assert!(s2.log().contains("the wait queue is full"), "{}", s2.log());

    let log = s.wait_log("GET /cgi/x 200");
    assert!(
        log.contains("GET /trap 500") && log.contains("unreachable"),
        "{log}"
    );
    assert!(
        log.contains("GET /loop 504") && log.contains("deadline"),
        "{log}"
    );
    assert!(
        log.contains("GET /hog 500") && log.contains("memory"),
        "{log}"
    );
    assert!(log.contains("GET /cgi/loop 504"), "{log}");
}

#[test]
fn big_bodies_stream_both_ways_and_the_cap_holds() {
    let b = Berth::new();
    wasm_image(&b, "probe", &guests().http_probe);
    wasm_image(&b, "wagi-probe", &guests().wagi_probe);
    let file = b.path("f.toml");
    std::fs::write(
        &file,
        "[[route]]\nroute = \"/...\"\nimage = \"probe\"\n\n[[route]]\nroute = \"/cgi/...\"\nimage = \"wagi-probe\"\n",
    )
    .unwrap();
    let s = Served::start(
        &b,
        &["-f", file.to_str().unwrap(), "--max-body-size", "12m"],
    );
    let n = 10_000_000usize;
    let (status, body) = get(&s.url(&format!("/big/{n}")));
    assert_eq!(status, 200);
    assert_eq!(body.len(), n);
    assert!(
        body.bytes()
            .enumerate()
            .all(|(i, c)| c == b'a' + (i % 26) as u8)
    );
    let upload: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
    let want = format!("{n} {}", hex::encode(Sha256::digest(&upload)));
    for path in ["/upload", "/cgi/upload"] {
        let mut r = agent().post(&s.url(path)).send(&upload[..]).unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(
            r.body_mut().read_to_string().unwrap().trim(),
            want,
            "{path}"
        );
    }
    let (status, body) = get(&s.url(&format!("/cgi/big/{n}")));
    assert_eq!((status, body.len()), (200, n));
    // Past the cap: 413 for a request that says its length, and for one sent in chunks (as
    // the guest reads it); a cut response for a streamed body.
    for path in ["/upload", "/cgi/upload"] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            13 << 20
        );
        let out = raw_exchange(&s.addr, head.as_bytes());
        assert!(out.starts_with("HTTP/1.1 413"), "{path}: {out:?}");
        let mut c = TcpStream::connect(&s.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let _ = c.write_all(
            format!("POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
                .as_bytes(),
        );
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..13 {
            if c.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .is_err()
                || c.write_all(&chunk).is_err()
                || c.write_all(b"\r\n").is_err()
            {
                break;
            }
        }
        let _ = c.write_all(b"0\r\n\r\n");
        let mut status = [0u8; 12];
        c.read_exact(&mut status).unwrap();
        assert_eq!(&status, b"HTTP/1.1 413", "{path}");
    }
    let cut = agent()
        .get(&s.url("/big/20000000"))
        .call()
        .unwrap()
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec();
    assert!(cut.is_err() || cut.unwrap().len() < 20_000_000);
    assert_eq!(get(&s.url("/cgi/big/20000000")).0, 500);
    let log = s.wait_log("GET /cgi/big/20000000 500");
    assert!(log.contains("larger than --max-body-size"), "{log}");
    assert_eq!(get(&s.url("/")).0, 200);
}

#[test]
fn functions_cannot_see_each_others_env_files_or_memory() {
    let b = Berth::new();
    wasm_image(&b, "probe", &guests().http_probe);
    let data = b.path("secret-data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("secret.txt"), "top secret").unwrap();
    let file = b.path("f.toml");
    std::fs::write(
        &file,
        format!(
            "[[route]]\nroute = \"/a/...\"\nimage = \"probe\"\nenv = {{ SECRET = \"a-secret\" }}\nvolumes = [\"{}:/data:ro\"]\n\n[[route]]\nroute = \"/b/...\"\nimage = \"probe\"\n",
            data.display()
        ),
    )
    .unwrap();
    let s = Served::start(&b, &["-f", file.to_str().unwrap(), "-e", "SHARED=1"]);
    assert_eq!(get(&s.url("/a/env/SECRET")), (200, "a-secret".into()));
    assert_eq!(get(&s.url("/b/env/SECRET")).0, 404);
    assert_eq!(get(&s.url("/b/env/SHARED")), (200, "1".into()));
    assert_eq!(
        get(&s.url("/a/file/data/secret.txt")),
        (200, "top secret".into())
    );
    assert_eq!(get(&s.url("/b/file/data/secret.txt")).0, 404);
    // Nothing outside the image's own files: the host's root is not there.
    assert_eq!(get(&s.url("/b/file/etc/hostname")).0, 404);
    assert_eq!(get(&s.url("/b/file/../../../../etc/hostname")).0, 404);
    // `/` and read-only volumes are read-only.
    assert_eq!(get(&s.url("/a/write/new.txt")).0, 500);
    assert_eq!(get(&s.url("/a/write/data/new.txt")).0, 500);
    assert!(!data.join("new.txt").exists());
    // Each request is a fresh instance: what one leaves in memory, the next never sees.
    for v in ["one", "two", "three"] {
        assert_eq!(get(&s.url(&format!("/a/stash/{v}"))), (200, String::new()));
        assert_eq!(get(&s.url(&format!("/b/stash/{v}"))), (200, String::new()));
    }
    // A function's output goes to the server's stderr with its route.
    assert_eq!(get(&s.url("/a/print")).0, 200);
    let log = s.wait_log("hello stderr");
    assert!(log.contains("[/a/... out] hello stdout"), "{log}");
}

#[test]
fn start_failures_are_clear_and_exit_125() {
    let b = Berth::new();
    let bad = b.path("bad.toml");
    std::fs::write(&bad, "listen = \"127.0.0.1:0\"\n\n[[route]]\nroute = \"/a\"\nimage = \"x\"\nexecutor = \"wagi\"\n").unwrap();
    let (code, err) = b.fail(&["serve", "-f", bad.to_str().unwrap()]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("line 6") && err.contains("bad.toml"), "{err}");
    let dup = b.path("dup.toml");
    std::fs::write(
        &dup,
        "[[route]]\nroute = \"/a\"\nimage = \"x\"\n[[route]]\nroute = \"/a\"\nimage = \"y\"\n",
    )
    .unwrap();
    let (code, err) = b.fail(&["serve", "-f", dup.to_str().unwrap()]);
    assert_eq!(code, 125);
    assert!(err.contains("line 5") && err.contains("line 2"), "{err}");

    let (code, err) = b.fail(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--pull",
        "never",
        "no-such-image",
    ]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("no-such-image"), "{err}");

    wasm_image(&b, "probe", &guests().http_probe);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let (code, err) = b.fail(&["serve", "--listen", &port, "probe"]);
    assert_eq!(code, 125, "{err}");
    assert!(
        err.contains("address already in use") || err.contains("Address already in use"),
        "{err}"
    );
    assert!(err.contains("--listen"), "{err}");

    // Not a module at all, and a module that is broken.
    let junk = b.path("junk.wasm");
    std::fs::write(&junk, b"\0asm\x01\0\0\0\x01\xffgarbage").unwrap();
    wasm_image(&b, "corrupt", &junk);
    let (code, err) = b.fail(&["serve", "--listen", "127.0.0.1:0", "corrupt"]);
    assert_eq!(code, 125, "{err}");
    assert!(
        err.contains("route /...") && err.contains("not a valid WebAssembly module"),
        "{err}"
    );

    // A native image, and a component that is a command, not an HTTP handler.
    b.import_busybox("busybox");
    let (code, err) = b.fail(&["serve", "--listen", "127.0.0.1:0", "busybox"]);
    assert_eq!(code, 125, "{err}");
    assert!(
        err.contains("route /...") && err.contains("native image"),
        "{err}"
    );
    let cmd = cargo_wasm(
        &repo().join("tests/guests/exit-code"),
        "wasm32-wasip2",
        &Path::new(env!("CARGO_TARGET_TMPDIR")).join("guests"),
        "exit-code.wasm",
        true,
    );
    wasm_image(&b, "command", &cmd);
    let (code, err) = b.fail(&["serve", "--listen", "127.0.0.1:0", "command"]);
    assert_eq!(code, 125, "{err}");
    assert!(
        err.contains("does not export wasi:http/incoming-handler"),
        "{err}"
    );
    let (code, err) = b.fail(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--executor",
        "wagi",
        "probe",
    ]);
    assert_eq!(code, 125, "{err}");
    assert!(
        err.contains("the wagi executor runs WASI preview-1 modules"),
        "{err}"
    );
}

#[test]
fn a_moved_tag_is_served_without_a_restart_and_sigterm_drains() {
    let b = Berth::new();
    wasm_image(&b, "probe", &guests().http_probe);
    wasm_image(&b, "wagi-probe", &guests().wagi_probe);
    b.ok(&["tag", "probe", "fn"]);
    let s = Served::start(&b, &["fn"]);
    assert_eq!(get(&s.url("/x")), (200, "probe".into()));
    // A request in flight when the tag moves finishes on the old image.
    let slow = {
        let u = s.url("/sleep/2500");
        std::thread::spawn(move || get(&u))
    };
    std::thread::sleep(Duration::from_millis(300));
    b.ok(&["tag", "wagi-probe", "fn"]);
    assert!(
        eventually(|| get(&s.url("/x")).1.contains("X_MATCHED_ROUTE=/...")),
        "the moved tag was never served:\n{}",
        s.log()
    );
    assert_eq!(slow.join().unwrap(), (200, "slept".into()));
    s.wait_log("image fn is now");

    // SIGTERM: requests in flight finish, new connections are refused, berth exits 0.
    b.ok(&["tag", "probe", "fn"]);
    assert!(eventually(|| get(&s.url("/x")).1 == "probe"));
    let slow = {
        let u = s.url("/sleep/1500");
        std::thread::spawn(move || get(&u))
    };
    std::thread::sleep(Duration::from_millis(300));
    let addr = s.addr.clone();
    let (status, log) = s.terminate();
    assert!(status.success(), "{log}");
    assert_eq!(slow.join().unwrap(), (200, "slept".into()));
    assert!(TcpStream::connect(&addr).is_err());
    assert!(log.contains("GET /sleep/1500 200"), "{log}");
}

/// Open descriptors of process `pid`.
fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn hostile_clients_do_not_stop_the_server() {
    let b = Berth::new();
    wasm_image(&b, "probe", &guests().http_probe);
    let s = Served::start(&b, &["probe", "--header-timeout", "3s"]);
    let ok = || assert_eq!(get(&s.url("/")), (200, "probe".into()));
    ok();
    let base = open_fds(s.pid());

    // A malformed request line, a 1 MB header, and a body longer than it says.
    let out = raw_exchange(&s.addr, b"GARBAGE\r\n\r\n");
    assert!(out.starts_with("HTTP/1.1 400"), "{out:?}");
    let mut huge = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 1 << 20));
    huge.extend_from_slice(b"\r\n\r\n");
    let out = raw_exchange(&s.addr, &huge);
    assert!(out.is_empty() || out.starts_with("HTTP/1.1 431"), "{out:?}");
    ok();

    // A client dribbling its headers a byte at a time: others are served meanwhile, and it is
    // cut off at the header timeout.
    let addr = s.addr.clone();
    let slow = std::thread::spawn(move || {
        let mut c = TcpStream::connect(&addr).unwrap();
        let started = Instant::now();
        for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
            if c.write_all(&[*byte]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        started.elapsed()
    });
    for _ in 0..10 {
        ok();
        std::thread::sleep(Duration::from_millis(100));
    }
    let cut_after = slow.join().unwrap();
    assert!(
        cut_after < Duration::from_secs(6),
        "the slow client was kept {cut_after:?}"
    );

    // 5,000 idle connections: the server still answers, and lets them all go after.
    let mut limit =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    limit.0 = limit.1;
    let _ = nix::sys::resource::setrlimit(
        nix::sys::resource::Resource::RLIMIT_NOFILE,
        limit.0,
        limit.1,
    );
    // The peak is watched from the side: on a loaded machine the first connections may reach
    // their header timeout before the last are made.
    let pid = s.pid();
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(Ordering::Relaxed) && peak < base + 4000 {
                peak = peak.max(open_fds(pid));
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        })
    };
    let idle: Vec<TcpStream> = (0..5000)
        .map(|_| TcpStream::connect(&s.addr).unwrap())
        .collect();
    ok();
    eventually(|| watcher.is_finished());
    done.store(true, Ordering::Relaxed);
    let peak = watcher.join().unwrap();
    assert!(
        peak >= base + 4000,
        "the server held at most {peak} descriptors, {base} before"
    );
    // Connections that never send a request are let go at the header timeout, while their
    // clients still hold them.
    assert!(
        eventually(|| open_fds(s.pid()) <= base + 5),
        "{} descriptors open with idle clients past the header timeout, {base} before",
        open_fds(s.pid())
    );
    ok();
    drop(idle);
    // So is a keep-alive connection that goes idle after a request.
    let mut c = TcpStream::connect(&s.addr).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let started = Instant::now();
    let mut all = Vec::new();
    let _ = c.read_to_end(&mut all);
    assert!(String::from_utf8_lossy(&all).starts_with("HTTP/1.1 200"));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "an idle keep-alive connection was kept"
    );
    ok();
}

#[test]
fn berth_run_serves_a_wasi_http_component_in_its_container() {
    examples();
    let b = Berth::new();
    let ctx = repo().join("examples/hello-http");
    b.ok(&["build", "-q", "-t", "hello-http", ctx.to_str().unwrap()]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("BERTH_HTTP_LISTEN=127.0.0.1:{port}");
    let id = b.ok(&[
        "run",
        "-d",
        "--network",
        "host",
        "-e",
        &listen,
        "hello-http",
    ]);
    let id = id.trim();
    let url = format!("http://127.0.0.1:{port}/from-run?q=1");
    assert!(
        eventually(|| agent().get(&url).call().is_ok()),
        "the container did not serve: {:?}",
        b.output(&["logs", id])
    );
    let (_, body) = get(&url);
    assert!(body.contains("Hello from a berth function!"), "{body}");
    assert!(body.contains("path: /from-run?q=1"), "{body}");
    // The server's and the access log's lines are the container's stderr.
    let logs = || String::from_utf8_lossy(&b.output(&["logs", id]).stderr).into_owned();
    assert!(
        eventually(|| logs().contains("GET /from-run?q=1 200")),
        "{}",
        logs()
    );
    assert!(logs().contains("serving /hello-http.wasm"));
    // An address that is none: the container ends at once, naming the variable.
    let (code, err) = b.fail(&["run", "-e", "BERTH_HTTP_LISTEN=:::", "hello-http"]);
    assert_ne!(code, 0);
    assert!(err.contains("BERTH_HTTP_LISTEN=\":::\""), "{err}");
    b.ok(&["stop", id]);
    b.ok(&["rm", id]);
}
