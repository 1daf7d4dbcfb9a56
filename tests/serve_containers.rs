//! `berth serve`'s container executor end to end: native busybox-httpd images served as
//! functions (cold start, warm, idle stop, replicas, readiness, crashes), the metrics, and
//! what a killed server leaves. Real binary, real containers, real HTTP over loopback.

mod common;

use std::path::Path;
use std::time::Duration;

use common::served::*;
use common::*;

/// The app of the test images: busybox httpd on port 8080 with CGI scripts that answer with
/// the container's hostname (its short id), one slowly, one that kills the server.
fn app_image(b: &Berth, tag: &str, cmd: &str) {
    b.import_busybox("bb");
    let ctx = b.path(&format!("ctx-{tag}"));
    let cgi = ctx.join("cgi-bin");
    std::fs::create_dir_all(&cgi).unwrap();
    let script = |name: &str, body: &str| {
        std::fs::write(
            cgi.join(name),
            format!("#!/bin/sh\n{body}echo 'Content-Type: text/plain'\necho\necho \"{name}=$(hostname)\"\n"),
        )
        .unwrap();
    };
    script("who", "");
    script("slow", "sleep 0.2\n");
    script("crash", "killall httpd\nsleep 1\n");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM bb\nCOPY cgi-bin /www/cgi-bin\nRUN chmod 755 /www/cgi-bin/*\nEXPOSE 8080\nCMD {cmd}\n"),
    )
    .unwrap();
    b.ok(&["build", "-q", "-t", tag, ctx.to_str().unwrap()]);
}

/// The CMD that serves /www on 8080 and ends (exit 3) when httpd does; SIGTERM ends it at once
/// (a shell as PID 1 gets only the signals it handles).
const HTTPD: &str = r#"["sh", "-c", "trap 'exit 0' TERM; echo app-starting; httpd -f -p 8080 -h /www & wait $!; echo httpd-ended; exit 3"]"#;

/// A serve file with one container route at `/...` for `image`, with `settings` in its
/// executor table.
fn serve_file(b: &Berth, image: &str, settings: &str) -> String {
    let f = b.path(&format!("serve-{image}.toml"));
    std::fs::write(
        &f,
        format!(
            "[[route]]\nroute = \"/...\"\nimage = \"{image}\"\nexecutor = {{ type = \"container\", port = 8080{settings} }}\n"
        ),
    )
    .unwrap();
    f.to_str().unwrap().to_string()
}

/// GET `url`: (status, cold-start header present, body).
fn get_cold(url: &str) -> (u16, bool, String) {
    let mut r = agent()
        .get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let cold = r
        .headers()
        .get("x-berth-cold-start")
        .is_some_and(|v| v == "1");
    let status = r.status().as_u16();
    (
        status,
        cold,
        r.body_mut().read_to_string().unwrap_or_default(),
    )
}

/// The states of the store's containers (`ps -a`), by name.
fn states(b: &Berth) -> Vec<(String, String)> {
    let out = b.ok(&["ps", "-a", "--format", "json"]);
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let field = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            (field("Names"), field("State"))
        })
        .collect()
}

/// Whether `cond` holds within `secs` seconds.
fn within(secs: u64, cond: impl Fn() -> bool) -> bool {
    let until = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < until {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

#[test]
fn a_cold_start_then_warm_then_idle_stop_then_cold_again() {
    let b = Berth::new();
    app_image(&b, "app", HTTPD);
    let file = serve_file(&b, "app", ", idle_timeout = \"1s\"");
    let s = Served::start(&b, &["-f", &file]);
    // Made at the start, not started.
    let made = states(&b);
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(made[0].1, "created", "{made:?}");

    let (status, cold, body) = get_cold(&s.url("/cgi-bin/who"));
    assert_eq!((status, cold), (200, true), "{body}\n{}", s.log());
    let host = body.trim().strip_prefix("who=").unwrap().to_string();
    let (status, cold, body) = get_cold(&s.url("/cgi-bin/who?again"));
    assert_eq!((status, cold), (200, false), "{body}");
    assert_eq!(
        body.trim(),
        format!("who={host}"),
        "the same container answers"
    );
    assert_eq!(states(&b)[0].1, "running");

    // Idle for a second: stopped, and the server says so.
    assert!(
        within(15, || states(&b)[0].1 == "exited"),
        "not stopped when idle: {:?}\n{}",
        states(&b),
        s.log()
    );
    s.wait_log("is idle: stopped");
    let (status, cold, body) = get_cold(&s.url("/cgi-bin/who"));
    assert_eq!((status, cold), (200, true), "{body}");
    assert_eq!(
        body.trim(),
        format!("who={host}"),
        "the same container, started again"
    );
    assert_eq!(states(&b).len(), 1, "no container made per cold start");

    // SIGTERM: the server stops its containers and removes them.
    let (status, log) = s.terminate();
    assert!(status.success(), "{log}");
    assert!(states(&b).is_empty(), "left: {:?}\n{log}", states(&b));
    assert!(log.contains("GET /cgi-bin/who 200"), "{log}");
}

#[test]
fn replicas_share_two_hundred_slow_requests() {
    let b = Berth::new();
    app_image(&b, "app", HTTPD);
    let file = serve_file(&b, "app", ", max_instances = 3, concurrency = 10");
    let s = Served::start(&b, &["-f", &file]);
    let url = s.url("/cgi-bin/slow");
    let answers: Vec<(u16, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..200)
            .map(|_| {
                let url = url.clone();
                scope.spawn(move || {
                    let (status, _, body) = get_cold(&url);
                    (status, body.trim().to_string())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut by_host = std::collections::BTreeMap::<String, usize>::new();
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}\n{}", s.log());
        *by_host.entry(body.clone()).or_default() += 1;
    }
    assert_eq!(by_host.len(), 3, "three replicas answered: {by_host:?}");
    for (host, n) in &by_host {
        assert!(*n >= 40, "{host} answered {n} of 200 (< 20%): {by_host:?}");
    }
    assert_eq!(states(&b).len(), 3);
}

#[test]
fn an_app_that_never_listens_gets_503_after_ready_timeout_with_its_log() {
    let b = Berth::new();
    app_image(
        &b,
        "mute",
        r#"["sh", "-c", "trap 'exit 0' TERM; echo mute-app-says-hello; sleep 1000 & wait"]"#,
    );
    let file = serve_file(&b, "mute", ", ready_timeout = \"1s\"");
    let s = Served::start(&b, &["-f", &file]);
    let (status, _, body) = get_cold(&s.url("/"));
    assert_eq!(status, 503, "{body}");
    let log = s.wait_log("mute-app-says-hello");
    assert!(
        log.contains("was not ready on port 8080 within ready_timeout"),
        "{log}"
    );
    // Stopped again, so the next request tries afresh (and fails the same way).
    assert!(
        within(15, || states(&b)[0].1 == "exited"),
        "{:?}",
        states(&b)
    );
    let (status, _, _) = get_cold(&s.url("/"));
    assert_eq!(status, 503);
}

#[test]
fn a_crashing_replica_is_replaced_and_its_request_gets_502() {
    let b = Berth::new();
    app_image(&b, "app", HTTPD);
    let file = serve_file(&b, "app", "");
    let s = Served::start(&b, &["-f", &file]);
    let (status, _, _) = get_cold(&s.url("/cgi-bin/who"));
    assert_eq!(status, 200);
    let (status, _, body) = get_cold(&s.url("/cgi-bin/crash"));
    assert_eq!(
        status,
        502,
        "the request in flight on the dying app: {body}\n{}",
        s.log()
    );
    s.wait_log("ended");
    let (status, cold, body) = get_cold(&s.url("/cgi-bin/who"));
    assert_eq!((status, cold), (200, true), "replaced: {body}\n{}", s.log());
}

#[test]
fn metrics_count_what_was_sent() {
    let b = Berth::new();
    app_image(&b, "app", HTTPD);
    let s = Served::start(
        &b,
        &[
            "--metrics",
            "127.0.0.1:0",
            "--container-port",
            "8080",
            "app",
        ],
    );
    let metrics_url = metrics_url(&s);
    for _ in 0..3 {
        assert_eq!(get_cold(&s.url("/cgi-bin/who")).0, 200);
    }
    assert_eq!(get_cold(&s.url("/cgi-bin/nothing-here")).0, 404);
    // The access log line (and its count) follows the response's end.
    let text = || get(&metrics_url).1;
    assert!(
        within(10, || text().contains(
            r#"berth_serve_requests_total{route="/...",status="200"} 3"#
        )),
        "{}",
        text()
    );
    let t = text();
    assert!(
        t.contains(r#"berth_serve_requests_total{route="/...",status="404"} 1"#),
        "{t}"
    );
    assert!(
        t.contains(r#"berth_serve_cold_starts_total{route="/..."} 1"#),
        "{t}"
    );
    assert!(
        t.contains(r#"berth_serve_instances{route="/..."} 1"#),
        "{t}"
    );
    assert!(
        t.contains(r#"berth_serve_request_duration_seconds_count{route="/..."} 4"#),
        "{t}"
    );
    assert!(
        t.contains("berth_serve_cold_start_duration_seconds_bucket"),
        "{t}"
    );
    // Only /metrics is served there.
    assert_eq!(get(&metrics_url.replace("/metrics", "/other")).0, 404);
}

#[test]
fn a_killed_server_leaves_containers_that_prune_or_the_next_server_removes() {
    let b = Berth::new();
    app_image(&b, "app", HTTPD);
    let file = serve_file(&b, "app", ", min_instances = 1");
    let first = Served::start(&b, &["-f", &file]);
    // min_instances: one runs without a request.
    assert!(
        within(15, || states(&b).iter().any(|(_, s)| s == "running")),
        "{:?}",
        states(&b)
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first.pid()),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    drop(first);
    assert_eq!(states(&b)[0].1, "running", "kill -9 leaves it running");

    // The next server of the same file removes it.
    let second = Served::start(&b, &["-f", &file]);
    let log = second.log();
    assert!(
        log.contains("removed the containers an earlier server"),
        "{log}"
    );
    assert!(within(15, || states(&b)
        .iter()
        .any(|(_, s)| s == "running")));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(second.pid()),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    drop(second);

    // Or prune does.
    b.ok(&["container", "prune", "-f"]);
    assert!(states(&b).is_empty(), "{:?}", states(&b));
    let _ = Path::new(&file);
}

#[test]
fn serve_d_is_listed_logged_and_stopped_leaving_nothing_behind() {
    let b = Berth::new();
    app_image(&b, "app", HTTPD);
    let file = serve_file(&b, "app", "");
    let id = b
        .ok(&[
            "serve",
            "-d",
            "--name",
            "fnsrv",
            "--listen",
            "127.0.0.1:0",
            "-f",
            &file,
        ])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64, "{id}");
    let ps = b.ok(&["ps", "--format", "json"]);
    let row: serde_json::Value = ps
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["Names"] == "fnsrv")
        .unwrap_or_else(|| panic!("ps does not list the server:\n{ps}"));
    assert_eq!(row["State"], "running");
    assert_eq!(row["Command"], "\"berth serve\"");
    assert!(row["Image"].as_str().unwrap().ends_with(".toml"), "{row}");
    let addr = row["Ports"].as_str().unwrap().to_string();
    assert!(addr.starts_with("127.0.0.1:"), "{row}");

    let (status, cold, _) = get_cold(&format!("http://{addr}/cgi-bin/who"));
    assert_eq!((status, cold), (200, true));
    // The server's lines are its stderr's, as in the foreground.
    let logs = |args: &[&str]| {
        let mut all = vec!["logs"];
        all.extend_from_slice(args);
        let out = b.output(&all);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(
        within(10, || logs(&["fnsrv"]).contains("GET /cgi-bin/who 200")),
        "{}",
        logs(&["fnsrv"])
    );
    assert_eq!(logs(&["--tail", "1", &id[..12]]).lines().count(), 1);
    let (code, err) = b.fail(&["rm", "fnsrv"]);
    assert_eq!(code, 1);
    assert!(err.contains("it is running"), "{err}");

    assert_eq!(b.ok(&["stop", "fnsrv"]).trim(), "fnsrv");
    let exited = b.ok(&["ps", "-a", "--format", "json", "--filter", "name=fnsrv"]);
    assert!(
        exited.contains("\"exited\"") && exited.contains("Exited (0)"),
        "{exited}"
    );
    // Its container is gone with it: no state, no mount, no cgroup.
    assert_eq!(b.container_folders(), 0);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(b.root().to_str().unwrap()), "{mounts}");
    b.ok(&["rm", "fnsrv"]);
    assert!(b.ok(&["ps", "-a", "-q"]).trim().is_empty());

    // A server that cannot start says why, exits 125 and leaves no record.
    let (code, err) = b.fail(&[
        "serve",
        "-d",
        "--listen",
        "127.0.0.1:0",
        "--pull",
        "never",
        "no-such-image",
    ]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("no-such-image"), "{err}");
    assert!(b.ok(&["ps", "-a", "-q"]).trim().is_empty());
}

#[test]
fn hostile_clients_of_the_proxy_and_the_metrics_stop_neither() {
    let b = Berth::new();
    app_image(&b, "app", HTTPD);
    let s = Served::start(
        &b,
        &[
            "--metrics",
            "127.0.0.1:0",
            "--header-timeout",
            "2s",
            "--container-port",
            "8080",
            "app",
        ],
    );
    let metrics_url = metrics_url(&s);
    let metrics_addr = metrics_url
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .to_string();
    let proxy_addr = s.addr.clone();

    // Clients that send half a request and wait, on both listeners.
    let idle: Vec<std::net::TcpStream> = (0..20)
        .flat_map(|_| {
            [&metrics_addr, &proxy_addr].map(|a| {
                let mut c = std::net::TcpStream::connect(a).unwrap();
                std::io::Write::write_all(&mut c, b"GET /metr").unwrap();
                c
            })
        })
        .collect();
    // A 1 MB header, and a request line that is not one.
    let big = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    for addr in [&metrics_addr, &proxy_addr] {
        let answer = raw_exchange(addr, big.as_bytes());
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
            "{addr}: {answer:.200}"
        );
        let answer = raw_exchange(addr, b"BLAH\x00 / HTTP/9.9\r\n\r\n");
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
            "{addr}: {answer:.200}"
        );
    }
    // Hop-by-hop headers a client sends do not reach the app, and the others are served.
    let answer = raw_exchange(
        &proxy_addr,
        b"GET /cgi-bin/who HTTP/1.1\r\nHost: x\r\nConnection: close, x-drop\r\nX-Drop: 1\r\nUpgrade: h2c\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(get(&metrics_url).0, 200);
    assert_eq!(get_cold(&s.url("/cgi-bin/who")).0, 200);
    drop(idle);
    // The half-sent requests are let go at the header timeout; everything still answers.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(get(&metrics_url).0, 200);
    assert_eq!(get_cold(&s.url("/cgi-bin/who")).0, 200);
    let (status, log) = s.terminate();
    assert!(status.success(), "{log}");
}

#[test]
fn wrong_container_settings_are_refused_with_the_fix() {
    let b = Berth::new();
    b.import_busybox("bb");
    // A native image exposing no port, served without one.
    let (code, err) = b.fail(&["serve", "--listen", "127.0.0.1:0", "bb"]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("--container-port"), "{err}");
    let (code, err) = b.fail(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--executor",
        "container",
        "bb",
    ]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("exposes no TCP port"), "{err}");
    let (code, err) = b.fail(&[
        "serve",
        "--executor",
        "wagi",
        "--container-port",
        "80",
        "bb",
    ]);
    assert_eq!(code, 125, "{err}");
    assert!(
        err.contains("--container-port is for the container executor"),
        "{err}"
    );
    let (code, _) = b.fail(&["serve", "--container-port", "0", "bb"]);
    assert_ne!(code, 0);
    let file = b.path("bad.toml");
    std::fs::write(
        &file,
        "[[route]]\nroute = \"/...\"\nimage = \"bb\"\nexecutor = { type = \"container\", port = 80, max_instances = 0 }\n",
    )
    .unwrap();
    let (code, err) = b.fail(&["serve", "-f", file.to_str().unwrap()]);
    assert_eq!(code, 125, "{err}");
    assert!(
        err.contains("line 4") && err.contains("max_instances = 0"),
        "{err}"
    );
    // Nothing was made.
    assert_eq!(b.container_folders(), 0);
    let (code, err) = b.fail(&["serve", "-d", "--name", "bad name", "bb"]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("invalid server name"), "{err}");
    // The internal flag takes no path: nothing is written outside the store.
    let (code, err) = b.fail(&["serve", "--managed-as", "../../escape", "bb"]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("--managed-as is berth's own"), "{err}");
    assert!(!b.dir.path().join("escape").exists());
}
