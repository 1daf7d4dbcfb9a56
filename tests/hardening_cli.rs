//! End-to-end regressions for what a black-box probe of the command line found: a container
//! whose state file is damaged could not be removed, an image entry whose manifest is gone
//! could not either, logs grew without bound and `--tail` read them whole, and flags that
//! Docker refuses were taken (or left a container behind). Each test drives the real binary.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Berth, eventually};

/// A busybox image with `yes` too (for writing a lot of output quickly).
fn setup() -> Berth {
    let b = Berth::new();
    let rootfs = common::busybox_rootfs(&b.path("busybox-rootfs"));
    let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin/yes"));
    b.ok(&[
        "import",
        "--change",
        r#"CMD ["/bin/sh"]"#,
        rootfs.to_str().unwrap(),
        "busybox",
    ]);
    b
}

fn inspect(b: &Berth, what: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&b.ok(&["inspect", what])).unwrap();
    v[0].clone()
}

fn state_file(b: &Berth, id: &str) -> PathBuf {
    b.root().join("containers").join(id).join("state.json")
}

fn run_root(b: &Berth) -> PathBuf {
    let info: serde_json::Value =
        serde_json::from_str(&b.ok(&["info", "--format", "json"])).unwrap();
    PathBuf::from(info["RunRoot"].as_str().unwrap())
}

/// Runs `cmd`, killing it if it has not ended within 60 s (a watchdog, not a timing check).
fn output_within(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("{cmd:?} did not end within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// The ways a state file is found damaged: overwritten, emptied, cut short.
fn damage(path: &Path, how: &str) {
    let bytes = std::fs::read(path).unwrap();
    let new: Vec<u8> = match how {
        "garbage" => b"\x00\xffnot json at all {{{".to_vec(),
        "empty" => Vec::new(),
        // One record, cut in the middle (a power cut during a rewrite).
        "truncated" => {
            let last = bytes
                .split(|&c| c == b'\n')
                .rfind(|l| !l.is_empty())
                .unwrap()
                .to_vec();
            last[..last.len() / 2].to_vec()
        }
        other => panic!("{other}"),
    };
    std::fs::write(path, new).unwrap();
}

/// A damaged running container is listed as dead, keeps its name, and `rm -f` (by id or by
/// name) kills its processes and removes everything it had.
fn remove_damaged_running(how: &str, by_name: bool) {
    let b = setup();
    let id = b
        .ok(&["run", "-d", "--name", "victim", "busybox", "sleep", "1000"])
        .trim()
        .to_string();
    let pid = inspect(&b, "victim")["State"]["Pid"].as_i64().unwrap();
    assert!(pid > 0);
    damage(&state_file(&b, &id), how);

    // Listed, as Docker lists a dead container, not hidden.
    let ps = b.ok(&["ps", "-a"]);
    let row = ps
        .lines()
        .find(|l| l.starts_with(&id[..12]))
        .unwrap_or_else(|| panic!("{how}: not listed:\n{ps}"));
    assert!(row.contains("Dead") && row.contains("victim"), "{row}");
    assert_eq!(
        b.ok(&["ps", "-aq", "--filter", "status=dead"]).trim(),
        &id[..12]
    );
    assert_eq!(inspect(&b, "victim")["State"]["Dead"], true);
    // Its name stays taken while its process runs.
    let (code, err) = b.fail(&["run", "-d", "--name", "victim", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(
        err.contains("already in use") && err.contains(&id[..12]),
        "{err}"
    );
    // Every other command says what is wrong and how to fix it.
    let (_, err) = b.fail(&["logs", "victim"]);
    assert!(
        err.contains("corrupt state file") && err.contains("berth rm -f"),
        "{err}"
    );
    // Something runs: plain rm refuses.
    let (_, err) = b.fail(&["rm", "victim"]);
    assert!(err.contains("-f"), "{err}");
    assert!(Path::new(&format!("/proc/{pid}")).exists());

    let target = if by_name { "victim" } else { &id };
    b.ok(&["rm", "-f", target]);
    assert!(
        eventually(|| !Path::new(&format!("/proc/{pid}")).exists()),
        "{how}: the container's process {pid} still runs"
    );
    b.wait_until_gone(&id);
    assert!(!run_root(&b).join(&id).exists());
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    assert_eq!(b.container_folders(), 0);
    // The name is free again.
    b.ok(&["run", "-d", "--name", "victim", "busybox", "sleep", "1000"]);
    b.ok(&["rm", "-f", "victim"]);
}

#[test]
fn a_running_container_with_a_garbage_state_file_is_removed_by_id() {
    remove_damaged_running("garbage", false);
}

#[test]
fn a_running_container_with_a_cut_short_state_file_is_removed_by_name() {
    remove_damaged_running("truncated", true);
}

#[test]
fn a_running_container_with_an_empty_state_file_is_removed_by_name() {
    remove_damaged_running("empty", true);
}

#[test]
fn a_stopped_container_with_a_damaged_state_file_is_removed_and_pruned() {
    let b = setup();
    let mut ids = Vec::new();
    for name in ["first", "second"] {
        let id = b
            .ok(&["run", "-d", "--name", name, "busybox", "echo", "hi"])
            .trim()
            .to_string();
        b.ok(&["wait", name]);
        damage(&state_file(&b, &id), "garbage");
        ids.push(id);
    }
    // A record half-appended after good ones is not damage: the last whole record counts.
    let keep = b
        .ok(&["create", "--name", "kept", "busybox", "true"])
        .trim()
        .to_string();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(state_file(&b, &keep))
        .unwrap();
    f.write_all(br#"{"id":"half-writ"#).unwrap();
    assert_eq!(inspect(&b, "kept")["State"]["Status"], "created");

    let ps = b.ok(&["ps", "-a"]);
    assert_eq!(ps.matches("Dead").count(), 2, "{ps}");
    // Nothing of it runs: plain rm removes it, as Docker removes a dead container.
    b.ok(&["rm", "first"]);
    b.wait_until_gone(&ids[0]);
    // container prune takes what is left of a stopped one too.
    let out = b.ok(&["container", "prune", "-f"]);
    assert!(out.contains(&ids[1]), "{out}");
    b.wait_until_gone(&ids[1]);
    assert_eq!(
        b.ok(&["ps", "-aq"]),
        "",
        "kept was created, not stopped: pruned too"
    );
    assert_eq!(b.container_folders(), 0);
}

/// The manifest digest (hex) of an image, from `inspect`.
fn manifest_hex(b: &Berth, image: &str) -> String {
    inspect(b, image)["Descriptor"]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string()
}

#[test]
fn an_image_whose_manifest_blob_is_gone_is_removed_by_rmi_and_by_system_prune() {
    let b = setup();
    let rootfs = b.path("busybox-rootfs");
    for (name, env) in [("broken", "A=1"), ("gone", "B=2")] {
        b.ok(&[
            "import",
            "--change",
            &format!("ENV {env}"),
            rootfs.to_str().unwrap(),
            name,
        ]);
    }
    for name in ["broken", "gone"] {
        let hex = manifest_hex(&b, name);
        std::fs::remove_file(b.root().join("blobs/sha256").join(hex)).unwrap();
    }
    // The warning says what really removes it.
    let out = b.output(&["images"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("berth rmi broken"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("busybox"));

    let out = b.ok(&["rmi", "broken"]);
    assert!(out.contains("Untagged: broken:latest"), "{out}");
    let index = std::fs::read_to_string(b.root().join("index.json")).unwrap();
    assert!(!index.contains("broken"), "{index}");
    let (_, err) = b.fail(&["rmi", "broken"]);
    assert!(err.contains("no such image"), "{err}");

    let out = b.ok(&["system", "prune", "-f"]);
    assert!(out.contains("gone"), "{out}");
    let index = std::fs::read_to_string(b.root().join("index.json")).unwrap();
    assert!(!index.contains("gone"), "{index}");
    let err = String::from_utf8_lossy(&b.output(&["images"]).stderr).into_owned();
    assert!(!err.contains("skipping"), "{err}");
    // The other image is whole and runs.
    assert_eq!(b.ok(&["images", "-q"]).lines().count(), 1);
    assert_eq!(b.ok(&["run", "--rm", "busybox", "echo", "ok"]), "ok\n");
}

/// The container's log files and their sizes.
fn log_files(b: &Berth, id: &str) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = std::fs::read_dir(b.root().join("containers").join(id))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("log.json"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    out.sort();
    out
}

/// A line of 200 `y`s: `yes` writes 201 bytes a line.
fn long_line() -> String {
    "y".repeat(200)
}

#[test]
fn logs_rotate_at_max_size_and_keep_max_file_files() {
    let b = setup();
    let script = format!("yes {} | head -n 150000; seq 1 5000", long_line());
    let id = b
        .ok(&[
            "run",
            "-d",
            "--log-opt",
            "max-size=1m",
            "--log-opt",
            "max-file=3",
            "busybox",
            "sh",
            "-c",
            &script,
        ])
        .trim()
        .to_string();
    assert_eq!(b.ok(&["wait", &id]).trim(), "0");
    let config = &inspect(&b, &id)["HostConfig"]["LogConfig"];
    assert_eq!(config["Type"], "json-file");
    assert_eq!(config["Config"]["max-size"], "1m");
    assert_eq!(config["Config"]["max-file"], "3");
    let files = log_files(&b, &id);
    assert!(files.len() <= 3, "{files:?}");
    // A record of a 201-byte line is under 300 bytes.
    assert!(
        files.iter().all(|(_, size)| *size <= 1_000_000 + 300),
        "{files:?}"
    );

    // Oldest first, in order: the numbers end it, whole.
    let logs = b.ok(&["logs", &id]);
    let lines: Vec<&str> = logs.lines().collect();
    let tail: Vec<String> = (1..=5000).map(|i| i.to_string()).collect();
    assert_eq!(lines[lines.len() - 5000..], tail[..]);
    let first_number = lines.iter().position(|l| *l == "1").unwrap();
    assert!(lines[..first_number].iter().all(|l| *l == long_line()));
    assert_eq!(b.ok(&["logs", "--tail", "2", &id]), "4999\n5000\n");
    assert_eq!(b.ok(&["logs", "-n", "0", &id]), "");
    b.ok(&["rm", &id]);
}

#[test]
fn the_default_cap_bounds_a_burst() {
    let b = setup();
    let script = format!("yes {} | head -n 750000; echo done", long_line());
    let id = b
        .ok(&["run", "-d", "busybox", "sh", "-c", &script])
        .trim()
        .to_string();
    assert_eq!(b.ok(&["wait", &id]).trim(), "0");
    let files = log_files(&b, &id);
    let total: u64 = files.iter().map(|(_, s)| s).sum();
    // The default: max-size 20m, max-file 5.
    assert!(files.len() <= 5, "{files:?}");
    assert!(total <= 100_000_000 + 5 * 300, "{total} bytes in {files:?}");
    let config = &inspect(&b, &id)["HostConfig"]["LogConfig"]["Config"];
    assert_eq!(config["max-size"], "20m");
    assert_eq!(config["max-file"], "5");
    assert_eq!(b.ok(&["logs", "--tail", "1", &id]), "done\n");
    b.ok(&["rm", &id]);
}

/// Whether `berth logs --tail 2 NAME` succeeds with its address space limited to `kib`.
fn tail_within(b: &Berth, kib: u64, name: &str) -> Option<String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {kib} && exec {} logs --tail 2 {name}",
            env!("CARGO_BIN_EXE_berth")
        ))
        .env("BERTH_ROOT", b.root())
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn logs_tail_reads_from_the_end_in_bounded_memory() {
    let b = setup();
    b.ok(&["create", "--name", "small", "busybox", "true"]);
    b.ok(&["create", "--name", "big", "busybox", "true"]);
    let record = |i: u64| {
        format!(r#"{{"log":"line {i}\n","stream":"stdout","time":"2026-01-01T00:00:00Z"}}"#)
    };
    let dir = |name: &str| {
        b.root()
            .join("containers")
            .join(inspect(&b, name)["Id"].as_str().unwrap())
    };
    std::fs::write(
        dir("small").join("log.json"),
        format!("{}\n{}\n", record(1), record(2)),
    )
    .unwrap();
    // 400 MB of records.
    let big = dir("big").join("log.json");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
    let count = 400_000_000 / (record(0).len() as u64 + 8);
    for i in 1..=count {
        writeln!(w, "{}", record(i)).unwrap();
    }
    w.flush().unwrap();
    drop(w);
    let size = std::fs::metadata(&big).unwrap().len();

    // What berth needs to show two lines of a tiny log, found by bisection (in KiB).
    let (mut low, mut high) = (1024u64, 4 * 1024 * 1024);
    assert!(tail_within(&b, high, "small").is_some(), "4 GiB is enough");
    while high - low > 1024 {
        let mid = (low + high) / 2;
        if tail_within(&b, mid, "small").is_some() {
            high = mid;
        } else {
            low = mid;
        }
    }
    let needed = high;
    // With 64 MiB more, far less than the log, the big one's last lines still come out: it
    // is never read whole.
    let limit = needed + 64 * 1024;
    assert!(
        limit * 1024 < size / 2,
        "{limit} KiB against a {size}-byte log"
    );
    eprintln!("berth logs --tail 2 needs {needed} KiB of address space; the log has {size} bytes");
    assert_eq!(
        tail_within(&b, limit, "big").as_deref(),
        Some(format!("line {}\nline {count}\n", count - 1).as_str())
    );
}

#[test]
fn logs_follow_across_rotations() {
    let b = setup();
    // Bursts of 50 lines (4 kB of records) a second into 2 kB files, five kept.
    let script =
        "seq 1 300 | while read i; do echo line $i; [ $((i % 50)) = 0 ] && sleep 1; done; true";
    let id = b
        .ok(&[
            "run",
            "-d",
            "--log-opt",
            "max-size=2k",
            "--log-opt",
            "max-file=5",
            "busybox",
            "sh",
            "-c",
            script,
        ])
        .trim()
        .to_string();
    let out = output_within(&mut b.cmd(&["logs", "-f", &id]));
    let text = String::from_utf8_lossy(&out.stdout);
    let expected: String = (1..=300).map(|i| format!("line {i}\n")).collect();
    assert_eq!(text, expected);
    b.ok(&["rm", &id]);
}

/// Flags Docker refuses: each is refused with the flag named, exit 125, and nothing made.
#[test]
fn refused_flags_leave_nothing_behind() {
    let b = setup();
    let never = b.path("never-made");
    let never = never.to_str().unwrap();
    let long_host = "a".repeat(65);
    let cases: Vec<(Vec<String>, &str)> = [
        (vec!["--add-host", "x:notanip"], "--add-host"),
        (vec!["--add-host", "x\nevil:1.2.3.4"], "--add-host"),
        (vec!["--add-host", "x:1.2.3.4\n6.6.6.6 evil"], "--add-host"),
        (vec!["--add-host", "noip"], "--add-host"),
        (vec!["-h", "a\nb"], "--hostname"),
        (vec!["--hostname=-bad"], "--hostname"),
        (vec!["--hostname", "under_score"], "--hostname"),
        (vec!["-h", &long_host], "--hostname"),
        (vec!["-e", "=x"], "invalid environment variable: =x"),
        (vec!["-e", ""], "invalid environment variable"),
        (vec!["-l", "=x"], "label"),
        (vec!["--cpus", "nan"], "--cpus"),
        (vec!["--cpus", "inf"], "--cpus"),
        (vec!["--cpus", "0.001"], "--cpus"),
        (vec!["--cpus", "100000"], "--cpus"),
        (vec!["--cpus=-1"], "--cpus"),
        (vec!["--memory", "99999999999g"], "--memory"),
        (vec!["--memory", "1k"], "--memory"),
        (vec!["--pids-limit", "-5"], "--pids-limit"),
        (vec!["--stop-timeout", "soon"], "--stop-timeout"),
        (vec!["-v", &format!("{never}:/")], "-v"),
        (vec!["-v", &format!("{never}:/proc")], "-v"),
        (vec!["-v", &format!("{never}:/x/../proc/sys")], "-v"),
        (
            vec!["-v", "/anon", "-v", "data:/anon"],
            "duplicate mount point",
        ),
        (
            vec!["-v", "/anon", "--mount", "type=bind,source=/,target=/sys"],
            "--mount",
        ),
        (
            vec!["--mount", "type=tmpfs,target=/x,tmpfs-size=abc"],
            "--mount",
        ),
        (
            vec!["--mount", "type=bind,source=/tmp,target=/x,readonly=maybe"],
            "--mount",
        ),
        (vec!["--tmpfs", "/proc"], "--tmpfs"),
        (vec!["--tmpfs", "/x:size=abc"], "--tmpfs"),
        (vec!["-p", "70000:80"], "-p"),
        (vec!["-p", "80-81:90"], "-p"),
        (vec!["-u", "a:b:c"], "-u"),
        (vec!["-u", "4294967296"], "-u"),
        (vec!["-u", "root\nx"], "-u"),
        (vec!["-w", "relative/dir"], "-w"),
        (vec!["--log-opt", "max-size=abc"], "--log-opt"),
        (vec!["--log-opt", "max-file=0"], "--log-opt"),
        (vec!["--log-opt", "nosuch=1"], "--log-opt"),
        (vec!["--log-driver", "syslog"], "--log-driver"),
        (
            vec!["--log-driver", "none", "--log-opt", "max-size=1m"],
            "--log-opt",
        ),
    ]
    .into_iter()
    .map(|(args, flag)| (args.into_iter().map(String::from).collect(), flag))
    .collect();
    for (args, flag) in &cases {
        for command in [&["run", "-d"][..], &["create"]] {
            let mut full: Vec<&str> = command.to_vec();
            full.extend(args.iter().map(String::as_str));
            full.extend(["busybox", "true"]);
            let (code, err) = b.fail(&full);
            assert_eq!(code, 125, "{full:?}: {err}");
            assert!(err.contains(flag), "{full:?} should name {flag}: {err}");
            assert_eq!(b.ok(&["ps", "-aq"]), "", "{full:?} left a container");
            assert_eq!(b.container_folders(), 0, "{full:?} left a folder");
            assert_eq!(b.ok(&["volume", "ls", "-q"]), "", "{full:?} left a volume");
        }
    }
    assert!(
        !Path::new(never).exists(),
        "no host folder made for a refused -v"
    );
    // What Docker takes, berth takes.
    let ok_cases: [&[&str]; 6] = [
        &["--add-host", "db:10.0.0.5", "--add-host", "v6=[::1]"],
        &["-h", "web-1.example"],
        &["--cpus", "0.5", "--pids-limit", "-1", "--memory", "64m"],
        &["-v", "/x/./y/", "--tmpfs", "/t:rw,nosuid,mode=1777"],
        &["--log-driver", "none"],
        &["-u", "1000:1000", "-w", "/tmp"],
    ];
    for args in ok_cases {
        let mut full = vec!["create"];
        full.extend(args);
        full.extend(["busybox", "true"]);
        let id = b.ok(&full).trim().to_string();
        b.ok(&["rm", "-v", &id]);
    }
    // --log-driver none keeps no log, and logs says so.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "quiet",
        "--log-driver",
        "none",
        "busybox",
        "echo",
        "hi",
    ]);
    b.ok(&["wait", "quiet"]);
    let (_, err) = b.fail(&["logs", "quiet"]);
    assert!(err.contains("--log-driver none"), "{err}");
    b.ok(&["rm", "quiet"]);
    let out = b.ok(&[
        "run",
        "--rm",
        "--add-host",
        "db:10.0.0.5",
        "-h",
        "web-1",
        "busybox",
        "sh",
        "-c",
        "grep db /etc/hosts; hostname",
    ]);
    assert_eq!(out, "10.0.0.5\tdb\nweb-1\n");
}

#[test]
fn a_run_that_cannot_start_leaves_nothing_but_a_created_container_stays() {
    let b = setup();
    for detach in [true, false] {
        let mut args = vec!["run"];
        if detach {
            args.push("-d");
        }
        args.extend(["-v", "/anon", "busybox", "nosuchcommand"]);
        let (code, err) = b.fail(&args);
        assert_eq!(code, 127, "{err}");
        assert_eq!(b.ok(&["ps", "-aq"]), "", "{args:?}");
        assert_eq!(b.container_folders(), 0);
        assert_eq!(b.ok(&["volume", "ls", "-q"]), "");
    }
    // create then start: the container stays, as Docker's.
    b.ok(&["create", "--name", "kept", "busybox", "nosuchcommand"]);
    let (code, _) = b.fail(&["start", "kept"]);
    assert_ne!(code, 0);
    let (code, _) = b.fail(&["start", "-a", "kept"]);
    assert_eq!(code, 127);
    assert_eq!(b.ok(&["ps", "-aq"]).lines().count(), 1);
    b.ok(&["rm", "kept"]);
}
