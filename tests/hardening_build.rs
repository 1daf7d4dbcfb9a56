//! End-to-end regressions for hostile builds found by a black-box probe: each test is a
//! Dockerfile or a context that once exhausted the host's memory, crashed berth, ran for
//! minutes, or could not be stopped, and must not again.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::Berth;

/// The address space berth gets in the memory tests (`ulimit -v`, KiB): a build of these
/// Dockerfiles with ordinary values fits in 100 MB (measured; wasmtime is linked in), while
/// the doubling ARG chain asked for 24 GB before expansion was bounded.
const ADDRESS_SPACE_KIB: u64 = 1_000_000;

/// How long a build that must be quick may take before the test stops it and fails.
const WATCHDOG: Duration = Duration::from_secs(60);

/// Writes a context folder `name` with `files` (path, content) and returns it.
fn context(b: &Berth, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = b.path(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (path, content) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    dir
}

/// `berth ARGS` under `ulimit -v`, as a host with little memory would run it.
fn output_with_memory_limit(b: &Berth, args: &[&str]) -> std::process::Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {ADDRESS_SPACE_KIB}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .env("BERTH_ROOT", b.root())
        .stdin(Stdio::null())
        .output()
        .expect("run berth")
}

/// Waits for `child` at most [`WATCHDOG`]; past it, kills it and fails the test with `what`.
fn wait_with_watchdog(child: &mut Child, what: &str) -> ExitStatus {
    let deadline = Instant::now() + WATCHDOG;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} was still running after {WATCHDOG:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stderr_of(child: &mut Child) -> String {
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    err
}

/// Files under `dir`, recursively.
fn count_files(dir: &Path) -> usize {
    common::tree(dir)
        .iter()
        .filter(|p| dir.join(p).is_file())
        .count()
}

#[test]
fn a_normal_build_fits_in_the_memory_limit_of_these_tests() {
    let b = Berth::new();
    let ctx = context(
        &b,
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM scratch\nARG A=1\nCOPY a.txt /\nLABEL a=$A\n",
            ),
            ("a.txt", "a\n"),
        ],
    );
    let out = output_with_memory_limit(&b, &["build", "-t", "fits", ctx.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_doubling_arg_chain_fails_cleanly_naming_its_line() {
    let b = Berth::new();
    // Each ARG doubles the one before: A30 alone would be 8 GiB.
    let mut stage = String::from("FROM scratch\nARG A0=xxxxxxxx\n");
    let mut global = String::from("ARG A0=xxxxxxxx\n");
    for i in 1..=34 {
        let line = format!("ARG A{i}=${{A{p}}}${{A{p}}}\n", p = i - 1);
        stage.push_str(&line);
        global.push_str(&line);
    }
    global.push_str("FROM scratch\nLABEL a=$A34\n");
    // A18 (2 MiB) is the first over the limit: line 20 in the stage, 19 before FROM.
    for (dockerfile, line) in [(stage, 20), (global, 19)] {
        let ctx = context(&b, "ctx", &[("Dockerfile", &dockerfile)]);
        let out = output_with_memory_limit(&b, &["build", ctx.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{:?}: {err}", out.status);
        assert!(
            err.contains(&format!("Dockerfile:{line}: ARG A18=${{A17}}${{A17}}: ")),
            "{err}"
        );
        assert!(err.contains("1 MiB"), "{err}");
    }
}

#[test]
fn many_large_values_stop_at_the_build_budget() {
    let b = Berth::new();
    // Each value is under the per-value limit; together they would be gigabytes.
    let mut dockerfile = String::from("FROM scratch\nARG A0=xxxxxxxx\n");
    for i in 1..=17 {
        dockerfile.push_str(&format!("ARG A{i}=${{A{p}}}${{A{p}}}\n", p = i - 1));
    }
    for i in 0..2000 {
        dockerfile.push_str(&format!("LABEL l{i}=$A17\n"));
    }
    let ctx = context(&b, "ctx", &[("Dockerfile", &dockerfile)]);
    let out = output_with_memory_limit(&b, &["build", ctx.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{:?}: {err}", out.status);
    // The ARGs substitute 2 MiB, then 1 MiB a line: the 63rd LABEL (line 82) is past 64 MiB.
    assert!(err.contains("Dockerfile:82: LABEL l62=$A17: "), "{err}");
    assert!(err.contains("64 MiB"), "{err}");
}

#[test]
fn deeply_nested_substitution_fails_cleanly() {
    let b = Berth::new();
    let depth = 100_000;
    let dockerfile = format!(
        "FROM scratch\nENV V={}x{}\n",
        "${U:-".repeat(depth),
        "}".repeat(depth)
    );
    let ctx = context(&b, "ctx", &[("Dockerfile", &dockerfile)]);
    let out = output_with_memory_limit(&b, &["build", ctx.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{:?}: {err}", out.status);
    assert!(err.contains("Dockerfile:2: ENV V=${U:-"), "{err}");
    assert!(err.contains("nested"), "{err}");
    // The word is shortened in the message, not printed whole.
    assert!(err.len() < 2000, "{} bytes of error", err.len());
}

/// 200 files: 150 at the top and 50 down a 40-level folder, a fifth of them named `*b`.
fn deep_context(b: &Berth, name: &str) -> PathBuf {
    let dir = context(b, name, &[]);
    for i in 0..150 {
        let file = if i % 5 == 0 {
            format!("f{i}b")
        } else {
            format!("f{i}.txt")
        };
        std::fs::write(dir.join(file), "x").unwrap();
    }
    let mut deep = dir.clone();
    for level in 0..40 {
        deep.push("d");
        std::fs::create_dir_all(&deep).unwrap();
        if level % 4 == 0 {
            for i in 0..5 {
                let file = if i == 0 {
                    format!("g{i}b")
                } else {
                    format!("g{i}.txt")
                };
                std::fs::write(deep.join(file), "x").unwrap();
            }
        }
    }
    dir
}

#[test]
fn many_double_stars_in_dockerignore_match_quickly() {
    let b = Berth::new();
    let ctx = deep_context(&b, "ctx");
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY . /ctx/\n").unwrap();
    std::fs::write(
        ctx.join(".dockerignore"),
        format!("{}*b\nDockerfile\n.dockerignore\n", "**/".repeat(60)),
    )
    .unwrap();
    let mut child = b
        .cmd(&["build", "-t", "deep", ctx.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_with_watchdog(&mut child, "the build with `**/` 60 times");
    let err = stderr_of(&mut child);
    assert!(status.success(), "{status:?}: {err}");
    // What the pattern leaves: every file not named `*b`.
    let out = b.path("out");
    std::fs::create_dir_all(&out).unwrap();
    let archive = b.path("deep.tar");
    b.ok(&["save", "-o", archive.to_str().unwrap(), "deep"]);
    let listing = image_files(&archive);
    assert_eq!(
        listing.iter().filter(|f| f.ends_with('b')).count(),
        0,
        "{listing:?}"
    );
    assert_eq!(listing.len(), 120 + 40, "{listing:?}");
}

/// The regular files in the layers of the one image in an OCI archive from `berth save`.
fn image_files(archive: &Path) -> Vec<String> {
    let dir = archive.with_extension("unpacked");
    std::fs::create_dir_all(&dir).unwrap();
    common::sh(&format!(
        "tar -xf {} -C {}",
        archive.display(),
        dir.display()
    ));
    let mut files = Vec::new();
    for blob in std::fs::read_dir(dir.join("blobs/sha256")).unwrap() {
        let blob = blob.unwrap().path();
        let listing = Command::new("tar")
            .arg("-tzvf")
            .arg(&blob)
            .stderr(Stdio::null())
            .output()
            .unwrap();
        if !listing.status.success() {
            continue;
        }
        for line in String::from_utf8_lossy(&listing.stdout).lines() {
            if line.starts_with('-') {
                files.push(line.rsplit(' ').next().unwrap().to_string());
            }
        }
    }
    files
}

#[test]
fn a_signal_during_a_slow_context_scan_ends_the_build() {
    let b = Berth::new();
    let ctx = deep_context(&b, "ctx");
    // Legitimately slow: tens of thousands of patterns, each tried on every file.
    let mut ignore = String::new();
    for i in 0..40_000 {
        ignore.push_str(&format!("d/**/nothing{i}/**/*.log\n"));
    }
    std::fs::write(ctx.join(".dockerignore"), ignore).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nLABEL before=copy\nCOPY . /ctx/\n",
    )
    .unwrap();
    for (signal, code, name) in [
        (nix::sys::signal::Signal::SIGTERM, 143, "SIGTERM"),
        (nix::sys::signal::Signal::SIGINT, 130, "SIGINT"),
    ] {
        let mut child = b
            .cmd(&["build", "-t", "never", ctx.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while out.read_line(&mut line).unwrap() > 0 && !line.contains("COPY . /ctx/") {}
        assert!(line.contains("COPY . /ctx/"), "{line}");
        std::thread::sleep(Duration::from_millis(200));
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
        let status = wait_with_watchdog(&mut child, &format!("the build after {name}"));
        let err = stderr_of(&mut child);
        assert_eq!(status.code(), Some(code), "{status:?}: {err}");
        assert!(err.contains(&format!("stopped by {name}")), "{err}");
        // Nothing named, nothing left half-written.
        assert!(b.fail(&["inspect", "never"]).1.contains("never"));
        let tmp = b.root().join("tmp");
        let left: Vec<_> = std::fs::read_dir(&tmp)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "left in {}: {left:?}", tmp.display());
        assert_eq!(b.container_folders(), 0);
    }
}

/// The number of entries in the build cache.
fn cache_entries(b: &Berth) -> usize {
    let dir = b.root().join("build-cache");
    if dir.is_dir() { count_files(&dir) } else { 0 }
}

#[test]
fn thousands_of_labels_make_one_cache_entry_and_rebuild_cached() {
    let b = Berth::new();
    let mut dockerfile = String::from("FROM scratch\n");
    for i in 0..2000 {
        dockerfile.push_str(&format!("LABEL label{i}=value{i}\n"));
    }
    let ctx = context(&b, "ctx", &[("Dockerfile", &dockerfile)]);
    let before = cache_entries(&b);
    let mut child = b
        .cmd(&["build", "-q", "-t", "labels", ctx.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_with_watchdog(&mut child, "the build of 2,000 LABEL lines");
    let mut id = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut id)
        .unwrap();
    assert!(status.success(), "{}", stderr_of(&mut child));
    assert!(
        cache_entries(&b) - before <= 1,
        "{} entries",
        cache_entries(&b)
    );

    let inspect: serde_json::Value = serde_json::from_str(&b.ok(&["inspect", "labels"])).unwrap();
    let labels = inspect[0]["Config"]["Labels"].as_object().unwrap();
    assert_eq!(labels.len(), 2000);
    assert_eq!(labels["label1999"], "value1999");
    let history = b.ok(&["history", "labels"]);
    assert!(history.contains("LABEL label1999=value1999"), "{history}");

    // Nothing changed: the same image, from the cache, and no new entry.
    let entries = cache_entries(&b);
    let again = b.ok(&["build", "-q", "-t", "labels", ctx.to_str().unwrap()]);
    assert_eq!(again.trim(), id.trim());
    assert_eq!(cache_entries(&b), entries);
}

#[test]
fn a_dockerfile_over_the_size_limit_is_refused() {
    let b = Berth::new();
    let mut dockerfile = String::from("FROM scratch\n");
    while dockerfile.len() <= 5 << 20 {
        dockerfile.push_str("LABEL padding=0123456789012345678901234567890123456789\n");
    }
    let size = dockerfile.len();
    let ctx = context(&b, "ctx", &[("Dockerfile", &dockerfile)]);
    let (code, err) = b.fail(&["build", ctx.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "Dockerfile: the Dockerfile is {size} bytes, over berth's limit of 4194304 bytes (4 MiB)"
        )),
        "{err}"
    );
    // The same from stdin, read no further than the limit.
    let mut child = b
        .cmd(&["build", "-f", "-", ctx.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let _ = stdin.write_all(dockerfile.as_bytes());
    });
    let status = wait_with_watchdog(&mut child, "the build of a Dockerfile from stdin");
    let err = stderr_of(&mut child);
    let _ = writer.join();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("over berth's limit of 4194304 bytes"), "{err}");
    assert_eq!(cache_entries(&b), 0);
}
