//! End-to-end: WASI images through the same CLI and lifecycle as native ones. The guests are
//! tests/guests/probe.rs built for wasm32-wasip1 (a core module) and wasm32-wasip2 (a
//! component); images are made by `berth build` from `FROM scratch`.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Berth, eventually, probe};

/// Builds `name` from a context holding the probe (as /probe.wasm) and `data/`.
fn build_probe_image(b: &Berth, name: &str, target: &str, dockerfile: &str) {
    let ctx = b.path(&format!("ctx-{name}"));
    std::fs::create_dir_all(ctx.join("data")).unwrap();
    std::fs::copy(probe(target), ctx.join("probe.wasm")).unwrap();
    std::fs::write(ctx.join("data/a.txt"), "alpha\n").unwrap();
    std::fs::write(ctx.join("data/b.txt"), "beta\n").unwrap();
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    b.ok(&["build", "-q", "-t", name, ctx.to_str().unwrap()]);
}

const PROBE_DOCKERFILE: &str = "FROM scratch
COPY data/ /data/
COPY probe.wasm /probe.wasm
ENV GREETING=hello
ENTRYPOINT [\"/probe.wasm\"]
";

fn setup() -> Berth {
    let b = Berth::new();
    build_probe_image(&b, "probe", "wasm32-wasip1", PROBE_DOCKERFILE);
    b
}

fn sha256_hex(bytes: &[u8]) -> String {
    let out = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(bytes)?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn inspect(b: &Berth, name: &str) -> serde_json::Value {
    serde_json::from_str::<serde_json::Value>(&b.ok(&["inspect", name])).unwrap()[0].clone()
}

#[test]
fn build_marks_the_image_wasi_and_run_gives_output_args_env_and_exit_codes() {
    let b = setup();
    let img = inspect(&b, "probe");
    assert_eq!(img["Os"], "wasip1", "{img}");
    assert_eq!(img["Architecture"], "wasm", "{img}");

    assert_eq!(
        b.ok(&["run", "--rm", "probe", "args", "one", "two words"]),
        "/probe.wasm\nargs\none\ntwo words\n"
    );
    let env_file = b.path("env.list");
    std::fs::write(&env_file, "FROMFILE=yes\n").unwrap();
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "-e",
            "FOO=bar",
            "--env-file",
            env_file.to_str().unwrap(),
            "probe",
            "env",
            "FOO",
            "GREETING",
            "FROMFILE",
            "NOPE"
        ]),
        "FOO=bar\nGREETING=hello\nFROMFILE=yes\nNOPE unset\n"
    );
    let out = b.output(&["run", "--rm", "probe", "exit", "7"]);
    assert_eq!(out.status.code(), Some(7));
    let out = b.output(&["run", "--rm", "probe", "stderr", "to", "stderr"]);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "to stderr\n");
    assert!(out.stdout.is_empty());
    // A panic is a trap: wasmtime's 134, with the reason on stderr.
    let out = b.output(&["run", "--rm", "probe", "panic"]);
    assert_eq!(out.status.code(), Some(134));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("probe panicked on purpose"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // -w reaches the guest as PWD (WASI preview 1 has no working directory of its own).
    assert_eq!(
        b.ok(&["run", "--rm", "-w", "/data", "probe", "env", "PWD"]),
        "PWD=/data\n"
    );
    // -i: stdin reaches the guest.
    let mut child = b
        .cmd(&["run", "--rm", "-i", "probe", "stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"piped in\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "piped in\n");
    assert_eq!(b.ok(&["ps", "-aq"]), "", "--rm removed every container");
    // A guest reports its exit before its process has ended: what it leaves (its folder, its
    // cgroup) goes after `run` returns.
    let id = b
        .ok(&["run", "-d", "--rm", "probe", "exit", "3"])
        .trim()
        .to_string();
    b.wait_until_gone(&id);
}

#[test]
fn components_run_as_wasip2() {
    let b = Berth::new();
    build_probe_image(&b, "probe2", "wasm32-wasip2", PROBE_DOCKERFILE);
    let img = inspect(&b, "probe2");
    assert_eq!(img["Os"], "wasip2", "{img}");
    assert_eq!(img["Architecture"], "wasm");
    assert_eq!(
        b.ok(&["run", "--rm", "-e", "X=1", "probe2", "env", "X", "GREETING"]),
        "X=1\nGREETING=hello\n"
    );
    assert_eq!(
        b.ok(&["run", "--rm", "probe2", "cat", "/data/b.txt"]),
        "beta\n"
    );
    // Rust's wasip2 std reports a failing exit as wasi:cli's error result: code 1, as
    // `wasmtime run` gives (only exit-with-code gives others: see below).
    let out = b.output(&["run", "--rm", "probe2", "exit", "5"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        b.output(&["run", "--rm", "probe2", "exit", "0"])
            .status
            .code(),
        Some(0)
    );
}

/// The device, inode and modification time of `path`: a rewrite (by rename) changes them.
fn file_identity(path: &Path) -> (u64, u64, std::time::SystemTime) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).unwrap();
    (m.dev(), m.ino(), m.modified().unwrap())
}

/// Asserts that `out` succeeded without compiling its guest again.
fn assert_started_from_the_cache(out: &std::process::Output, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what} failed: {err}");
    assert!(
        !err.contains("discarding the compiled module") && !err.contains("compiling it again"),
        "{what} compiled its component again: {err}"
    );
}

#[test]
fn a_component_starts_from_its_compiled_artifact() {
    let b = Berth::new();
    build_probe_image(&b, "probe2", "wasm32-wasip2", PROBE_DOCKERFILE);
    // `berth build` compiled the entrypoint into the cache.
    let cache = b.root().join("wasm-cache");
    let found: Vec<PathBuf> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    let art = &found[0];
    let before = file_identity(art);
    // Each start deserializes that artifact inside the container (no /proc there, and the
    // store out of sight), rather than discarding it and compiling the component again.
    for _ in 0..2 {
        let out = b.output(&["run", "--rm", "probe2", "cat", "/data/a.txt"]);
        assert_started_from_the_cache(&out, "run");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "alpha\n");
        assert_eq!(
            file_identity(art),
            before,
            "a run rewrote {}",
            art.display()
        );
    }
    // So does `exec` of the component in a running container.
    b.ok(&["run", "-d", "--name", "nap2", "probe2", "sleep", "600"]);
    wait_for_log(&b, "nap2", "sleeping");
    let out = b.output(&["exec", "nap2", "/probe.wasm", "cat", "/data/b.txt"]);
    assert_started_from_the_cache(&out, "exec");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "beta\n");
    assert_eq!(file_identity(art), before, "exec rewrote {}", art.display());
    b.ok(&["rm", "-f", "nap2"]);
}

/// The guest tests/guests/`name`, a Cargo project of its own, built for wasm32-wasip2 into
/// this test's target folder (where cargo keeps it between runs).
fn cargo_guest(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/guests")
        .join(name);
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("guests");
    let status = Command::new("cargo")
        .args(["build", "--release", "--quiet", "--locked"])
        .args(["--target", "wasm32-wasip2", "--target-dir"])
        .arg(&target)
        .current_dir(&dir)
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .expect("run cargo");
    assert!(
        status.success(),
        "building {} failed: run the tests through tests/run.sh, which adds the target with rustup",
        dir.display()
    );
    target.join(format!("wasm32-wasip2/release/{name}.wasm"))
}

#[test]
fn exit_with_code_gives_a_component_its_own_code() {
    let b = Berth::new();
    let ctx = b.path("ctx-exit-code");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy(cargo_guest("exit-code"), ctx.join("exit-code.wasm")).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY exit-code.wasm /exit-code.wasm\nENTRYPOINT [\"/exit-code.wasm\"]\n",
    )
    .unwrap();
    b.ok(&["build", "-q", "-t", "exit-code", ctx.to_str().unwrap()]);
    assert_eq!(inspect(&b, "exit-code")["Os"], "wasip2");
    // wasi:cli/exit's exit-with-code(5): the container exits 5, not std's 1.
    let out = b.output(&["run", "--rm", "exit-code"]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for code in ["0", "77", "255"] {
        let out = b.output(&["run", "--rm", "exit-code", code]);
        assert_eq!(
            out.status.code(),
            Some(code.parse().unwrap()),
            "exit-with-code({code})"
        );
    }
    // A kept container records it as its exit code.
    let out = b.output(&["run", "--name", "ec", "exit-code", "42"]);
    assert_eq!(out.status.code(), Some(42));
    assert_eq!(inspect(&b, "ec")["State"]["ExitCode"], 42);
}

#[test]
fn layers_whiteouts_and_the_container_layer() {
    let b = setup();
    // A child image whose RUN step (a wasm program, so a WASI step) removes a file of the
    // layer below: the deletion is a whiteout in the new layer.
    let ctx = b.path("ctx-child");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("c.txt"), "gamma\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM probe\nRUN [\"/probe.wasm\", \"rm\", \"/data/b.txt\"]\nCOPY c.txt /data/c.txt\n",
    )
    .unwrap();
    b.ok(&["build", "-q", "-t", "child", ctx.to_str().unwrap()]);
    assert_eq!(
        b.ok(&["run", "--rm", "child", "ls", "/data"]),
        "a.txt\nc.txt\n",
        "lower layers are visible, the whiteout hides b.txt, the top layer adds c.txt"
    );
    assert_eq!(
        b.ok(&["run", "--rm", "child", "cat", "/data/a.txt"]),
        "alpha\n"
    );

    // A RUN of such a stage whose program is not wasm (a script, here) is refused, naming
    // the step and the fix; the stage's other steps are unaffected.
    let bad = b.path("ctx-native-run");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("hello.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::write(
        bad.join("Dockerfile"),
        "FROM probe\nCOPY hello.sh /hello.sh\nRUN [\"/hello.sh\"]\n",
    )
    .unwrap();
    let (code, err) = b.fail(&["build", "-q", "-t", "bad", bad.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("Dockerfile:3"), "{err}");
    assert!(err.contains("/hello.sh is not one"), "{err}");
    assert!(err.contains("RUN a .wasm program"), "{err}");

    // Writes land in the container's own layer, never in the image.
    b.ok(&[
        "run",
        "--name",
        "writer",
        "child",
        "write",
        "/data/new.txt",
        "fresh",
    ]);
    let c = inspect(&b, "writer");
    assert_eq!(c["State"]["ExitCode"], 0);
    assert_eq!(
        c["HostConfig"]["Runtime"]
            .as_str()
            .or(c["Runtime"].as_str()),
        Some("wasi"),
        "{c}"
    );
    assert_eq!(
        b.ok(&["run", "--rm", "child", "exists", "/data/new.txt"]),
        "false\n"
    );
    b.ok(&["start", "-a", "writer"]);
    b.ok(&["rm", "writer"]);
    // Overwriting a lower file also stays in the container.
    b.ok(&["run", "--rm", "child", "write", "/data/a.txt", "changed"]);
    assert_eq!(
        b.ok(&["run", "--rm", "child", "cat", "/data/a.txt"]),
        "alpha\n"
    );
}

#[test]
fn volumes_are_preopens_and_ro_is_enforced() {
    let b = setup();
    let host = b.path("hostdir");
    std::fs::create_dir_all(&host).unwrap();
    let spec = format!("{}:/out", host.display());
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "-v",
            &spec,
            "probe",
            "write",
            "/out/result.txt",
            "42"
        ]),
        "wrote /out/result.txt\n"
    );
    assert_eq!(
        std::fs::read_to_string(host.join("result.txt")).unwrap(),
        "42"
    );
    // A named volume keeps what a guest wrote for the next one.
    b.ok(&[
        "run",
        "--rm",
        "-v",
        "results:/res",
        "probe",
        "write",
        "/res/r",
        "kept",
    ]);
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "-v",
            "results:/res",
            "probe",
            "cat",
            "/res/r"
        ]),
        "kept"
    );
    // :ro refuses writes, and the host file is untouched.
    let ro = format!("{}:/out:ro", host.display());
    let out = b.output(&[
        "run",
        "--rm",
        "-v",
        &ro,
        "probe",
        "write",
        "/out/result.txt",
        "no",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("error:"));
    assert_eq!(
        std::fs::read_to_string(host.join("result.txt")).unwrap(),
        "42"
    );
    assert_eq!(
        b.ok(&["run", "--rm", "-v", &ro, "probe", "cat", "/out/result.txt"]),
        "42"
    );
    // --read-only makes `/` read-only too.
    let out = b.output(&[
        "run",
        "--rm",
        "--read-only",
        "probe",
        "write",
        "/data/x",
        "no",
    ]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn the_guest_cannot_reach_outside_its_preopens() {
    let b = setup();
    let marker = b.path("host-secret");
    std::fs::write(&marker, "host secret").unwrap();
    let host = b.path("vol");
    std::fs::create_dir_all(&host).unwrap();
    std::os::unix::fs::symlink(&marker, host.join("abs-link")).unwrap();
    std::os::unix::fs::symlink("../host-secret", host.join("rel-link")).unwrap();
    let spec = format!("{}:/vol", host.display());
    let marker_s = marker.to_str().unwrap().to_string();
    for path in [
        "/vol/abs-link",
        "/vol/rel-link",
        "/vol/../host-secret",
        "/../../../../../../host-secret",
        marker_s.as_str(),
    ] {
        let out = b.output(&["run", "--rm", "-v", &spec, "probe", "cat", path]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            !stdout.contains("host secret"),
            "{path} reached the host: {stdout}"
        );
        assert_ne!(out.status.code(), Some(0), "{path}: {stdout}");
    }
}

/// /proc would hand a guest the memory of the process that runs it (/proc/self/mem), so a
/// guest's `/` has no /proc, /dev or /sys, however the module came to run as WASI; native
/// processes of the same container keep them.
#[test]
fn the_guest_sees_no_proc_dev_or_sys() {
    let b = setup();
    let listing = b.ok(&["run", "--rm", "probe", "ls", "/"]);
    for name in ["proc", "dev", "sys"] {
        assert!(
            !listing.lines().any(|l| l == name),
            "/{name} in a guest's /: {listing}"
        );
    }
    assert_eq!(
        b.ok(&["run", "--rm", "probe", "exists", "/proc/self/mem"]),
        "false\n"
    );
    // Nor can the user mount it there: -v onto /proc is refused, as for a native container.
    let (code, err) = b.fail(&[
        "run",
        "--rm",
        "-v",
        "/proc:/proc",
        "probe",
        "exists",
        "/proc/self/mem",
    ]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("/proc"), "{err}");

    // The guest's host process shows as berth's init, with nothing of the environment
    // berth was started in.
    let out = b
        .cmd(&["run", "-d", "--name", "spin", "probe", "loop"])
        .env("HOST_SECRET", "s3cr3t")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    wait_for_log(&b, "spin", "looping");
    let pid = inspect(&b, "spin")["State"]["Pid"].as_i64().unwrap();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(cmdline.contains("__init"), "{cmdline}");
    for text in [cmdline, String::from_utf8_lossy(&environ).into_owned()] {
        assert!(!text.contains("s3cr3t") && !text.contains("spin"), "{text}");
    }
    b.ok(&["rm", "-f", "spin"]);

    // A module in a linux image: found to be WebAssembly once the native rootfs is built.
    b.import_busybox("busybox");
    build_mixed_image(&b);
    for path in ["/proc/self/mem", "/sys/kernel", "/dev/null"] {
        assert_eq!(
            b.ok(&["run", "--rm", "mixed", "probe.wasm", "exists", path]),
            "false\n",
            "{path}"
        );
    }

    // A module exec'd in a native container: hidden from it, kept for the container.
    b.ok(&["run", "-d", "--name", "native", "mixed", "sleep", "60"]);
    assert_eq!(
        b.ok(&["exec", "native", "probe.wasm", "exists", "/proc/self/mem"]),
        "false\n"
    );
    assert!(
        b.ok(&["exec", "native", "cat", "/proc/1/cmdline"])
            .starts_with("sleep")
    );
    assert_eq!(b.ok(&["exec", "native", "ls", "/dev/null"]), "/dev/null\n");
    b.ok(&["rm", "-f", "native"]);
}

/// Builds `mixed` from the imported `busybox`: the probe at /bin/probe.wasm in a linux image,
/// so the module is found to be WebAssembly by its magic bytes.
fn build_mixed_image(b: &Berth) {
    let ctx = b.path("ctx-mixed");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy(probe("wasm32-wasip1"), ctx.join("probe.wasm")).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nCOPY probe.wasm /bin/probe.wasm\n",
    )
    .unwrap();
    b.ok(&["build", "-q", "-t", "mixed", ctx.to_str().unwrap()]);
}

fn wait_for_log(b: &Berth, name: &str, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !b.ok(&["logs", name]).contains(text) {
        assert!(Instant::now() < deadline, "{name} never printed {text:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn lifecycle_stop_kill_and_exec() {
    let b = setup();
    let id = b
        .ok(&["run", "-d", "--name", "spin", "probe", "loop"])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64);
    wait_for_log(&b, "spin", "looping");
    let ps = b.ok(&["ps"]);
    assert!(ps.contains("spin") && ps.contains("Up"), "{ps}");
    // exec runs another module of the same filesystem as a guest.
    assert_eq!(
        b.ok(&["exec", "spin", "/probe.wasm", "cat", "/data/a.txt"]),
        "alpha\n"
    );
    let (code, err) = b.fail(&["exec", "spin", "/bin/sh"]);
    assert_eq!(code, 127, "{err}");
    // stop ends a guest that never yields, through the epoch, well within its timeout.
    let started = Instant::now();
    b.ok(&["stop", "-t", "20", "spin"]);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "stop waited for the timeout"
    );
    assert_eq!(b.ok(&["wait", "spin"]).trim(), "143");
    assert_eq!(inspect(&b, "spin")["State"]["Status"], "exited");
    // start again, then kill.
    b.ok(&["start", "spin"]);
    wait_for_log(&b, "spin", "looping\nlooping");
    b.ok(&["kill", "spin"]);
    assert_eq!(b.ok(&["wait", "spin"]).trim(), "137");
    b.ok(&["rm", "spin"]);
    // A guest blocked in a host call (sleep) is stopped too.
    b.ok(&["run", "-d", "--name", "nap", "probe", "sleep", "600"]);
    wait_for_log(&b, "nap", "sleeping");
    let started = Instant::now();
    b.ok(&["stop", "nap"]);
    assert!(started.elapsed() < Duration::from_secs(8));
    b.ok(&["rm", "-f", "nap"]);
}

#[test]
fn memory_limit_stops_a_hog() {
    let b = setup();
    let out = b.output(&["run", "--rm", "--memory", "64m", "probe", "hog", "512"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(137), "{err}");
    assert!(err.contains("--memory 64 MiB"), "{err}");
    // Within the limit it runs.
    assert!(
        b.ok(&["run", "--rm", "--memory", "64m", "probe", "hog", "16"])
            .contains("held 16 MiB")
    );
}

#[test]
fn runtime_choice_and_clear_errors() {
    let b = setup();
    b.import_busybox("busybox");
    let (code, err) = b.fail(&["run", "--rm", "--runtime", "native", "probe", "args"]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("--runtime native"), "{err}");
    let (code, err) = b.fail(&["run", "--rm", "--runtime", "wasi", "busybox", "true"]);
    assert_eq!(code, 126, "{err}");
    assert!(err.contains("not a WebAssembly module"), "{err}");
    let (code, err) = b.fail(&["run", "--rm", "--runtime", "kata", "busybox", "true"]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("unknown runtime"), "{err}");
    // A module in a linux image runs as WASI by its magic bytes; --runtime wasi says so too.
    build_mixed_image(&b);
    assert_eq!(
        b.ok(&["run", "--rm", "mixed", "probe.wasm", "exit", "0"]),
        ""
    );
    assert_eq!(
        b.ok(&["run", "--rm", "mixed", "echo", "native"]),
        "native\n"
    );
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "--runtime",
            "wasi",
            "mixed",
            "/bin/probe.wasm",
            "cwd"
        ]),
        "/\n"
    );
}

#[test]
fn corrupt_modules_and_the_compile_cache() {
    let b = setup();
    let cache = b.root().join("wasm-cache");
    let artifacts = || -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&cache)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        v.retain(|p| p.extension().is_some_and(|e| e == "cwasm"));
        v
    };
    // `berth build` precompiled the entrypoint, and remembered its digest for its layer.
    let found = artifacts();
    assert_eq!(found.len(), 1, "{found:?}");
    let remembered = || std::fs::read_dir(cache.join("layers")).map_or(0, |d| d.count());
    assert_eq!(remembered(), 1);
    // Forgotten, it is remembered again by the next run.
    std::fs::remove_dir_all(cache.join("layers")).unwrap();
    b.ok(&["run", "--rm", "probe", "exit", "0"]);
    assert_eq!(remembered(), 1);
    let art = found[0].clone();
    let compiled = std::fs::read(&art).unwrap();
    let mtime = std::fs::metadata(&art).unwrap().modified().unwrap();
    b.ok(&["run", "--rm", "probe", "exit", "0"]);
    b.ok(&["run", "--rm", "probe", "exit", "0"]);
    assert_eq!(
        std::fs::metadata(&art).unwrap().modified().unwrap(),
        mtime,
        "runs load the cached artifact, they do not rewrite it"
    );
    // The check is remembered for this very file (in the run root, cleared at boot), so later
    // starts map the artifact without reading it; a change to the file is still caught below.
    let info: serde_json::Value =
        serde_json::from_str(&b.ok(&["info", "--format", "json"])).unwrap();
    let run_root = PathBuf::from(info["RunRoot"].as_str().unwrap());
    let on_tmpfs = std::process::Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(&run_root)
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "tmpfs");
    let checked = run_root.join("wasm-checked").join(art.file_name().unwrap());
    // Only where the run root is emptied at boot; elsewhere every start checks.
    assert_eq!(checked.is_file(), on_tmpfs, "{}", checked.display());
    // A corrupt artifact is discarded and rebuilt, never run.
    let mut bad = compiled.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    std::fs::write(&art, &bad).unwrap();
    assert_eq!(
        b.ok(&["run", "--rm", "probe", "cat", "/data/a.txt"]),
        "alpha\n"
    );
    let rebuilt = std::fs::read(&art).unwrap();
    assert!(rebuilt != bad, "the corrupt artifact was replaced");
    let recorded = std::fs::read_to_string(art.with_extension("cwasm.xxh3")).unwrap();
    assert_eq!(
        format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&rebuilt)),
        recorded.trim(),
        "the new artifact matches its checksum"
    );
    // A truncated one too.
    std::fs::write(&art, &compiled[..100]).unwrap();
    assert_eq!(
        b.ok(&["run", "--rm", "probe", "cat", "/data/a.txt"]),
        "alpha\n"
    );

    // A corrupt module is a clear error, not a crash.
    let ctx = b.path("ctx-bad");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("bad.wasm"), b"\0asm\x01\0\0\0this is not wasm").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY bad.wasm /bad.wasm\nENTRYPOINT [\"/bad.wasm\"]\n",
    )
    .unwrap();
    b.ok(&["build", "-q", "-t", "bad", ctx.to_str().unwrap()]);
    let (code, err) = b.fail(&["run", "--rm", "bad"]);
    assert_eq!(code, 126, "{err}");
    assert!(
        err.contains("/bad.wasm is not a valid WebAssembly module"),
        "{err}"
    );
}

#[test]
fn a_module_replaced_in_the_writable_layer_is_the_one_that_runs() {
    let b = setup();
    // An image with the probe and, beside it, a file that looks like wasm but is not.
    let ctx = b.path("ctx-selfmod");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("bad.wasm"), b"\0asm\x01\0\0\0not a module").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM probe\nCOPY bad.wasm /bad.wasm\n",
    )
    .unwrap();
    b.ok(&["build", "-q", "-t", "selfmod", ctx.to_str().unwrap()]);
    // The container copies it over its own program: the copy lands in its writable layer.
    assert_eq!(
        b.ok(&[
            "run",
            "--name",
            "sm",
            "selfmod",
            "cp",
            "/bad.wasm",
            "/probe.wasm"
        ]),
        "copied /bad.wasm\n"
    );
    // Started again, it runs what its /probe.wasm now holds, not the image's cached module.
    let (code, err) = b.fail(&["start", "-a", "sm"]);
    assert_eq!(code, 126, "{err}");
    assert!(
        err.contains("/probe.wasm is not a valid WebAssembly module"),
        "{err}"
    );
    // The image itself is unchanged.
    assert_eq!(b.ok(&["run", "--rm", "selfmod", "exit", "0"]), "");
}

/// Writes `bytes` as a blob of the OCI layout `dir`; gives its digest.
fn put_blob(dir: &Path, bytes: &[u8]) -> String {
    let hex = sha256_hex(bytes);
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("blobs/sha256").join(&hex), bytes).unwrap();
    format!("sha256:{hex}")
}

#[test]
fn images_with_bare_wasm_layers_from_other_tooling_run() {
    let b = Berth::new();
    // An OCI image as wasm tooling pushes them: the module itself is the layer, with media
    // type application/wasm, and no Entrypoint.
    let layout = b.path("layout");
    let module = std::fs::read(probe("wasm32-wasip1")).unwrap();
    let layer = put_blob(&layout, &module);
    let config = serde_json::json!({
        "architecture": "wasm",
        "os": "wasip1",
        "config": {"Env": ["FROM_CONFIG=1"]},
        "rootfs": {"type": "layers", "diff_ids": [layer]},
    })
    .to_string();
    let config_digest = put_blob(&layout, config.as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/wasm", "digest": layer, "size": module.len()}],
    })
    .to_string();
    let manifest_digest = put_blob(&layout, manifest.as_bytes());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "docker.io/library/bare:latest"},
        }],
    })
    .to_string();
    std::fs::write(layout.join("index.json"), index).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let archive = b.path("bare.tar");
    common::sh(&format!(
        "tar -C {} -cf {} .",
        layout.display(),
        archive.display()
    ));
    b.ok(&["load", "-i", archive.to_str().unwrap()]);
    // The module is the default command, at /app.wasm; args after the image are its own.
    assert_eq!(
        b.ok(&["run", "--rm", "bare", "/app.wasm", "env", "FROM_CONFIG"]),
        "FROM_CONFIG=1\n"
    );
    let out = b.output(&["run", "--rm", "bare"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "the probe without a command exits 2: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("probe: unknown command"));
}

/// Builds an example's Rust program for wasm32-wasip1 into the example's own target folder,
/// where its Dockerfile expects it.
fn cargo_build_example(dir: &Path) {
    let status = Command::new("cargo")
        .args(["build", "--release", "--quiet", "--target", "wasm32-wasip1"])
        .current_dir(dir)
        // Not the workspace's target dir: the example's Dockerfile reads its own.
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .expect("run cargo");
    assert!(status.success(), "building {} failed", dir.display());
}

#[test]
fn examples_hello_wasi_and_wasi_layers() {
    let b = Berth::new();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let hello = examples.join("hello-wasi");
    cargo_build_example(&hello);
    b.ok(&["build", "-q", "-t", "hello-wasi", hello.to_str().unwrap()]);
    assert_eq!(
        b.ok(&["run", "--rm", "hello-wasi"]),
        "Hello, berth, from a WebAssembly module run by berth!\n"
    );
    assert_eq!(
        b.ok(&["run", "--rm", "-e", "NAME=you", "hello-wasi", "a", "b"]),
        "Hello, you, from a WebAssembly module run by berth!\narguments: a b\n"
    );

    let layers = examples.join("wasi-layers");
    cargo_build_example(&layers);
    b.ok(&["build", "-q", "-t", "wordcount", layers.to_str().unwrap()]);
    let history = b.ok(&["history", "-q", "wordcount"]);
    assert!(history.lines().count() >= 3, "{history}");
    assert_eq!(
        b.ok(&["run", "--rm", "-v", "wc-results:/results", "wordcount"]),
        "counted 11 distinct words (min length 4) in 2 files into /results/counts.txt\n"
    );
    let vol: serde_json::Value =
        serde_json::from_str(&b.ok(&["volume", "inspect", "wc-results"])).unwrap();
    let dir = PathBuf::from(vol[0]["Mountpoint"].as_str().unwrap());
    let counts = std::fs::read_to_string(dir.join("counts.txt")).unwrap();
    assert!(counts.contains("3 berth\n"), "{counts}");
    assert!(counts.contains("2 container\n"), "{counts}");
}

/// The memory limit a running container's cgroup has, from the host's cgroup files.
fn cgroup_memory_limit(id: &str) -> u64 {
    let candidates = [
        format!("/sys/fs/cgroup/memory/berth/{id}/memory.limit_in_bytes"),
        format!("/sys/fs/cgroup/berth/{id}/memory.max"),
    ];
    candidates
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_else(|| panic!("no memory limit file among {candidates:?}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_module_found_by_its_bytes_gets_what_a_wasi_image_gets() {
    let b = setup();
    b.import_busybox("busybox");
    build_mixed_image(&b);
    // A linux image: only the program's bytes (read from the image's layers when the
    // container is made) say WebAssembly. The container is a WASI one from the start: its
    // runtime, the engine's memory headroom in its cgroup.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "found",
        "--memory",
        "8m",
        "mixed",
        "probe.wasm",
        "loop",
    ]);
    wait_for_log(&b, "found", "looping");
    let c = inspect(&b, "found");
    assert_eq!(c["HostConfig"]["Runtime"], "wasi", "{c}");
    let id = c["Id"].as_str().unwrap();
    assert_eq!(cgroup_memory_limit(id), (8 << 20) + (64 << 20));
    b.ok(&["rm", "-f", "found"]);
    // The same program declared by a WASI image's platform gets the same.
    b.ok(&[
        "run", "-d", "--name", "declared", "--memory", "8m", "probe", "loop",
    ]);
    wait_for_log(&b, "declared", "looping");
    let c = inspect(&b, "declared");
    assert_eq!(c["HostConfig"]["Runtime"], "wasi", "{c}");
    let id = c["Id"].as_str().unwrap();
    assert_eq!(cgroup_memory_limit(id), (8 << 20) + (64 << 20));
    b.ok(&["rm", "-f", "declared"]);
    // A shell script and a native program in the same image stay native.
    let c = b.ok(&["create", "--name", "sh", "mixed", "sh", "-c", "true"]);
    assert_eq!(inspect(&b, c.trim())["HostConfig"]["Runtime"], "native");
}

#[test]
fn a_tmpfs_is_writable_under_a_read_only_root() {
    let b = setup();
    let out = b.ok(&[
        "run",
        "--rm",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "probe",
        "write",
        "/tmp/note",
        "kept",
    ]);
    assert_eq!(out, "wrote /tmp/note\n");
    // The root itself stays read-only.
    let (code, out) = b.fail(&["run", "--rm", "--read-only", "probe", "write", "/note", "x"]);
    assert_eq!(code, 1, "{out}");
}

#[test]
fn isolation_wasi_runs_the_guest_in_berths_own_process() {
    let b = setup();
    // The path for hosts without namespaces (tests/aarch64.rs runs it under qemu-user).
    assert_eq!(
        b.ok(&["run", "--rm", "--isolation", "wasi", "probe", "args", "x"]),
        "/probe.wasm\nargs\nx\n"
    );
    let out = b.output(&["run", "--rm", "--isolation", "wasi", "probe", "exit", "5"]);
    assert_eq!(out.status.code(), Some(5));
    // What it cannot do is refused with the fix, leaving nothing.
    let (_, err) = b.fail(&[
        "run",
        "--rm",
        "--isolation",
        "wasi",
        "-p",
        "8080:80",
        "probe",
    ]);
    assert!(err.contains("drop -p"), "{err}");
    b.import_busybox("bb");
    let (code, err) = b.fail(&["run", "--isolation", "wasi", "bb", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("drop --isolation wasi"), "{err}");
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    let (_, err) = b.fail(&["run", "--rm", "--isolation", "vm", "probe"]);
    assert!(err.contains("default, wasi"), "{err}");
}

#[test]
fn isolation_wasi_containers_detach_under_a_monitor_of_their_own() {
    let b = setup();
    // What Windows does (tests/windows.rs runs it under wine), natively: `run -d`, `ps`,
    // `logs`, `stop`, `wait`, `start`, `kill`, `rm`.
    let id = b.ok(&[
        "run",
        "-d",
        "--isolation",
        "wasi",
        "--name",
        "s",
        "probe",
        "sleep",
        "600",
    ]);
    assert_eq!(id.trim().len(), 64, "{id}");
    assert!(b.ok(&["ps"]).contains("Up"));
    assert!(eventually(|| b.ok(&["logs", "s"]) == "sleeping\n"));
    assert_eq!(b.ok(&["stop", "s"]), "s\n");
    assert_eq!(b.ok(&["wait", "s"]), "143\n");
    b.ok(&["start", "s"]);
    assert!(b.ok(&["ps"]).contains("Up"));
    // The monitor killed with -9 takes the guest along, and is recorded as killed.
    let monitor = b.ok(&["inspect", "s"]);
    let state: serde_json::Value = serde_json::from_str(&monitor).unwrap();
    let runner = state[0]["State"]["Pid"].as_i64().unwrap();
    assert!(runner > 0, "{state}");
    let parent = std::fs::read_to_string(format!("/proc/{runner}/stat")).unwrap();
    let monitor_pid: i32 = parent
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(monitor_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(eventually(|| !std::path::Path::new(&format!(
        "/proc/{runner}"
    ))
    .exists()));
    assert_eq!(b.ok(&["wait", "s"]), "137\n");
    // create, then start -a; --rm leaves nothing once it ends.
    b.ok(&[
        "create",
        "--isolation",
        "wasi",
        "--name",
        "later",
        "probe",
        "exit",
        "6",
    ]);
    assert_eq!(b.output(&["start", "-a", "later"]).status.code(), Some(6));
    b.ok(&[
        "run",
        "-d",
        "--rm",
        "--isolation",
        "wasi",
        "--name",
        "gone",
        "probe",
        "exit",
        "0",
    ]);
    assert!(eventually(|| !b.ok(&["ps", "-a"]).contains("gone")));
    b.ok(&["rm", "s", "later"]);
    assert_eq!(b.ok(&["ps", "-aq"]), "");
}
