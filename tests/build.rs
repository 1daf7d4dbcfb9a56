//! End-to-end: `berth build` on a busybox base image made with `berth import`: each
//! instruction's effect on the config and the filesystem (checked by running the image), the
//! step cache, whiteouts, multi-stage builds, `.dockerignore`, and the errors. Runs as root.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{Berth, sh};

fn setup() -> Berth {
    let b = Berth::new();
    b.import_busybox("busybox");
    b
}

fn inspect(b: &Berth, name: &str) -> serde_json::Value {
    serde_json::from_str::<serde_json::Value>(&b.ok(&["inspect", name])).unwrap()[0].clone()
}

/// Writes the files (`path`, `content`) into a fresh context folder and returns it.
fn context(b: &Berth, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = b.path(name);
    for (path, content) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    dir
}

fn build(b: &Berth, tag: &str, ctx: &Path) -> String {
    b.ok(&["build", "-t", tag, ctx.to_str().unwrap()])
}

fn run(b: &Berth, image: &str, script: &str) -> String {
    b.ok(&["run", "--rm", image, "sh", "-c", script])
}

/// The step lines that were served from the cache: "[N/M] INSTR" followed by CACHED.
fn cached_steps(out: &str) -> Vec<String> {
    let lines: Vec<&str> = out.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[1].contains("CACHED"))
        .map(|w| w[0].split_once("] ").map_or(w[0], |p| p.1).to_string())
        .collect()
}

/// Whether a command printed `line` (not just a step line naming it).
fn printed(out: &str, line: &str) -> bool {
    out.lines().any(|l| l == line)
}

#[test]
fn instructions_shape_the_config_and_the_filesystem() {
    let b = setup();
    let ctx = context(
        &b,
        "ctx",
        &[
            (
                "Dockerfile",
                r#"ARG BASE=busybox
FROM $BASE
ARG VERSION=1.0
ARG FROM_ENV=arg
ENV FROM_ENV=env GREETING="hello ${VERSION}"
LABEL org.example.version=$VERSION maintainer=me
MAINTAINER Jane Doe <jane@example.com>
EXPOSE 8080 53/udp
WORKDIR /srv
WORKDIR app
COPY src/ ./
COPY top.txt notes/
RUN echo "run sees $VERSION $FROM_ENV $GREETING" > /srv/app/run.txt && pwd >> /srv/app/run.txt
USER nobody
VOLUME /data
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=5s CMD true
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo from cmd"]
"#,
            ),
            ("src/main.txt", "main\n"),
            ("src/lib/util.txt", "util\n"),
            ("top.txt", "top\n"),
        ],
    );
    let out = b.ok(&[
        "build",
        "-t",
        "app",
        "-t",
        "app:v1",
        "--label",
        "extra=yes",
        "--iidfile",
        b.path("iid").to_str().unwrap(),
        ctx.to_str().unwrap(),
    ]);
    assert!(out.contains("[1/18] FROM $BASE"), "{out}");
    assert!(out.contains("] RUN echo"), "{out}");
    let id = std::fs::read_to_string(b.path("iid")).unwrap();
    assert!(out.trim_end().ends_with(&id), "{out}");

    let i = inspect(&b, "app:v1");
    assert_eq!(i["Id"].as_str().unwrap(), id);
    let c = &i["Config"];
    let env: Vec<&str> = c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(env.contains(&"FROM_ENV=env"), "{env:?}");
    assert!(env.contains(&"GREETING=hello 1.0"), "{env:?}");
    assert!(
        !env.iter().any(|e| e.starts_with("VERSION=")),
        "ARGs are not ENV: {env:?}"
    );
    assert_eq!(c["Labels"]["org.example.version"], "1.0");
    assert_eq!(c["Labels"]["extra"], "yes");
    assert!(c["ExposedPorts"].get("8080/tcp").is_some(), "{c}");
    assert!(c["ExposedPorts"].get("53/udp").is_some(), "{c}");
    assert_eq!(c["WorkingDir"], "/srv/app");
    assert_eq!(c["User"], "nobody");
    assert!(c["Volumes"].get("/data").is_some(), "{c}");
    assert_eq!(c["StopSignal"], "SIGQUIT");
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(c["Cmd"], serde_json::json!(["echo from cmd"]));
    assert_eq!(
        c["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "true"])
    );
    assert_eq!(i["Os"], "linux");
    assert_eq!(i["Author"], "Jane Doe <jane@example.com>");
    // A layer per filesystem step (WORKDIR /srv, WORKDIR app, 2 COPY, RUN) on the base's one.
    assert_eq!(i["RootFS"]["Layers"].as_array().unwrap().len(), 6, "{i}");

    // The image runs its ENTRYPOINT + CMD.
    assert_eq!(b.ok(&["run", "--rm", "app"]).trim(), "from cmd");
    // Folder contents copied (not the folder), dest relative to WORKDIR, RUN saw args and env.
    let out = b.ok(&[
        "run",
        "--rm",
        "app",
        "cat /srv/app/main.txt /srv/app/lib/util.txt /srv/app/notes/top.txt /srv/app/run.txt; id -u",
    ]);
    assert_eq!(
        out,
        "main\nutil\ntop\nrun sees 1.0 env hello 1.0\n/srv/app\n65534\n"
    );
    // The RUN container is gone and was never listed.
    assert_eq!(b.ok(&["ps", "-a", "-q"]).trim(), "");
    assert_eq!(b.container_folders(), 0);
}

#[test]
fn build_args_global_scope_and_env_precedence() {
    let b = setup();
    let ctx = context(
        &b,
        "ctx",
        &[(
            "Dockerfile",
            "ARG GLOBAL=g\nARG TAG=busybox\nFROM $TAG\nRUN echo \"unseen:[$GLOBAL]\"\nARG GLOBAL\nARG LOCAL=l\nENV LOCAL=env-wins\nRUN echo \"seen:[$GLOBAL] local:[$LOCAL] proxy:[$http_proxy]\"\n",
        )],
    );
    let build_with = |proxy: &str| {
        b.ok(&[
            "build",
            "--build-arg",
            "GLOBAL=cli",
            "--build-arg",
            proxy,
            "-t",
            "a",
            ctx.to_str().unwrap(),
        ])
    };
    let out = build_with("http_proxy=http://proxy.one:3128");
    assert!(out.contains("unseen:[]"), "{out}");
    assert!(
        out.contains("seen:[cli] local:[env-wins] proxy:[http://proxy.one:3128]"),
        "{out}"
    );
    // The proxy args need no ARG, and a different proxy keeps the cache.
    let again = build_with("http_proxy=http://proxy.two:3128");
    assert_eq!(cached_steps(&again).len(), 2, "{again}");
    // A different build arg value re-runs the steps that see it.
    let other = b.ok(&[
        "build",
        "--build-arg",
        "GLOBAL=other",
        "-t",
        "a",
        ctx.to_str().unwrap(),
    ]);
    assert!(other.contains("seen:[other]"), "{other}");
}

#[test]
fn copy_globs_chown_chmod_and_parent_folders() {
    let b = setup();
    // The base gets a 1777 /tmp, which a COPY into /tmp/sub must keep.
    let ctx0 = context(
        &b,
        "ctx0",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN chmod 1777 /tmp && mkdir -p /opt && chown 65534:65534 /opt\n",
        )],
    );
    build(&b, "base", &ctx0);
    let ctx = context(
        &b,
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM base\nCOPY *.txt /globbed/\nCOPY dir* /flat/\nCOPY --chown=nobody:nogroup --chmod=600 a.txt /tmp/sub/owned\nCOPY a.txt /opt/\nCOPY a.txt /renamed\n",
            ),
            ("a.txt", "a\n"),
            ("b.txt", "b\n"),
            ("c.md", "c\n"),
            ("dir1/x", "x\n"),
            ("dir2/y", "y\n"),
        ],
    );
    build(&b, "app", &ctx);
    let out = run(
        &b,
        "app",
        "ls /globbed; ls /flat; stat -c '%a %u:%g %n' /tmp /tmp/sub /tmp/sub/owned /opt /opt/a.txt; cat /renamed",
    );
    assert_eq!(
        out,
        "a.txt\nb.txt\nx\ny\n1777 0:0 /tmp\n755 0:0 /tmp/sub\n600 65534:65534 /tmp/sub/owned\n755 65534:65534 /opt\n644 0:0 /opt/a.txt\na\n"
    );
}

#[test]
fn cache_reuses_steps_until_a_source_changes() {
    let b = setup();
    let ctx = context(
        &b,
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM busybox\nRUN echo first-run\nCOPY app.txt /app/\nRUN echo second-run && cat /app/app.txt\nCOPY other.txt /app/\n",
            ),
            ("app.txt", "one\n"),
            ("other.txt", "other\n"),
        ],
    );
    let first = build(&b, "app", &ctx);
    assert!(
        printed(&first, "first-run") && printed(&first, "second-run"),
        "{first}"
    );
    assert!(cached_steps(&first).is_empty(), "{first}");
    let id1 = inspect(&b, "app")["Id"].clone();

    // Nothing changed: every step is cached and the image is the very same.
    let again = build(&b, "app", &ctx);
    assert_eq!(cached_steps(&again).len(), 4, "{again}");
    assert!(!printed(&again, "first-run"), "{again}");
    assert_eq!(inspect(&b, "app")["Id"], id1);

    // A new mtime with the same content is no change.
    sh(&format!(
        "touch -d '2001-02-03 04:05:06' {}",
        ctx.join("app.txt").display()
    ));
    let touched = build(&b, "app", &ctx);
    assert_eq!(cached_steps(&touched).len(), 4, "{touched}");

    // Editing the file re-runs from the COPY that reads it.
    std::fs::write(ctx.join("app.txt"), "two\n").unwrap();
    let edited = build(&b, "app", &ctx);
    assert_eq!(
        cached_steps(&edited),
        vec!["RUN echo first-run"],
        "{edited}"
    );
    assert!(edited.contains("second-run\ntwo"), "{edited}");
    assert_eq!(run(&b, "app", "cat /app/app.txt"), "two\n");

    // A mode change is a change too.
    sh(&format!("chmod 600 {}", ctx.join("app.txt").display()));
    let chmodded = build(&b, "app", &ctx);
    assert_eq!(cached_steps(&chmodded).len(), 1, "{chmodded}");

    // --no-cache runs everything.
    let fresh = b.ok(&["build", "--no-cache", "-t", "app", ctx.to_str().unwrap()]);
    assert!(cached_steps(&fresh).is_empty(), "{fresh}");
    assert!(printed(&fresh, "first-run"), "{fresh}");

    // Removing the image (and every dangling one, so only the cache names the build's
    // layers) keeps the build cache.
    b.ok(&["image", "prune"]);
    b.ok(&["rmi", "app"]);
    assert_eq!(b.ok(&["images", "-q"]).lines().count(), 1);
    let after_rmi = build(&b, "app", &ctx);
    assert_eq!(cached_steps(&after_rmi).len(), 4, "{after_rmi}");
    assert_eq!(run(&b, "app", "cat /app/app.txt"), "two\n");

    // A cached step whose layer left the store is rebuilt, not trusted.
    sh(&format!("rm -rf {}/snapshots/*", b.root().display()));
    let rebuilt = build(&b, "app", &ctx);
    assert!(printed(&rebuilt, "first-run"), "{rebuilt}");
    assert_eq!(run(&b, "app", "cat /app/app.txt"), "two\n");
}

#[test]
fn a_file_removed_by_run_is_gone_when_the_image_runs() {
    let b = setup();
    let ctx = context(
        &b,
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN mkdir -p /d && echo x > /d/keep && echo y > /d/drop\nRUN rm /d/drop /var/www/index.html && rm -r /root\n",
        )],
    );
    build(&b, "app", &ctx);
    let out = run(
        &b,
        "app",
        "ls /d; test -e /var/www/index.html || echo index-gone; test -e /root || echo root-gone",
    );
    assert_eq!(out, "keep\nindex-gone\nroot-gone\n");
}

#[test]
fn multi_stage_copy_from_and_target() {
    let b = setup();
    let ctx = context(
        &b,
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox AS builder\nRUN mkdir /out && echo built > /out/artifact && chown 65534 /out/artifact\n\nFROM busybox AS unused\nRUN exit 7\n\nFROM scratch AS final\nCOPY --from=builder /out/artifact /artifact\nCOPY --from=busybox /bin/busybox /bin/busybox\nCOPY --from=0 /bin/sh /bin/sh\nCMD [\"/bin/busybox\", \"cat\", \"/artifact\"]\n",
        )],
    );
    // The failing stage is not needed by the target, so it is skipped.
    let out = build(&b, "app", &ctx);
    assert!(!out.contains("exit 7"), "{out}");
    assert_eq!(b.ok(&["run", "--rm", "app"]), "built\n");
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "app",
            "/bin/busybox",
            "stat",
            "-c",
            "%u",
            "/artifact"
        ]),
        "65534\n"
    );
    // --target builds an earlier stage only.
    b.ok(&[
        "build",
        "--target",
        "builder",
        "-t",
        "b",
        ctx.to_str().unwrap(),
    ]);
    assert_eq!(run(&b, "b", "cat /out/artifact"), "built\n");
    let (code, err) = b.fail(&["build", "--target", "nope", ctx.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("target stage \"nope\" could not be found"),
        "{err}"
    );
}

#[test]
fn dockerignore_filters_the_context() {
    let b = setup();
    let ctx = context(
        &b,
        "ctx",
        &[
            ("Dockerfile", "FROM busybox\nCOPY . /ctx/\n"),
            (
                ".dockerignore",
                "# secrets stay home\nsecret\n*.log\n!keep.log\n**/*.tmp\nDockerfile\n.dockerignore\n",
            ),
            ("secret/key", "k\n"),
            ("a.log", "no\n"),
            ("keep.log", "yes\n"),
            ("sub/b.log", "anchored: kept\n"),
            ("sub/deep/c.tmp", "no\n"),
            ("main.txt", "m\n"),
        ],
    );
    build(&b, "app", &ctx);
    let out = run(&b, "app", "cd /ctx && find . -type f | sort");
    assert_eq!(out, "./keep.log\n./main.txt\n./sub/b.log\n");
    // Excluded files are not sources, with a hint about .dockerignore.
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nCOPY secret/key /\n").unwrap();
    let (code, err) = b.fail(&["build", ctx.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("Dockerfile:2: COPY secret/key /: secret/key: no such file in the build context; check the path and .dockerignore"),
        "{err}"
    );

    // <Dockerfile>.dockerignore beside the Dockerfile takes the place of .dockerignore.
    let other = b.path("elsewhere");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("app.Dockerfile"), "FROM busybox\nCOPY . /ctx/\n").unwrap();
    std::fs::write(other.join("app.Dockerfile.dockerignore"), "*\n!main.txt\n").unwrap();
    b.ok(&[
        "build",
        "-t",
        "app2",
        "-f",
        other.join("app.Dockerfile").to_str().unwrap(),
        ctx.to_str().unwrap(),
    ]);
    assert_eq!(run(&b, "app2", "cd /ctx && find . -type f"), "./main.txt\n");
}

#[test]
fn dockerfile_from_stdin_and_quiet() {
    let b = setup();
    let ctx = context(&b, "ctx", &[("f.txt", "f\n")]);
    let mut child = b
        .cmd(&["build", "-q", "-t", "q", "-f", "-", ctx.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"FROM busybox\nRUN echo noisy\nCOPY f.txt /\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.starts_with("sha256:") && stdout.lines().count() == 1,
        "{stdout}"
    );
    assert_eq!(run(&b, "q", "cat /f.txt"), "f\n");
}

#[test]
fn add_unpacks_local_archives() {
    let b = setup();
    let ctx = context(
        &b,
        "ctx",
        &[("payload/inner.txt", "inner\n"), ("plain.txt", "plain\n")],
    );
    sh(&format!(
        "cd {0}/payload && tar czf ../bundle.tar.gz inner.txt && tar cf ../bundle.tar inner.txt",
        ctx.display()
    ));
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nADD bundle.tar.gz /gz/\nADD bundle.tar /tar\nADD plain.txt /p/\nCOPY bundle.tar /copied/\n",
    )
    .unwrap();
    build(&b, "app", &ctx);
    assert_eq!(
        run(
            &b,
            "app",
            "cat /gz/inner.txt /tar/inner.txt /p/plain.txt; ls /copied"
        ),
        "inner\ninner\nplain\nbundle.tar\n"
    );
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nADD git@example.com:x/y.git /y\n",
    )
    .unwrap();
    let (_, err) = b.fail(&["build", ctx.to_str().unwrap()]);
    assert!(err.contains("git sources are not supported yet"), "{err}");
}

/// A tiny HTTP/1.1 server on 127.0.0.1 for `ADD http://…`: serves the files it holds (which
/// a test may change), answers 404 for anything else, redirects `/loop` to itself, and counts
/// the requests per path. Dropping it closes the port.
struct FileServer {
    port: u16,
    files: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, Vec<u8>>>>,
    hits: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, usize>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FileServer {
    fn start(files: &[(&str, Vec<u8>)]) -> FileServer {
        use std::io::{BufRead, BufReader};
        use std::sync::{Arc, Mutex, atomic::AtomicBool, atomic::Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let files = Arc::new(Mutex::new(
            files
                .iter()
                .map(|(p, c)| (p.to_string(), c.clone()))
                .collect::<std::collections::BTreeMap<_, _>>(),
        ));
        let hits = Arc::new(Mutex::new(std::collections::BTreeMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, h, st) = (files.clone(), hits.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    continue;
                }
                // The headers, up to the empty line.
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
                *h.lock().unwrap().entry(path.clone()).or_insert(0) += 1;
                let body = f.lock().unwrap().get(&path).cloned();
                let head = match (&body, path.as_str()) {
                    (_, "/loop") => "HTTP/1.1 302 Found\r\nLocation: /loop\r\n".to_string(),
                    (Some(b), _) => format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nLast-Modified: Wed, 21 Oct 2015 07:28:00 GMT\r\nContent-Length: {}\r\n",
                        b.len()
                    ),
                    (None, _) => "HTTP/1.1 404 Not Found\r\n".to_string(),
                };
                let body = if path == "/loop" {
                    Vec::new()
                } else {
                    body.unwrap_or_else(|| b"not found\n".to_vec())
                };
                let mut out = head.into_bytes();
                if !out.windows(15).any(|w| w == b"Content-Length:") {
                    out.extend(format!("Content-Length: {}\r\n", body.len()).bytes());
                }
                out.extend(b"Connection: close\r\n\r\n");
                out.extend(&body);
                let _ = conn.write_all(&out);
            }
        });
        FileServer {
            port,
            files,
            hits,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    fn set(&self, path: &str, content: &[u8]) {
        self.files
            .lock()
            .unwrap()
            .insert(path.to_string(), content.to_vec());
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn sha256_hex(data: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f");
    std::fs::write(&p, data).unwrap();
    sh(&format!("sha256sum {}", p.display()))
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn add_downloads_urls() {
    let b = setup();
    // A real gzip'd tar, which ADD of a URL must leave as it is.
    let payload = context(&b, "payload", &[("inner.txt", "inner\n")]);
    sh(&format!(
        "cd {0} && tar czf bundle.tar.gz inner.txt",
        payload.display()
    ));
    let tarball = std::fs::read(payload.join("bundle.tar.gz")).unwrap();
    let hello = b"hello from the web\n".to_vec();
    let server = FileServer::start(&[
        ("/files/hello.txt", hello.clone()),
        ("/files/bundle.tar.gz", tarball.clone()),
        ("/files/pinned.txt", b"pinned\n".to_vec()),
    ]);
    let hello_sum = sha256_hex(&hello);
    let pinned_sum = sha256_hex(b"pinned\n");
    let dockerfile = format!(
        "FROM busybox\nRUN mkdir /existing\nADD {hello} /dl/\nADD {hello} /existing\nADD {hello} /renamed.txt\nADD {tgz} /archives/\nADD --checksum=sha256:{pinned_sum} {pinned} /pinned/\nADD --unpack=true {tgz} /unpacked/\n",
        hello = server.url("/files/hello.txt"),
        tgz = server.url("/files/bundle.tar.gz"),
        pinned = server.url("/files/pinned.txt"),
    );
    let ctx = context(&b, "ctx", &[("Dockerfile", &dockerfile)]);
    build(&b, "web", &ctx);
    assert_eq!(
        run(
            &b,
            "web",
            "cat /dl/hello.txt /existing/hello.txt /renamed.txt /pinned/pinned.txt /unpacked/inner.txt; ls /archives"
        ),
        "hello from the web\nhello from the web\nhello from the web\npinned\ninner\nbundle.tar.gz\n"
    );
    // Mode 0600 and the Last-Modified time, as Docker gives a downloaded file.
    for f in ["/dl/hello.txt", "/renamed.txt", "/archives/bundle.tar.gz"] {
        assert_eq!(
            b.ok(&["run", "--rm", "web", "stat", "-c", "%a %u:%g %Y", f]),
            "600 0:0 1445412480\n",
            "{f}"
        );
    }
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "web",
            "busybox",
            "sha256sum",
            "/archives/bundle.tar.gz"
        ])
        .split_whitespace()
        .next()
        .unwrap(),
        sha256_hex(&tarball)
    );
    assert_eq!(
        run(&b, "web", "busybox sha256sum /dl/hello.txt | cut -d' ' -f1").trim(),
        hello_sum
    );

    // A rebuild downloads again (the content keys the cache) but reuses every step.
    let hits = server.hits("/files/hello.txt");
    let pinned_hits = server.hits("/files/pinned.txt");
    let out = build(&b, "web", &ctx);
    assert_eq!(cached_steps(&out).len(), 7, "{out}");
    assert!(server.hits("/files/hello.txt") > hits);
    // --checksum alone keys the step: no request at all.
    assert_eq!(server.hits("/files/pinned.txt"), pinned_hits);

    // New content behind the same URL re-runs the steps that read it.
    server.set("/files/hello.txt", b"changed\n");
    let out = build(&b, "web", &ctx);
    let cached = cached_steps(&out);
    assert!(cached.iter().any(|c| c.starts_with("RUN mkdir")), "{out}");
    assert!(!cached.iter().any(|c| c.contains("hello.txt")), "{out}");
    assert_eq!(run(&b, "web", "cat /dl/hello.txt"), "changed\n");

    // A pinned download, built once while the server is up.
    let pinned = context(
        &b,
        "pinned",
        &[(
            "Dockerfile",
            &format!(
                "FROM busybox\nADD --checksum=sha256:{pinned_sum} {} /pinned/\n",
                server.url("/files/pinned.txt")
            ),
        )],
    );
    build(&b, "pinned", &pinned);
    let images_before = b.ok(&["images", "-q"]);
    let attempt = |name: &str, text: String| -> String {
        let ctx = context(&b, name, &[("Dockerfile", &text)]);
        b.fail(&["build", "-t", "broken", ctx.to_str().unwrap()]).1
    };
    // A checksum that does not match fails, naming the URL and both digests.
    let wrong = "0".repeat(64);
    let url = server.url("/files/hello.txt");
    let err = attempt(
        "mismatch",
        format!("FROM busybox\nADD --checksum=sha256:{wrong} {url} /x\n"),
    );
    assert!(err.contains("Dockerfile:2: ADD --checksum"), "{err}");
    assert!(err.contains(&url), "{err}");
    assert!(
        err.contains(&format!("expected sha256:{wrong}"))
            && err.contains(&format!("got sha256:{}", sha256_hex(b"changed\n"))),
        "{err}"
    );
    let err = attempt(
        "sha512",
        format!("FROM busybox\nADD --checksum=sha512:{wrong} {url} /x\n"),
    );
    assert!(err.contains("only sha256"), "{err}");
    // An HTTP error status and a redirect loop name the URL and the line.
    let missing = server.url("/files/nope.txt");
    let err = attempt(
        "notfound",
        format!("FROM busybox\nRUN echo ok\nADD {missing} /x\n"),
    );
    assert!(err.contains("Dockerfile:3: ADD"), "{err}");
    assert!(
        err.contains(&missing) && err.contains("404 Not Found"),
        "{err}"
    );
    let looping = server.url("/loop");
    let err = attempt("copy-url", format!("FROM busybox\nCOPY {missing} /x\n"));
    assert!(
        err.contains("COPY does not download URLs; use ADD"),
        "{err}"
    );
    let err = attempt("loop", format!("FROM busybox\nADD {looping} /x\n"));
    assert!(
        err.contains("Dockerfile:2:") && err.contains(&looping) && err.contains("redirect"),
        "{err}"
    );

    // With the server gone, the pinned download still builds, from the cache alone (the same
    // image again); an unpinned one cannot be checked and fails, naming the URL.
    let port = server.port;
    drop(server);
    let out = build(&b, "pinned", &pinned);
    assert_eq!(cached_steps(&out).len(), 1, "{out}");
    assert_eq!(run(&b, "pinned", "cat /pinned/pinned.txt"), "pinned\n");
    let gone = format!("http://127.0.0.1:{port}/files/hello.txt");
    let err = attempt("offline", format!("FROM busybox\nADD {gone} /x\n"));
    assert!(
        err.contains("Dockerfile:2:") && err.contains(&gone) && err.contains("cannot reach"),
        "{err}"
    );
    // Nothing left behind by the failures.
    assert_eq!(b.ok(&["images", "-q"]), images_before);
    assert!(b.fail(&["inspect", "broken"]).1.contains("broken"));
}

#[test]
fn errors_name_the_place_and_leave_nothing_behind() {
    let b = setup();
    let images_before = b.ok(&["images", "-q"]);

    let ctx = context(&b, "bad", &[("Dockerfile", "FROM busybox\nCOPY\n")]);
    let (code, err) = b.fail(&["build", "-t", "bad", ctx.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("Dockerfile:2:"), "{err}");

    let ctx = context(
        &b,
        "missing",
        &[("Dockerfile", "FROM busybox\n\nCOPY app.py /app/\n")],
    );
    let (_, err) = b.fail(&["build", "-t", "bad", ctx.to_str().unwrap()]);
    assert!(
        err.contains("Dockerfile:3: COPY app.py /app/: app.py: no such file in the build context"),
        "{err}"
    );

    let ctx = context(
        &b,
        "failing",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo before > /before\nRUN echo about to fail && exit 3\nRUN echo never\n",
        )],
    );
    let out = b.output(&["build", "-t", "bad", ctx.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("about to fail"), "{stdout}");
    assert!(!stdout.contains("never\n"), "{stdout}");
    assert!(
        stderr.contains("Dockerfile:3: step 3/4 RUN echo about to fail && exit 3: the command exited with code 3"),
        "{stderr}"
    );

    let ctx = context(&b, "nobase", &[("Dockerfile", "FROM nosuchimage\n")]);
    let (_, err) = b.fail(&["build", "-t", "bad", ctx.to_str().unwrap()]);
    assert!(err.contains("Dockerfile:1: FROM nosuchimage"), "{err}");

    // No tag, no new image, no leftover container.
    assert_eq!(b.ok(&["images", "-q"]), images_before);
    assert!(b.fail(&["inspect", "bad"]).1.contains("bad"));
    assert_eq!(b.ok(&["ps", "-a", "-q"]).trim(), "");
}

#[test]
fn run_forms_heredocs_shell_and_mounts() {
    let b = setup();
    let ctx = context(
        &b,
        "ctx",
        &[
            (
                "Dockerfile",
                r#"FROM busybox
RUN ["/bin/sh", "-c", "echo exec-form > /exec"]
RUN <<EOF
echo heredoc-script > /heredoc
EOF
RUN cat > /written <<EOT
written by a heredoc
EOT
SHELL ["/bin/sh", "-e", "-c"]
RUN case "$-" in *e*) echo errexit > /shell;; esac
RUN --mount=type=cache,target=/cache echo run >> /cache/count && wc -l < /cache/count > /cache-count
RUN --mount=type=bind,source=data,target=/mnt/data cat /mnt/data/d.txt > /from-bind
RUN --mount=type=secret,id=token,required cat /run/secrets/token > /dev/null && echo secret-read > /secret
RUN --mount=type=tmpfs,target=/scratch touch /scratch/x
COPY --chmod=700 <<EOF /inline.sh
echo inline
EOF
USER nobody
RUN id -u
"#,
            ),
            ("data/d.txt", "bound\n"),
        ],
    );
    std::fs::write(b.path("token"), "s3cret\n").unwrap();
    let secret = format!("id=token,src={}", b.path("token").display());
    let out = b.ok(&[
        "build",
        "--secret",
        &secret,
        "-t",
        "app",
        ctx.to_str().unwrap(),
    ]);
    assert!(printed(&out, "65534"), "RUN runs as USER: {out}");
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "-u",
            "0",
            "app",
            "sh",
            "-c",
            "stat -c %a /inline.sh; sh /inline.sh"
        ]),
        "700\ninline\n"
    );
    assert_eq!(
        run(
            &b,
            "app",
            "cat /exec /heredoc /written /from-bind /secret /shell"
        ),
        "exec-form\nheredoc-script\nwritten by a heredoc\nbound\nsecret-read\nerrexit\n"
    );
    // Neither the mounts nor their mount points are in the image.
    assert_eq!(
        run(
            &b,
            "app",
            "ls -d /cache /mnt/data /run/secrets /scratch 2>/dev/null; grep -rl s3cret /bin /etc /run /srv 2>/dev/null; echo end"
        ),
        "end\n"
    );
    // The cache mount outlives the build: a --no-cache rebuild sees the first run's file.
    b.ok(&[
        "build",
        "--no-cache",
        "--secret",
        &secret,
        "-t",
        "app",
        ctx.to_str().unwrap(),
    ]);
    assert_eq!(run(&b, "app", "cat /cache-count").trim(), "2");
    // A required secret that is not given is an error naming the line and the flag.
    let (_, err) = b.fail(&["build", "-t", "app", ctx.to_str().unwrap()]);
    assert!(
        err.contains("Dockerfile:13:") && err.contains("--secret id=token"),
        "{err}"
    );
}

#[test]
fn onbuild_triggers_run_in_the_child_build() {
    let b = setup();
    let parent = context(
        &b,
        "parent",
        &[(
            "Dockerfile",
            "FROM busybox\nONBUILD COPY trigger.txt /from-trigger\nONBUILD RUN echo triggered > /ran\n",
        )],
    );
    build(&b, "parent", &parent);
    assert_eq!(
        inspect(&b, "parent")["Config"]["OnBuild"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let child = context(
        &b,
        "child",
        &[
            ("Dockerfile", "FROM parent\nRUN cat /ran\n"),
            ("trigger.txt", "t\n"),
        ],
    );
    let out = build(&b, "child", &child);
    assert!(printed(&out, "triggered"), "{out}");
    assert_eq!(run(&b, "child", "cat /from-trigger /ran"), "t\ntriggered\n");
    // The child does not pass the triggers on.
    assert!(
        inspect(&b, "child")["Config"]
            .get("OnBuild")
            .is_none_or(|v| v.is_null())
    );
}

/// The repository's examples folder.
fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
        .to_str()
        .unwrap()
        .to_string()
}

/// GETs `path` from 127.0.0.1:`port`, retrying while the server starts.
fn http_get(port: u16, path: &str) -> String {
    use std::io::Read;
    for _ in 0..100 {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let _ = s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes());
            let mut body = String::new();
            if s.read_to_string(&mut body).is_ok() && body.contains("200 OK") {
                return body;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("nothing answered on port {port}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn examples_build_and_run() {
    let b = setup();
    b.ok(&["build", "-t", "static-site", &example("static-site")]);
    let port = free_port();
    let spec = format!("127.0.0.1:{port}:80");
    b.ok(&["run", "-d", "--name", "site", "-p", &spec, "static-site"]);
    let page = http_get(port, "/");
    assert!(page.contains("Hello from a berth-built image"), "{page}");
    b.ok(&["rm", "-f", "site"]);

    b.ok(&["build", "-t", "seed-app", &example("seed-app")]);
    let port = free_port();
    let spec = format!("127.0.0.1:{port}:8000");
    b.ok(&["run", "-d", "--name", "seed", "-p", &spec, "seed-app"]);
    let hello = http_get(port, "/cgi-bin/hello");
    assert!(hello.ends_with("hello from the seed app\n"), "{hello}");
    assert_eq!(
        b.ok(&["exec", "seed", "cat", "/srv/build-info.txt"]),
        "built by berth\n"
    );
    b.ok(&["rm", "-f", "seed"]);
}

#[test]
fn multi_stage_example_compiles_a_static_c_binary_into_scratch() {
    let b = Berth::new();
    // The compiler image, made by the example's own script: debootstrap (bookworm, gcc,
    // libc6-dev) then `berth import`. The debootstrapped tarball is cached outside the
    // repository, so only the first run on a machine pays for debootstrap.
    let script = Path::new(&example("multi-stage")).join("make-gcc-image.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .env("BERTH", env!("CARGO_BIN_EXE_berth"))
        .env("BERTH_ROOT", b.root())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    eprint!("{log}");
    assert!(out.status.success(), "{script:?} failed:\n{log}");

    let built = b.ok(&["build", "-t", "hello", &example("multi-stage")]);
    assert!(
        built.contains("RUN gcc -static -O2 -o /hello hello.c"),
        "{built}"
    );
    assert_eq!(
        b.ok(&["run", "--rm", "hello"]),
        "hello, world, from a static C binary built by berth\n"
    );
    assert_eq!(
        b.ok(&["run", "--rm", "hello", "berth"]),
        "hello, berth, from a static C binary built by berth\n"
    );

    // The final image is one layer holding the binary and nothing else: no compiler, no libc.
    let i = inspect(&b, "hello");
    assert_eq!(i["RootFS"]["Layers"].as_array().unwrap().len(), 1, "{i}");
    assert_eq!(i["Config"]["Entrypoint"], serde_json::json!(["/hello"]));
    let archive = b.path("hello.tar");
    b.ok(&["save", "-o", archive.to_str().unwrap(), "hello"]);
    let layout = b.path("hello-layout");
    std::fs::create_dir(&layout).unwrap();
    sh(&format!(
        "tar -C {} -xf {}",
        layout.display(),
        archive.display()
    ));
    let blob = |digest: &serde_json::Value| {
        layout
            .join("blobs/sha256")
            .join(digest.as_str().unwrap().trim_start_matches("sha256:"))
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(&index["manifests"][0]["digest"])).unwrap())
            .unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{manifest}");
    let listing = sh(&format!(
        "tar -tvf {}",
        blob(&layers[0]["digest"]).display()
    ));
    let entries: Vec<&str> = listing.lines().collect();
    assert_eq!(entries.len(), 1, "{listing}");
    assert!(
        entries[0].starts_with("-rwx") && entries[0].ends_with(" hello"),
        "{listing}"
    );
}

#[test]
fn context_on_stdin_parents_exclude_and_prune() {
    let b = setup();
    let ctx = context(
        &b,
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM busybox\nCOPY --parents a/*/x.txt /p/\nCOPY --exclude=*.md --exclude=**/skip src/ /e/\n",
            ),
            ("a/one/x.txt", "1\n"),
            ("a/two/x.txt", "2\n"),
            ("src/keep.txt", "k\n"),
            ("src/notes.md", "no\n"),
            ("src/deep/skip", "no\n"),
        ],
    );
    // A tar context on stdin.
    let tar = b.path("ctx.tar.gz");
    sh(&format!(
        "tar -C {} -czf {} .",
        ctx.display(),
        tar.display()
    ));
    let out = b
        .cmd(&["build", "-t", "fromtar", "-"])
        .stdin(std::fs::File::open(&tar).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        run(&b, "fromtar", "cd / && find /p /e -type f | sort"),
        "/e/keep.txt\n/p/a/one/x.txt\n/p/a/two/x.txt\n"
    );
    // A lone Dockerfile on stdin: an empty context.
    let out = b
        .cmd(&["build", "-q", "-t", "lone", "-"])
        .stdin(std::fs::File::open(ctx.join("Dockerfile")).unwrap())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no such file in the build context"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // builder prune forgets the cache: the next build runs every step again.
    build(&b, "again", &ctx);
    let pruned = b.ok(&["builder", "prune", "-f"]);
    assert!(pruned.contains("Deleted"), "{pruned}");
    let out = build(&b, "again", &ctx);
    assert!(cached_steps(&out).is_empty(), "{out}");
}

#[test]
fn context_symlinks_never_lead_outside_it() {
    let b = setup();
    let ctx = context(&b, "ctx", &[("Dockerfile", "FROM busybox\nCOPY . /ctx/\n")]);
    std::os::unix::fs::symlink("/etc", ctx.join("hostetc")).unwrap();
    build(&b, "app", &ctx);
    // The link is copied as a link (to the image's own /etc), not followed.
    assert_eq!(run(&b, "app", "readlink /ctx/hostetc"), "/etc\n");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nCOPY hostetc/hostname /stolen\n",
    )
    .unwrap();
    let (_, err) = b.fail(&["build", ctx.to_str().unwrap()]);
    assert!(err.contains("no such file in the build context"), "{err}");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM --platform=linux/s390x busybox\n",
    )
    .unwrap();
    let (_, err) = b.fail(&["build", ctx.to_str().unwrap()]);
    assert!(
        err.contains("platform linux/s390x cannot be built here"),
        "{err}"
    );
}

#[test]
fn ctrl_c_stops_the_running_step_and_leaves_nothing() {
    use std::io::{BufRead, BufReader, Read};
    let b = setup();
    let ctx = context(
        &b,
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo one\nRUN echo two\nRUN echo sleeping && sleep 30\n",
        )],
    );
    let mut child = b
        .cmd(&["build", "-t", "never", ctx.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while out.read_line(&mut line).unwrap() > 0 && !line.ends_with("sleeping\n") {}
    assert!(line.ends_with("sleeping\n"), "{line}");
    // Ctrl-C reaches the current step (not a finished one), which stops the build.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("Dockerfile:4: step 4/4"), "{err}");
    assert!(b.fail(&["inspect", "never"]).1.contains("never"));
    assert_eq!(b.container_folders(), 0);
}

#[test]
fn bind_mounts_from_stages_and_the_context_key_the_cache_by_content() {
    let b = setup();
    let ctx = context(
        &b,
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM busybox AS tools\nRUN mkdir -p /opt/tool && echo from-stage > /opt/tool/msg\n\nFROM busybox\nRUN --mount=type=bind,from=tools,source=/opt/tool,target=/t cat /t/msg > /stage-msg\nRUN --mount=type=bind,source=input.txt,target=/in.txt,rw echo scribble >> /in.txt && cat /in.txt > /ctx-msg\nRUN --mount=type=secret,id=token,env=TOKEN test \"$TOKEN\" = s3cret && echo env-secret > /env-secret\n",
            ),
            ("input.txt", "first\n"),
            (".dockerignore", "ignored.txt\n"),
            ("ignored.txt", "no\n"),
        ],
    );
    std::fs::write(b.path("token"), "s3cret\n").unwrap();
    let secret = format!("id=token,src={}", b.path("token").display());
    let args = [
        "build",
        "--secret",
        &secret,
        "-t",
        "app",
        ctx.to_str().unwrap(),
    ];
    b.ok(&args);
    assert_eq!(
        run(&b, "app", "cat /stage-msg /ctx-msg /env-secret"),
        "from-stage\nfirst\nscribble\nenv-secret\n"
    );
    // The bound file in the context was not written to, and is not in the image.
    assert_eq!(
        std::fs::read_to_string(ctx.join("input.txt")).unwrap(),
        "first\n"
    );
    assert_eq!(run(&b, "app", "ls /t /in.txt 2>&1 | wc -l").trim(), "2");
    // Same content: cached; new content of the bound file: that step runs again.
    let again = b.ok(&args);
    assert_eq!(cached_steps(&again).len(), 4, "{again}");
    std::fs::write(ctx.join("input.txt"), "second\n").unwrap();
    let changed = b.ok(&args);
    assert_eq!(cached_steps(&changed).len(), 2, "{changed}");
    assert_eq!(run(&b, "app", "cat /ctx-msg"), "second\nscribble\n");
    // .dockerignore holds for bind mounts too.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN --mount=type=bind,source=ignored.txt,target=/x cat /x\n",
    )
    .unwrap();
    let (_, err) = b.fail(&["build", ctx.to_str().unwrap()]);
    assert!(err.contains("no such file in the build context"), "{err}");
}

#[test]
fn independent_stages_build_at_the_same_time() {
    let b = setup();
    // Each of the two stages waits for the other to have started: they only both finish if
    // they run side by side. (A sequential build would fail after its 20 s wait.)
    let ctx = context(
        &b,
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox AS a\nRUN --mount=type=cache,id=meet,target=/meet touch /meet/a && i=0; while [ ! -e /meet/b ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done; test -e /meet/b && echo a > /a\n\nFROM busybox AS b\nRUN --mount=type=cache,id=meet,target=/meet touch /meet/b && i=0; while [ ! -e /meet/a ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done; test -e /meet/a && echo b > /b\n\nFROM busybox\nCOPY --from=a /a /\nCOPY --from=b /b /\n",
        )],
    );
    build(&b, "app", &ctx);
    assert_eq!(run(&b, "app", "cat /a /b"), "a\nb\n");

    // When one of them fails, the build reports that one, and leaves nothing behind.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox AS a\nRUN exit 4\n\nFROM busybox AS b\nRUN sleep 0.5\nRUN echo never-runs\n\nFROM busybox\nCOPY --from=a / /a\nCOPY --from=b / /b\n",
    )
    .unwrap();
    let (code, err) = b.fail(&["build", "--no-cache", "-t", "bad", ctx.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("Dockerfile:2:") && err.contains("code 4"),
        "{err}"
    );
    assert!(!err.contains("another stage"), "{err}");
    assert_eq!(b.container_folders(), 0);
}

/// The diff_ids of an image's layers.
fn layers(b: &Berth, name: &str) -> Vec<String> {
    inspect(b, name)["RootFS"]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn copy_link_makes_a_layer_that_does_not_depend_on_the_steps_below() {
    let b = setup();
    let dockerfile = |marker: &str| {
        format!(
            "FROM busybox
RUN echo {marker} > /marker && mkdir -m 700 /private && mkdir /real && ln -s /real /lnk
COPY --link app.txt /etc/app/
COPY --link app.txt /lnk/
COPY --link --chown=65534:65534 --chmod=600 app.txt /private/deep/owned
COPY app.txt /plain/
"
        )
    };
    let ctx = context(
        &b,
        "ctx",
        &[("Dockerfile", &dockerfile("one")), ("app.txt", "app\n")],
    );
    let first = build(&b, "app", &ctx);
    assert!(cached_steps(&first).is_empty(), "{first}");

    // The image is the overlay of every layer: the linked files sit beside what was there,
    // their folders are their own (fresh, 0755, root or the --chown owner), and a symlink
    // below is replaced by a folder, never followed.
    let out = run(
        &b,
        "app",
        "cat /marker /etc/app/app.txt; head -1 /etc/passwd; ls /real | wc -l; \
         stat -c '%F %a %u:%g %n' /lnk /lnk/app.txt /private /private/deep /private/deep/owned",
    );
    assert_eq!(
        out,
        "one\napp\nroot:x:0:0:root:/root:/bin/sh\n0\n\
         directory 755 0:0 /lnk\nregular file 644 0:0 /lnk/app.txt\n\
         directory 755 65534:65534 /private\ndirectory 755 65534:65534 /private/deep\n\
         regular file 600 65534:65534 /private/deep/owned\n"
    );
    assert_eq!(run(&b, "app", "cat /private/deep/owned"), "app\n");
    let id1 = inspect(&b, "app")["Id"].clone();
    let layers1 = layers(&b, "app");
    assert_eq!(layers1.len(), 6, "{layers1:?}");

    // The RUN below them changes: the --link steps are reused as they were (the same
    // layers, rebased onto the new one), the plain COPY runs again.
    std::fs::write(ctx.join("Dockerfile"), dockerfile("two")).unwrap();
    let second = build(&b, "app", &ctx);
    assert_eq!(
        cached_steps(&second),
        vec![
            "COPY --link app.txt /etc/app/",
            "COPY --link app.txt /lnk/",
            "COPY --link --chown=65534:65534 --chmod=600 app.txt /private/deep/owned",
        ],
        "{second}"
    );
    let layers2 = layers(&b, "app");
    assert_ne!(inspect(&b, "app")["Id"], id1);
    assert_ne!(layers2[1], layers1[1], "the RUN layer changed");
    assert_eq!(
        layers2[2..5],
        layers1[2..5],
        "the linked layers are the same"
    );
    assert_eq!(
        run(
            &b,
            "app",
            "cat /marker /etc/app/app.txt /lnk/app.txt /plain/app.txt"
        ),
        "two\napp\napp\napp\n"
    );

    // A COPY below changes: the same again.
    let ctx2 = context(
        &b,
        "ctx2",
        &[
            (
                "Dockerfile",
                "FROM busybox\nCOPY first.txt /first.txt\nCOPY --link app.txt /app/\n",
            ),
            ("first.txt", "1\n"),
            ("app.txt", "app\n"),
        ],
    );
    build(&b, "two", &ctx2);
    let before = layers(&b, "two");
    std::fs::write(ctx2.join("first.txt"), "2\n").unwrap();
    let again = build(&b, "two", &ctx2);
    assert_eq!(
        cached_steps(&again),
        vec!["COPY --link app.txt /app/"],
        "{again}"
    );
    let after = layers(&b, "two");
    assert_ne!(after[1], before[1]);
    assert_eq!(after[2], before[2]);
    assert_eq!(run(&b, "two", "cat /first.txt /app/app.txt"), "2\napp\n");

    // Without --link the same change runs the COPY again.
    std::fs::write(
        ctx2.join("Dockerfile"),
        "FROM busybox\nCOPY first.txt /first.txt\nCOPY app.txt /app/\n",
    )
    .unwrap();
    build(&b, "two", &ctx2);
    std::fs::write(ctx2.join("first.txt"), "3\n").unwrap();
    let unlinked = build(&b, "two", &ctx2);
    assert!(cached_steps(&unlinked).is_empty(), "{unlinked}");

    // A changed source does run a --link step again.
    std::fs::write(ctx.join("app.txt"), "new\n").unwrap();
    let edited = build(&b, "app", &ctx);
    assert!(
        !cached_steps(&edited).iter().any(|s| s.contains("--link")),
        "{edited}"
    );
    assert_eq!(run(&b, "app", "cat /lnk/app.txt"), "new\n");
}

/// `berth build ARGS` (shell-quoted) under a pseudo-terminal, as a person at one runs it;
/// returns whether it succeeded and everything the terminal was sent.
fn build_in_terminal(b: &Berth, args: &str) -> (bool, String) {
    let out = b.in_terminal(&format!("build {args}"));
    let screen = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.success(), screen)
}

/// Whether `out` was drawn by the live display: only it marks finished steps `DONE` and
/// moves the cursor.
fn live(out: &str) -> bool {
    out.contains("DONE") && out.contains("\x1b[")
}

#[test]
fn tty_progress_shows_the_running_step_and_its_output() {
    let b = setup();
    // The marker as printed (live-42) differs from the instruction that prints it, so seeing
    // it means the step's output was drawn. The sleep keeps the step on screen for a redraw.
    let ctx = context(
        &b,
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo live-$((6*7)); sleep 1\nENV STEP=3\n",
        )],
    );
    let args = format!("--progress tty -t live {}", ctx.display());
    let (ok, screen) = build_in_terminal(&b, &args);
    assert!(ok, "{screen}");
    assert!(live(&screen), "{screen}");
    assert!(
        screen.contains("[2/3] RUN echo live-$((6*7)); sleep 1"),
        "{screen}"
    );
    assert!(screen.contains("live-42"), "{screen}");
    assert!(
        screen.contains("Successfully tagged live:latest"),
        "{screen}"
    );
    let id = b.ok(&["images", "-q", "--no-trunc", "live"]);
    assert!(screen.contains(id.trim()), "{screen}");
    // Built again, the RUN comes from the cache and says so.
    let (ok, again) = build_in_terminal(&b, &args);
    assert!(ok && again.contains("CACHED"), "{again}");
}

#[test]
fn auto_progress_is_live_on_a_terminal_and_plain_in_a_pipe() {
    let b = setup();
    let ctx = context(
        &b,
        "ctx",
        &[("Dockerfile", "FROM busybox\nRUN echo piped\n")],
    );
    let dir = ctx.to_str().unwrap();
    let (ok, screen) = build_in_terminal(&b, &format!("--no-cache {dir}"));
    assert!(ok && live(&screen), "{screen}");

    // In a pipe: the plain step lines and the RUN's output as they come, as before.
    let out = b.output(&["build", "--no-cache", "--progress", "auto", dir]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(printed(&stdout, "[2/2] RUN echo piped"), "{stdout}");
    assert!(printed(&stdout, "piped"), "{stdout}");
    assert!(
        !live(&stdout) && !stderr.contains('\x1b'),
        "{stdout}{stderr}"
    );

    // As BuildKit's, a live display asked for with no terminal to draw it is an error.
    let (_, err) = b.fail(&["build", "--progress", "tty", dir]);
    assert!(err.contains("--progress tty needs a terminal"), "{err}");
}

#[test]
fn tty_progress_prints_the_whole_output_of_a_failed_run() {
    let b = setup();
    let ctx = context(
        &b,
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo out-$((1+1)); echo err-$((2+1)) >&2; exit 3\n",
        )],
    );
    let (ok, screen) = build_in_terminal(&b, &format!("--progress tty {}", ctx.display()));
    assert!(!ok, "{screen}");
    assert!(screen.contains("ERROR"), "{screen}");
    // The failed step's output, under its name, then the build's error with the place.
    let report = screen
        .find("> [2/2] RUN echo out-")
        .map(|i| &screen[i..])
        .unwrap_or_else(|| panic!("no report of the failed step: {screen}"));
    assert!(
        report.contains("out-2") && report.contains("err-3"),
        "{screen}"
    );
    assert!(report.contains("Dockerfile:2"), "{screen}");
    assert!(report.contains("exited with code 3"), "{screen}");
}
