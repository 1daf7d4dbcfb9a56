//! Tests against the kernel's own cgroups: they need root.

use super::*;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};

#[test]
fn ids_must_be_plain_names() {
    for id in ["", "..", "../x", "a/b", ".hidden", "a b"] {
        assert!(
            matches!(check_id(id), Err(CgroupError::InvalidId(_))),
            "{id:?}"
        );
    }
    check_id("3f2a0c1d9e8b_test-1.x").unwrap();
}

#[test]
fn missing_controller_message_names_flag_and_controller() {
    let e = CgroupError::MissingController {
        flag: "--memory",
        controller: "memory",
        how: "mount",
    };
    assert_eq!(
        e.to_string(),
        "--memory needs the memory cgroup controller, which this host does not mount"
    );
}

/// Removes the cgroup (killing what runs in it) even when a test fails.
struct Guard(Cgroup);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill_all(libc::SIGKILL);
        let _ = self.0.remove();
    }
}

fn usable() -> bool {
    let ok = rustix::process::geteuid().is_root() && Cgroup::version() != CgroupVersion::None;
    if !ok {
        eprintln!("skipped: needs root and a cgroup hierarchy");
    }
    ok
}

fn unique(name: &str) -> String {
    format!("berth-test-{}-{name}", std::process::id())
}

fn read(cg: &Cgroup, controller: &str, file: &str) -> String {
    let d = cg.dir_with(controller).unwrap();
    std::fs::read_to_string(d.path.join(file))
        .unwrap()
        .trim()
        .to_string()
}

/// Starts `sh -c script` held at a `read` until [`go`], so it can join the cgroup first.
fn held(script: &str) -> Child {
    Command::new("sh")
        .arg("-c")
        .arg(format!("read _\n{script}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn go(child: &mut Child) {
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
}

#[test]
fn limits_are_written_and_processes_tracked_killed_and_removed() {
    if !usable() {
        return;
    }
    let mib = 1024 * 1024;
    let limits = Limits {
        memory: Some(64 * mib),
        cpus: Some(0.5),
        pids: Some(20),
        ..Default::default()
    };
    let cg = Guard(Cgroup::create(&unique("basic"), &limits).unwrap());
    let paths: Vec<PathBuf> = cg.0.paths().iter().map(|p| p.to_path_buf()).collect();
    assert!(
        paths
            .iter()
            .all(|p| p.is_dir() && p.parent().unwrap().ends_with(PARENT))
    );
    if Cgroup::version() == CgroupVersion::V2 {
        assert_eq!(read(&cg.0, "memory", "memory.max"), (64 * mib).to_string());
        assert_eq!(read(&cg.0, "cpu", "cpu.max"), "50000 100000");
    } else {
        assert_eq!(
            read(&cg.0, "memory", "memory.limit_in_bytes"),
            (64 * mib).to_string()
        );
        assert_eq!(read(&cg.0, "cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(read(&cg.0, "cpu", "cpu.cfs_period_us"), "100000");
        if cg
            .0
            .dir_with("memory")
            .unwrap()
            .path
            .join("memory.memsw.limit_in_bytes")
            .exists()
        {
            assert_eq!(
                read(&cg.0, "memory", "memory.memsw.limit_in_bytes"),
                (64 * mib).to_string()
            );
        }
        if cg.0.dir_with("devices").is_some() {
            let list = read(&cg.0, "devices", "devices.list");
            assert!(
                list.contains("c 1:3 rwm") && !list.contains("a *:* rwm"),
                "{list}"
            );
        }
    }
    assert_eq!(read(&cg.0, "pids", "pids.max"), "20");

    // open finds the same directories.
    let opened = Cgroup::open(&cg.0.id).unwrap();
    assert_eq!(opened.paths(), cg.0.paths());

    let mut child = held("exec sleep 30");
    cg.0.add_process(child.id() as i32).unwrap();
    go(&mut child);
    assert_eq!(cg.0.pids().unwrap(), vec![child.id() as i32]);
    assert!(!cg.0.oom_killed());

    cg.0.kill_all(libc::SIGKILL).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");

    cg.0.remove().unwrap();
    assert!(paths.iter().all(|p| !p.exists()), "{paths:?}");
    assert!(matches!(
        Cgroup::open(&cg.0.id),
        Err(CgroupError::NotFound(_))
    ));
    // Removing again is fine.
    cg.0.remove().unwrap();
}

#[test]
fn kill_all_reaches_every_process_and_other_signals_work() {
    if !usable() {
        return;
    }
    let cg = Guard(Cgroup::create(&unique("killall"), &Limits::default()).unwrap());
    let mut child = held("sleep 30 & sleep 30 & trap 'exit 7' TERM; wait");
    cg.0.add_process(child.id() as i32).unwrap();
    go(&mut child);
    let deadline = Instant::now() + Duration::from_secs(5);
    while cg.0.pids().unwrap().len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(cg.0.pids().unwrap().len(), 3);
    cg.0.kill_all(libc::SIGTERM).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(7));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cg.0.pids().unwrap().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(cg.0.pids().unwrap().is_empty());
    assert!(cg.0.kill_all(0).is_err());
}

#[test]
fn kill_all_without_cgroup_kill_freezes_or_repeats() {
    if !usable() {
        return;
    }
    let cg = Guard(Cgroup::create(&unique("fallback"), &Limits::default()).unwrap());
    // As an older kernel or a v1-only host would see it: no cgroup.kill, then no freezer.
    let mut v1_freezer = cg.0.clone();
    v1_freezer.dirs.retain(|d| !d.unified);
    let mut bare = v1_freezer.clone();
    bare.dirs
        .retain(|d| !d.controllers.iter().any(|c| c == "freezer"));
    assert!(cg.0.freeze(true).unwrap(), "cgroup.freeze");
    cg.0.freeze(false).unwrap();
    if v1_freezer.dir_with("freezer").is_some() {
        assert!(v1_freezer.freeze(true).unwrap(), "freezer.state");
        v1_freezer.freeze(false).unwrap();
    }
    assert!(!bare.freeze(true).unwrap());
    for (what, view) in [("v1 freezer", &v1_freezer), ("no freezer", &bare)] {
        let mut child = held("sleep 30 & sleep 30 & wait");
        cg.0.add_process(child.id() as i32).unwrap();
        go(&mut child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while view.pids().unwrap().len() < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(view.pids().unwrap().len(), 3, "{what}");
        view.kill_all(libc::SIGKILL).unwrap();
        assert_eq!(
            child.wait().unwrap().signal(),
            Some(libc::SIGKILL),
            "{what}"
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while !view.pids().unwrap().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(view.pids().unwrap().is_empty(), "{what}");
    }
}

#[test]
fn remove_kills_what_still_runs() {
    if !usable() {
        return;
    }
    let cg = Guard(Cgroup::create(&unique("remove"), &Limits::default()).unwrap());
    let mut child = held("exec sleep 30");
    cg.0.add_process(child.id() as i32).unwrap();
    go(&mut child);
    cg.0.remove().unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    assert!(cg.0.paths().iter().all(|p| !p.exists()));
}

#[test]
fn memory_hog_is_oom_killed() {
    if !usable() {
        return;
    }
    let limits = Limits {
        memory: Some(32 * 1024 * 1024),
        ..Default::default()
    };
    let cg = Guard(Cgroup::create(&unique("oom"), &limits).unwrap());
    // tail keeps the whole line (no newline in 200 MB of zeros) in memory.
    let mut child = held("head -c 200000000 /dev/zero | tail");
    cg.0.add_process(child.id() as i32).unwrap();
    go(&mut child);
    let status = child.wait().unwrap();
    // The OOM killer picks tail, the biggest: the shell reports 128 + SIGKILL.
    assert!(
        status.code() == Some(128 + libc::SIGKILL) || status.signal() == Some(libc::SIGKILL),
        "{status:?}"
    );
    assert!(cg.0.oom_killed());
}

#[test]
fn pids_limit_stops_forks() {
    if !usable() {
        return;
    }
    let limits = Limits {
        pids: Some(5),
        ..Default::default()
    };
    let cg = Guard(Cgroup::create(&unique("pids"), &limits).unwrap());
    // A bounded fork loop, so a broken limit cannot take the machine down.
    let mut child = held("for i in 1 2 3 4 5 6 7 8 9 10; do sleep 30 & done; echo forked");
    cg.0.add_process(child.id() as i32).unwrap();
    go(&mut child);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut most = 0;
    while Instant::now() < deadline {
        most = most.max(cg.0.pids().unwrap().len());
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cg.0.kill_all(libc::SIGKILL).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(stderr.contains("fork"), "forks did not fail: {stderr:?}");
    assert!(most <= 5, "{most} processes");
}
