//! End-to-end: berth built for Windows (x86_64-pc-windows-gnu, with the native backend compiled
//! out) loads a WASI image saved by the Linux berth and runs it, under wine. tests/run.sh
//! cross-compiles `berth.exe` before the tests and installs mingw-w64 and wine.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::Berth;

/// The cross-compiled binary, in the Linux one's target dir, built with the `wine` profile.
fn berth_exe() -> PathBuf {
    let linux = PathBuf::from(env!("CARGO_BIN_EXE_berth"));
    // target/debug/berth -> target/x86_64-pc-windows-gnu/wine/berth.exe
    let target = linux.parent().unwrap().parent().unwrap();
    let exe = target
        .join("x86_64-pc-windows-gnu")
        .join("wine")
        .join("berth.exe");
    assert!(
        exe.exists(),
        "{} is missing: run the tests through tests/run.sh, which cross-compiles it (cargo build --profile wine --target x86_64-pc-windows-gnu -p berth-cli)",
        exe.display()
    );
    exe
}

/// A Windows path for a host path, through wine's Z: drive.
fn win(p: &Path) -> String {
    format!("Z:{}", p.display()).replace('/', "\\")
}

/// The wine prefix of the test run, made once, with tests/wine/bcryptprimitives.c built into
/// its system32: Debian 12's wine 8.0 lacks that DLL, which Rust's std imports on Windows.
fn prefix() -> PathBuf {
    static PREFIX: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PREFIX
        .get_or_init(|| {
            common::require("wine");
            common::require("x86_64-w64-mingw32-gcc");
            let prefix = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wineprefix");
            let system32 = prefix.join("drive_c/windows/system32");
            if !system32.is_dir() {
                let status = Command::new("wineboot")
                    .arg("--init")
                    .env("WINEPREFIX", &prefix)
                    .env("WINEDEBUG", "-all")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .expect("run wineboot");
                assert!(status.success(), "wineboot --init failed");
            }
            let src =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/wine/bcryptprimitives.c");
            let status = Command::new("x86_64-w64-mingw32-gcc")
                .args(["-shared", "-O2", "-o"])
                .arg(system32.join("bcryptprimitives.dll"))
                .arg(&src)
                .arg("-ladvapi32")
                .status()
                .expect("run mingw gcc");
            assert!(
                status.success(),
                "building the bcryptprimitives shim failed"
            );
            prefix
        })
        .clone()
}

/// Runs `wine berth.exe ARGS` with the test run's wine prefix.
fn wine(args: &[&str]) -> Output {
    let prefix = prefix();
    Command::new("wine")
        .arg(berth_exe())
        .args(args)
        .env("WINEPREFIX", &prefix)
        .env("WINEDEBUG", "-all")
        .stdin(Stdio::null())
        .output()
        .expect("run wine")
}

/// `wine berth.exe ARGS` for a command that starts a detached monitor (`run -d`, `start`,
/// `restart`), its stderr through a file: wine hands its processes' Unix stderr (its debug
/// channel) down to the processes they start, so a pipe there would stay open as long as the
/// monitor runs (on Windows itself, berth keeps its handles from the monitor).
fn ok_detached(args: &[&str]) -> String {
    let prefix = prefix();
    let err = tempfile::NamedTempFile::new().unwrap();
    let out = Command::new("wine")
        .arg(berth_exe())
        .args(args)
        .env("WINEPREFIX", &prefix)
        .env("WINEDEBUG", "-all")
        .stdin(Stdio::null())
        .stderr(err.reopen().unwrap())
        .output()
        .expect("run wine");
    assert!(
        out.status.success(),
        "wine berth.exe {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        std::fs::read_to_string(err.path()).unwrap_or_default()
    );
    String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n")
}

fn ok(args: &[&str]) -> String {
    let out = wine(args);
    assert!(
        out.status.success(),
        "wine berth.exe {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n")
}

/// A WASI image made by the Linux berth, saved as an OCI archive: the probe module, a data
/// layer and a variable.
fn probe_archive(b: &Berth) -> PathBuf {
    let ctx = b.path("ctx");
    std::fs::create_dir_all(ctx.join("data")).unwrap();
    std::fs::write(ctx.join("data/greeting.txt"), "hello from a layer\n").unwrap();
    let module = common::probe("wasm32-wasip1");
    std::fs::copy(&module, ctx.join("probe.wasm")).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY data/ /data/\nCOPY probe.wasm /probe.wasm\nENV WHERE=windows\nENTRYPOINT [\"/probe.wasm\"]\n",
    )
    .unwrap();
    b.ok(&["build", "-q", "-t", "probe", ctx.to_str().unwrap()]);
    let archive = b.path("probe.tar");
    b.ok(&["save", "-o", archive.to_str().unwrap(), "probe"]);
    archive
}

#[test]
fn berth_exe_under_wine_loads_and_runs_a_wasi_image() {
    let b = Berth::new();
    let archive = probe_archive(&b);
    let root = b.path("winroot");
    let root_w = win(&root);
    let info = ok(&["--root", &root_w, "info"]);
    assert!(info.contains("wasi"), "{info}");
    ok(&["--root", &root_w, "load", "-i", &win(&archive)]);
    let images = ok(&["--root", &root_w, "images"]);
    assert!(images.contains("probe"), "{images}");
    // The store berth.exe wrote is an OCI layout the Linux tools read as it is: skopeo
    // inspects and copies the image (and a tag berth.exe made), umoci lists its layers.
    ok(&["--root", &root_w, "tag", "probe", "probe:v2"]);
    for tag in ["latest", "v2"] {
        let image = format!("{}:docker.io/library/probe:{tag}", root.display());
        let inspected = common::sh(&format!("skopeo inspect oci:{image}"));
        assert!(inspected.contains("\"Digest\""), "{inspected}");
    }
    let copied = b.path("skopeo-copy");
    common::sh(&format!(
        "skopeo copy -q oci:{}:docker.io/library/probe:latest dir:{}",
        root.display(),
        copied.display()
    ));
    assert!(copied.join("manifest.json").exists());
    let stat = common::sh(&format!(
        "umoci stat --image {}:docker.io/library/probe:latest",
        root.display()
    ));
    assert!(stat.contains("COPY probe.wasm /probe.wasm"), "{stat}");
    assert_eq!(
        ok(&[
            "--root",
            &root_w,
            "run",
            "--rm",
            "probe",
            "cat",
            "/data/greeting.txt"
        ]),
        "hello from a layer\n"
    );
    assert_eq!(
        ok(&[
            "--root", &root_w, "run", "--rm", "-e", "X=1", "probe", "env", "WHERE", "X"
        ]),
        "WHERE=windows\nX=1\n"
    );
    // Writes stay in the container's own folder; a volume keeps them.
    let vol = b.path("winvol");
    std::fs::create_dir_all(&vol).unwrap();
    let spec = format!("{}:/out", win(&vol));
    ok(&[
        "--root",
        &root_w,
        "run",
        "--rm",
        "-v",
        &spec,
        "probe",
        "write",
        "/out/r.txt",
        "42",
    ]);
    assert_eq!(std::fs::read_to_string(vol.join("r.txt")).unwrap(), "42");
    let out = wine(&["--root", &root_w, "run", "--rm", "probe", "exit", "3"]);
    assert_eq!(out.status.code(), Some(3));
    // What needs Linux says so: a native image, and a published port.
    let bb = b.path("bb.tar");
    b.import_busybox("bb");
    b.ok(&["save", "-o", bb.to_str().unwrap(), "bb"]);
    ok(&["--root", &root_w, "load", "-i", &win(&bb)]);
    let out = wine(&["--root", &root_w, "run", "--rm", "bb", "true"]);
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("native Linux image: running it needs Linux"),
        "{err}"
    );
    let out = wine(&["--root", &root_w, "run", "-p", "80:80", "probe", "args"]);
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("drop -p"), "{err}");
}

#[test]
fn berth_exe_under_wine_runs_detached_containers() {
    let b = Berth::new();
    let archive = probe_archive(&b);
    let root = b.path("winroot-detached");
    let root_w = win(&root);
    let berth = |args: &[&str]| ok(&[&["--root", root_w.as_str()], args].concat());
    let detached = |args: &[&str]| ok_detached(&[&["--root", root_w.as_str()], args].concat());
    berth(&["load", "-i", &win(&archive)]);

    // One that ends by itself: `wait` gives its code, `logs` its output, each stream on its own.
    let id = detached(&["run", "-d", "--name", "job", "probe", "args", "on windows"]);
    assert_eq!(id.trim().len(), 64, "{id}");
    assert_eq!(berth(&["wait", "job"]), "0\n");
    let logs = wine(&["--root", &root_w, "logs", "job"]);
    assert_eq!(
        String::from_utf8_lossy(&logs.stdout).replace("\r\n", "\n"),
        "/probe.wasm\nargs\non windows\n"
    );
    detached(&["run", "-d", "--name", "err", "probe", "stderr", "to stderr"]);
    assert_eq!(berth(&["wait", "err"]), "0\n");
    let logs = wine(&["--root", &root_w, "logs", "err"]);
    assert!(logs.stdout.is_empty());
    assert!(String::from_utf8_lossy(&logs.stderr).contains("to stderr"));

    // One that runs until stopped: `ps` shows it up, `stop` ends it as SIGTERM would (143),
    // `kill` as SIGKILL (137).
    detached(&["run", "-d", "--name", "sleeper", "probe", "sleep", "600"]);
    let ps = berth(&["ps"]);
    assert!(ps.contains("sleeper") && ps.contains("Up"), "{ps}");
    assert!(!ps.contains("job"), "{ps}");
    assert!(common::eventually(
        || berth(&["logs", "sleeper"]) == "sleeping\n"
    ));
    assert_eq!(berth(&["stop", "sleeper"]), "sleeper\n");
    assert_eq!(berth(&["wait", "sleeper"]), "143\n");
    let ps = berth(&["ps", "-a"]);
    assert!(ps.contains("Exited (143)"), "{ps}");
    // Started again, then killed.
    detached(&["start", "sleeper"]);
    assert!(berth(&["ps"]).contains("sleeper"));
    berth(&["kill", "sleeper"]);
    assert_eq!(berth(&["wait", "sleeper"]), "137\n");

    // A running container is removed only with -f; --rm leaves nothing once it ends.
    detached(&["restart", "sleeper"]);
    let out = wine(&["--root", &root_w, "rm", "sleeper"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("it is running"));
    berth(&["rm", "-f", "sleeper", "job", "err"]);
    detached(&["run", "-d", "--rm", "--name", "gone", "probe", "exit", "4"]);
    assert!(common::eventually(|| berth(&["ps", "-aq"]).is_empty()));
    // create, then start -a: attached, its exit code berth's.
    berth(&["create", "--name", "later", "probe", "exit", "5"]);
    let out = wine(&["--root", &root_w, "start", "-a", "later"]);
    assert_eq!(out.status.code(), Some(5));
    let out = wine(&["--root", &root_w, "stop", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no such container: nosuch"), "{err}");
}
