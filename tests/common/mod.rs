//! Shared helpers for the end-to-end tests: a berth root per test, the real `berth` binary,
//! and a busybox root filesystem made from Debian's busybox-static.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

pub mod registry;
pub mod served;

/// A berth root of its own and the binary under test.
pub struct Berth {
    /// The temp folder holding the root and anything else the test makes.
    pub dir: TempDir,
}

impl Drop for Berth {
    /// The store's run root is outside the temp folder (on a tmpfs): it goes too.
    fn drop(&mut self) {
        if !self.root().is_dir() {
            return;
        }
        // Bridges and firewall tables are the host's: a throwaway store takes its own down,
        // with the containers still on them (a test that failed half-way).
        if self.root().join("networks").is_dir() {
            if let Ok(out) = self.cmd(&["ps", "-aq"]).output() {
                let ids = String::from_utf8_lossy(&out.stdout).into_owned();
                let mut rm = vec!["rm", "-f"];
                rm.extend(ids.split_whitespace());
                if rm.len() > 2 {
                    let _ = self.cmd(&rm).output();
                }
            }
            let _ = self.cmd(&["system", "prune", "-f"]).output();
        }
        let Ok(out) = self.cmd(&["info", "--format", "json"]).output() else {
            return;
        };
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout)
            && let Some(run_root) = v["RunRoot"].as_str()
        {
            // Network namespaces made ahead are mounts there, and a `--rm` container's init
            // may still be making one: unmounted until the folder goes (a few seconds at most).
            let netns = std::path::Path::new(run_root).join("netns");
            for _ in 0..200 {
                if let Ok(spares) = std::fs::read_dir(&netns) {
                    for s in spares.flatten() {
                        let _ = nix::mount::umount2(&s.path(), nix::mount::MntFlags::MNT_DETACH);
                    }
                }
                if std::fs::remove_dir_all(run_root).is_ok()
                    || !std::path::Path::new(run_root).exists()
                {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }
}

impl Berth {
    /// A fresh, empty root.
    pub fn new() -> Berth {
        Berth {
            dir: tempfile::Builder::new()
                .prefix("berth-e2e-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    /// The root folder.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// A path in the test's scratch space.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `berth ARGS` with this root.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
        c.args(args)
            .env("BERTH_ROOT", self.root())
            .stdin(Stdio::null());
        c
    }

    /// Runs `berth ARGS`, panics unless it succeeds, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().expect("run berth");
        assert!(
            out.status.success(),
            "berth {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// Runs `berth ARGS`, panics if it succeeds, returns (exit code, stderr).
    pub fn fail(&self, args: &[&str]) -> (i32, String) {
        let out = self.cmd(args).output().expect("run berth");
        assert!(
            !out.status.success(),
            "berth {args:?} succeeded but should have failed:\nstdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs `berth ARGS` and returns the raw output.
    pub fn output(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run berth")
    }

    /// Runs `berth ARGS` (a shell-quoted string) under a pseudo-terminal made by `script`,
    /// as a person at a terminal would; returns the raw output.
    pub fn in_terminal(&self, args: &str) -> Output {
        Command::new("script")
            .args([
                "-qec",
                &format!("{} {args}", env!("CARGO_BIN_EXE_berth")),
                "/dev/null",
            ])
            .env("BERTH_ROOT", self.root())
            // A terminal session names its terminal; CI's environment may not (and without
            // TERM, indicatif takes the terminal for one that cannot move the cursor).
            .env("TERM", "xterm")
            .stdin(Stdio::null())
            .output()
            .expect("run script")
    }

    /// How many container folders the store holds (not counting the one a `--rm` container's
    /// end makes ahead for the next container, `.spare-*`).
    pub fn container_folders(&self) -> usize {
        std::fs::read_dir(self.root().join("containers"))
            .map(|d| {
                d.flatten()
                    .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                    .count()
            })
            .unwrap_or(0)
    }

    /// Waits (up to 5 s) until nothing of the container `id` is left: its folder, a folder of
    /// the store's `tmp/`, its run folder, its cgroup directories. Panics with what is left.
    pub fn wait_until_gone(&self, id: &str) {
        let run_root: serde_json::Value =
            serde_json::from_str(&self.ok(&["info", "--format", "json"])).unwrap();
        let run_root = PathBuf::from(run_root["RunRoot"].as_str().unwrap());
        let left = || {
            let mut left: Vec<PathBuf> =
                [self.root().join("containers").join(id), run_root.join(id)]
                    .into_iter()
                    .filter(|p| p.exists())
                    .collect();
            left.extend(
                std::fs::read_dir(self.root().join("tmp"))
                    .unwrap()
                    .map(|e| e.unwrap().path()),
            );
            // v1 (and hybrid): a directory per hierarchy; v2: the one hierarchy.
            left.extend(
                std::fs::read_dir("/sys/fs/cgroup")
                    .into_iter()
                    .flatten()
                    .map(|e| e.unwrap().path().join("berth").join(id))
                    .chain([PathBuf::from("/sys/fs/cgroup/berth").join(id)])
                    .filter(|p| p.exists()),
            );
            left
        };
        if !eventually(|| left().is_empty()) {
            panic!("left of container {id}: {:?}", left());
        }
    }

    /// Imports the busybox rootfs as `name` and returns the image id.
    pub fn import_busybox(&self, name: &str) -> String {
        let rootfs = busybox_rootfs(&self.path("busybox-rootfs"));
        self.ok(&[
            "import",
            "--change",
            r#"CMD ["/bin/sh"]"#,
            rootfs.to_str().unwrap(),
            name,
        ])
        .trim()
        .to_string()
    }
}

/// Fails the test with a clear message when a tool the test needs is missing; `tests/run.sh`
/// installs them all.
pub fn require(tool: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{tool} is not installed: run the tests through tests/run.sh, which installs it"
    );
}

/// Runs a host command and panics with its output unless it succeeds.
/// Runs `cmd`, panics unless it succeeds, returns its stdout.
pub fn succeed(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run a command");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Whether `cond` holds within 5 s (checked every 10 ms): for what a container's init does
/// after the command that started it has returned.
pub fn eventually(cond: impl Fn() -> bool) -> bool {
    for _ in 0..500 {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    cond()
}

pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", cmd])
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "`{cmd}` failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A minimal busybox root filesystem in `dir` (made once per path): /bin/busybox from
/// Debian's busybox-static with its applets as symlinks, /etc/passwd, /etc/group, /tmp.
pub fn busybox_rootfs(dir: &Path) -> PathBuf {
    if dir.join("bin/busybox").exists() {
        return dir.to_path_buf();
    }
    require("busybox");
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("busybox-static installed");
    for d in ["bin", "etc", "tmp", "root", "var/www"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::copy(busybox, dir.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "ls", "cat", "echo", "true", "false", "sleep", "id", "ps", "env", "pwd", "touch",
        "rm", "mkdir", "httpd", "wget", "hostname", "grep", "head", "wc", "kill", "top", "tail",
        "chown", "seq", "tr", "dd", "mount", "tty", "cut", "ln", "sed", "nc", "stat", "umount",
        "mknod", "stty", "chroot", "readlink", "od",
    ] {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet)).unwrap();
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .unwrap();
    std::fs::write(dir.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
    std::fs::write(dir.join("var/www/index.html"), "hello from berth\n").unwrap();
    dir.to_path_buf()
}

/// Lists the files (relative paths, sorted) under `dir`.
pub fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            out.push(p.strip_prefix(base).unwrap().display().to_string());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(base, &p, out);
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The probe built for `target`, once per test run.
pub fn probe(target: &str) -> PathBuf {
    static P1: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    static P2: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let cell = if target == "wasm32-wasip1" { &P1 } else { &P2 };
    cell.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("probe-{target}.wasm"));
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/guests/probe.rs");
        let status = Command::new("rustc")
            .args(["--edition", "2021", "--target", target, "-C", "opt-level=1"])
            .args(["-C", "debuginfo=0", "-C", "strip=symbols", "-o"])
            .arg(&out)
            .arg(&src)
            .status()
            .expect("run rustc");
        assert!(
            status.success(),
            "building the probe for {target} failed: run the tests through tests/run.sh, which adds the target with rustup"
        );
        out
    })
    .clone()
}

/// Builds a Cargo project of tests/guests or examples for `target` into `target_dir`; gives
/// the .wasm path.
pub fn cargo_wasm(
    dir: &Path,
    target: &str,
    target_dir: &Path,
    file: &str,
    locked: bool,
) -> PathBuf {
    let mut c = Command::new("cargo");
    c.args([
        "build",
        "--release",
        "--quiet",
        "--target",
        target,
        "--target-dir",
    ])
    .arg(target_dir)
    .current_dir(dir)
    .env_remove("CARGO_TARGET_DIR");
    if locked {
        c.arg("--locked");
    }
    let status = c.status().expect("run cargo");
    assert!(
        status.success(),
        "building {} failed: run the tests through tests/run.sh, which adds the wasm targets",
        dir.display()
    );
    target_dir.join(target).join("release").join(file)
}

/// The repository's folder.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds example `name` for `target` once per test run, into its own target folder (where
/// its Dockerfile looks); gives the .wasm path.
pub fn example(name: &str, target: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<(String, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = built.iter().find(|(n, _)| n == name) {
        return p.clone();
    }
    let dir = repo().join("examples").join(name);
    let file = if target.ends_with("p2") {
        format!("{}.wasm", name.replace('-', "_"))
    } else {
        format!("{name}.wasm")
    };
    let p = cargo_wasm(&dir, target, &dir.join("target"), &file, false);
    built.push((name.to_string(), p.clone()));
    p
}
