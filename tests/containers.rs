//! End-to-end: native containers with `berth run` and the lifecycle commands, on a busybox
//! image made with `berth import`. Runs as root (namespaces, cgroups, overlay).

mod common;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::{Berth, busybox_rootfs, eventually, sh, succeed, tree};

fn setup() -> Berth {
    let b = Berth::new();
    b.import_busybox("busybox");
    b
}

fn inspect(b: &Berth, name: &str) -> serde_json::Value {
    serde_json::from_str::<serde_json::Value>(&b.ok(&["inspect", name])).unwrap()[0].clone()
}

#[test]
fn output_and_exit_codes() {
    let b = setup();
    assert_eq!(
        b.ok(&["run", "--rm", "busybox", "echo", "hello", "world"]),
        "hello world\n"
    );
    let out = b.output(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "the workload's exit code");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");

    let (code, err) = b.fail(&["run", "--rm", "busybox", "nosuchcommand"]);
    assert_eq!(code, 127, "{err}");
    assert!(
        err.contains("\"nosuchcommand\": executable file not found in $PATH"),
        "{err}"
    );
    let (code, err) = b.fail(&["run", "--rm", "busybox", "/etc/passwd"]);
    assert_eq!(code, 126, "{err}");
    assert!(err.contains("permission denied"), "{err}");
    let (code, err) = b.fail(&["run", "--rm", "nosuchimage"]);
    assert_eq!(code, 125);
    assert!(err.contains("no such image: nosuchimage"), "{err}");
    let (code, err) = b.fail(&["run", "--bogus-flag", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("--bogus-flag"), "{err}");
    // An image with neither Cmd nor Entrypoint needs a command.
    b.ok(&[
        "import",
        b.path("busybox-rootfs").to_str().unwrap(),
        "nocmd",
    ]);
    let (code, err) = b.fail(&["run", "--rm", "nocmd"]);
    assert_eq!(code, 125);
    assert!(err.contains("no command specified"), "{err}");
    assert_eq!(
        b.ok(&["ps", "-aq"]),
        "",
        "--rm removed every container, started or not"
    );
}

#[test]
fn pid_one_hostname_and_no_host_processes() {
    let b = setup();
    let out = b.ok(&[
        "run",
        "--rm",
        "--hostname",
        "box",
        "busybox",
        "sh",
        "-c",
        "echo $$; hostname; ls /proc | grep -c '^[0-9]'",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1", "the workload is PID 1");
    assert_eq!(lines[1], "box");
    let procs: usize = lines[2].parse().unwrap();
    assert!(
        procs <= 3,
        "only the container's processes are visible, saw {procs}"
    );
    // The default hostname is the short id.
    let id = b
        .ok(&["run", "-d", "busybox", "sleep", "30"])
        .trim()
        .to_string();
    assert_eq!(b.ok(&["exec", &id, "hostname"]).trim(), &id[..12]);
    b.ok(&["rm", "-f", &id]);
}

#[test]
fn env_and_workdir_from_image_and_flags() {
    let b = setup();
    let rootfs = b.path("busybox-rootfs");
    b.ok(&[
        "import",
        "-c",
        "ENV A=image B=image",
        "-c",
        "WORKDIR /srv",
        "-c",
        "CMD [\"sh\", \"-c\", \"echo $A $B $(pwd)\"]",
        rootfs.to_str().unwrap(),
        "envimg",
    ]);
    assert_eq!(b.ok(&["run", "--rm", "envimg"]), "image image /srv\n");
    let env_file = b.path("env.list");
    std::fs::write(&env_file, "# comment\nB=fromfile\n").unwrap();
    let out = b.ok(&[
        "run",
        "--rm",
        "-e",
        "A=flag",
        "--env-file",
        env_file.to_str().unwrap(),
        "-w",
        "/tmp",
        "envimg",
    ]);
    assert_eq!(out, "flag fromfile /tmp\n");
    // A missing working directory is created, as Docker does.
    assert_eq!(
        b.ok(&["run", "--rm", "-w", "/new/dir", "busybox", "pwd"]),
        "/new/dir\n"
    );
    // --entrypoint replaces the image's command too.
    assert_eq!(
        b.ok(&["run", "--rm", "--entrypoint", "echo", "envimg"]),
        "\n"
    );
    let env = b.ok(&["run", "--rm", "busybox", "env"]);
    assert!(
        env.contains("PATH=/usr/local/sbin:") && env.contains("HOME=/root"),
        "{env}"
    );
}

#[test]
fn bind_mounts_and_named_volumes() {
    let b = setup();
    let host = b.path("hostdir");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("f"), "from host\n").unwrap();
    let spec_ro = format!("{}:/h:ro", host.display());
    let out = b.output(&[
        "run",
        "--rm",
        "-v",
        &spec_ro,
        "busybox",
        "sh",
        "-c",
        "cat /h/f; echo x > /h/new",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from host\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Read-only file system"));
    assert!(!host.join("new").exists(), ":ro refused the write");
    let spec_rw = format!("{}:/h", host.display());
    b.ok(&[
        "run",
        "--rm",
        "-v",
        &spec_rw,
        "busybox",
        "sh",
        "-c",
        "echo written > /h/new",
    ]);
    assert_eq!(
        std::fs::read_to_string(host.join("new")).unwrap(),
        "written\n"
    );

    // A named volume starts with the image's content and outlives its container.
    b.ok(&[
        "run",
        "--name",
        "writer",
        "-v",
        "data:/etc",
        "busybox",
        "sh",
        "-c",
        "ls /etc/passwd && echo kept > /etc/note",
    ]);
    b.ok(&["rm", "writer"]);
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "-v",
            "data:/data:ro",
            "busybox",
            "cat",
            "/data/note"
        ]),
        "kept\n"
    );
    assert!(b.ok(&["volume", "ls", "-q"]).lines().any(|l| l == "data"));
    let (code, err) = b.fail(&[
        "run",
        "--rm",
        "-v",
        "data:/data:ro",
        "busybox",
        "sh",
        "-c",
        "echo x > /data/x",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("Read-only"), "{err}");
    // --mount and anonymous volumes; rm -v removes the anonymous one.
    let id = b
        .ok(&[
            "create",
            "--mount",
            "type=volume,target=/anon",
            "busybox",
            "true",
        ])
        .trim()
        .to_string();
    assert_eq!(b.ok(&["volume", "ls", "-q"]).lines().count(), 2);
    b.ok(&["rm", "-v", &id]);
    assert_eq!(b.ok(&["volume", "ls", "-q"]).trim(), "data");
    let (_, err) = b.fail(&[
        "run",
        "--rm",
        "--mount",
        "type=bind,source=/nonexistent,target=/x",
        "busybox",
        "true",
    ]);
    assert!(
        err.contains("/nonexistent") && err.contains("does not exist"),
        "{err}"
    );
    b.ok(&["volume", "rm", "data"]);
}

#[test]
fn containers_cannot_write_the_image_or_the_host() {
    let b = setup();
    let snapshots = || {
        sh(&format!(
            "cd {} && find . -printf '%p %s %m\\n' | sort | sha256sum",
            b.root().join("snapshots").display()
        ))
    };
    let before = snapshots();
    b.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "rm /bin/cat; echo changed > /etc/passwd; mkdir /newdir",
    ]);
    assert_eq!(snapshots(), before, "the layer snapshots are untouched");
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "ls /bin/cat; head -1 /etc/passwd; ls -d /newdir 2>&1 || true"
        ])
        .lines()
        .take(2)
        .collect::<Vec<_>>(),
        ["/bin/cat", "root:x:0:0:root:/root:/bin/sh"]
    );
    let out = b.output(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo 1 > /proc/sys/kernel/domainname; touch /sys/x; mount -t tmpfs t /mnt",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("Read-only file system").count(), 2, "{err}");
    // Masked paths, where this kernel has them, read empty.
    let masked = b.ok(&["run", "--rm", "busybox", "sh", "-c", "for p in /proc/kcore /proc/keys /proc/timer_list; do [ -e $p ] && wc -c < $p; done; ls /sys/firmware 2>/dev/null | wc -l"]);
    assert!(
        masked.lines().all(|l| l.trim() == "0"),
        "masked paths read empty: {masked}"
    );
    assert!(
        err.contains("mount") && err.contains("ermission denied") || err.contains("not permitted"),
        "{err}"
    );
    // The rootfs itself can be read-only.
    let (_, err) = b.fail(&["run", "--rm", "--read-only", "busybox", "touch", "/x"]);
    assert!(err.contains("Read-only file system"), "{err}");
    // A device node made inside cannot reach a host disk (devices cgroup).
    let out = b.output(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "mknod /tmp/disk b 8 0 && head -c 1 /tmp/disk",
    ]);
    assert!(
        !out.status.success(),
        "reading a block device made in the container must fail"
    );
}

#[test]
fn memory_and_pids_limits() {
    let b = setup();
    let out = b.output(&[
        "run",
        "--name",
        "hog",
        "-m",
        "32m",
        "busybox",
        "/bin/busybox",
        "tail",
        "-c",
        "300000000",
        "/dev/zero",
    ]);
    assert_eq!(out.status.code(), Some(137), "a memory hog ends with 137");
    let i = inspect(&b, "hog");
    assert_eq!(i["State"]["OOMKilled"], true);
    assert_eq!(i["State"]["ExitCode"], 137);
    assert_eq!(i["HostConfig"]["Memory"], 32 << 20);
    b.ok(&["rm", "hog"]);

    let out = b.output(&[
        "run",
        "--rm",
        "--pids-limit",
        "10",
        "busybox",
        "sh",
        "-c",
        "for i in $(seq 1 40); do sleep 5 & done; echo spawned",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("can't fork") || err.contains("Resource temporarily unavailable"),
        "a fork bomb is stopped: {err}"
    );
}

/// The hierarchies a container's processes must be in, from the host's own `/proc/self/cgroup`:
/// each v1 one with a controller berth uses, and the v2 (unified) one, as `N:controllers:`.
fn container_hierarchies() -> Vec<String> {
    let used = ["memory", "cpu", "cpuacct", "pids", "freezer", "devices"];
    std::fs::read_to_string("/proc/self/cgroup")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (n, controllers) = (parts.next()?, parts.next()?);
            (controllers.is_empty() || controllers.split(',').any(|c| used.contains(&c)))
                .then(|| format!("{n}:{controllers}:"))
        })
        .collect()
}

#[test]
fn every_process_of_a_container_is_in_its_cgroup() {
    let b = setup();
    let id = b
        .ok(&["run", "-d", "--name", "grouped", "busybox", "sleep", "1000"])
        .trim()
        .to_string();
    let want = format!("/berth/{id}");
    let hierarchies = container_hierarchies();
    assert!(!hierarchies.is_empty(), "the host has cgroups");
    // PID 1 (it joins the v1 hierarchies itself and is born in the v2 one), then a command
    // run by `exec` (the same, from its own helper).
    let pid1 = b.ok(&["exec", "grouped", "cat", "/proc/1/cgroup"]);
    let exec = b.ok(&["exec", "grouped", "cat", "/proc/self/cgroup"]);
    for (who, listing) in [("PID 1", &pid1), ("an exec'd command", &exec)] {
        for h in &hierarchies {
            let line = listing
                .lines()
                .find(|l| l.starts_with(h.as_str()))
                .unwrap_or_else(|| panic!("{who}: no {h} line in {listing}"));
            assert!(line.ends_with(&want), "{who} is in {line}, not {want}");
        }
    }
    // What the kernel counts for the limits is what `top` lists: PID 1 and nothing of berth's.
    let top = b.ok(&["top", "grouped"]);
    assert!(top.contains("sleep 1000"), "{top}");
    assert!(
        !top.contains("__init"),
        "berth's own processes stay out: {top}"
    );
    b.ok(&["rm", "-f", "grouped"]);
}

#[test]
fn capabilities_are_really_dropped() {
    let b = setup();
    let bnd = |args: &[&str]| -> u64 {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(args);
        a.extend_from_slice(&[
            "busybox",
            "sh",
            "-c",
            "grep CapBnd /proc/self/status | cut -f2",
        ]);
        u64::from_str_radix(b.ok(&a).trim(), 16).unwrap()
    };
    assert_eq!(bnd(&[]), 0xa80425fb, "Docker's default set");
    const CHOWN: u64 = 1 << 0;
    const NET_ADMIN: u64 = 1 << 12;
    assert_eq!(bnd(&["--cap-drop", "CHOWN"]) & CHOWN, 0);
    assert_ne!(bnd(&["--cap-add", "NET_ADMIN"]) & NET_ADMIN, 0);
    let (_, err) = b.fail(&[
        "run",
        "--rm",
        "--cap-drop",
        "chown",
        "busybox",
        "chown",
        "1",
        "/tmp",
    ]);
    assert!(err.contains("Operation not permitted"), "{err}");
    b.ok(&["run", "--rm", "busybox", "chown", "1", "/tmp"]);
    let status = b.ok(&[
        "run",
        "--rm",
        "busybox",
        "grep",
        "-E",
        "NoNewPrivs|^Seccomp:",
        "/proc/self/status",
    ]);
    assert!(
        status.contains("NoNewPrivs:\t1") && status.contains("Seccomp:\t2"),
        "{status}"
    );
    let unconfined = b.ok(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=unconfined",
        "busybox",
        "grep",
        "^Seccomp:",
        "/proc/self/status",
    ]);
    assert!(unconfined.contains("Seccomp:\t0"), "{unconfined}");
    let (_, err) = b.fail(&["run", "--rm", "--cap-add", "NOPE", "busybox", "true"]);
    assert!(err.contains("NOPE"), "{err}");
}

#[test]
fn detached_logs_stop_restart_rm() {
    let b = setup();
    let id = b.ok(&["run", "-d", "--name", "ticker", "busybox", "sh", "-c", "trap 'echo bye; exit 0' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"]).trim().to_string();
    assert_eq!(id.len(), 64);
    let ps = b.ok(&["ps"]);
    assert!(ps.contains("ticker") && ps.contains("Up "), "{ps}");
    assert_eq!(b.ok(&["ps", "-q"]).trim(), &id[..12]);
    assert_eq!(
        b.ok(&["ps", "-q", "--filter", "name=tick"]).trim(),
        &id[..12]
    );

    // logs -f follows until the container stops.
    let mut follow = b
        .cmd(&["logs", "-f", "ticker"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    b.ok(&["stop", "ticker"]);
    let mut followed = String::new();
    follow
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut followed)
        .unwrap();
    assert!(follow.wait().unwrap().success());
    assert!(
        followed.starts_with("tick 0\n") && followed.ends_with("bye\n"),
        "{followed}"
    );
    let i = inspect(&b, "ticker");
    assert_eq!(i["State"]["Status"], "exited");
    assert_eq!(i["State"]["ExitCode"], 0, "the trap handled SIGTERM");
    assert_eq!(b.ok(&["logs", "--tail", "1", "ticker"]), "bye\n");
    assert!(
        b.ok(&["logs", "-t", "--tail", "1", "ticker"])
            .contains("Z bye")
    );
    assert_eq!(b.ok(&["wait", "ticker"]).trim(), "0");

    // restart starts it again; a PID 1 that ignores SIGTERM is killed after the timeout.
    b.ok(&["restart", "ticker"]);
    assert_eq!(inspect(&b, "ticker")["State"]["Running"], true);
    let stubborn = b
        .ok(&["run", "-d", "busybox", "sleep", "1000"])
        .trim()
        .to_string();
    b.ok(&["stop", "-t", "1", &stubborn]);
    assert_eq!(inspect(&b, &stubborn)["State"]["ExitCode"], 137);

    let (code, err) = b.fail(&["rm", "ticker"]);
    assert_eq!(code, 1);
    assert!(err.contains("is running") && err.contains("-f"), "{err}");
    b.ok(&["rm", "-f", "ticker", &stubborn]);
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    let (_, err) = b.fail(&["logs", "ticker"]);
    assert!(err.contains("no such container"), "{err}");
}

#[test]
fn names_are_unique_and_ids_match_by_prefix() {
    let b = setup();
    let id = b
        .ok(&["create", "--name", "one", "busybox", "true"])
        .trim()
        .to_string();
    let (code, err) = b.fail(&["create", "--name", "one", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("already in use"), "{err}");
    assert_eq!(inspect(&b, &id[..5])["Name"], "/one");
    assert_eq!(b.ok(&["start", "-a", "one"]), "");
    assert_eq!(inspect(&b, "one")["State"]["Status"], "exited");
    b.ok(&["container", "prune", "-f"]);
    assert_eq!(b.ok(&["ps", "-aq"]), "");
}

#[test]
fn rename_and_port_answer_as_dockers() {
    let b = setup();
    let port = common::registry::free_port();
    let spec = format!("127.0.0.1:{port}:80");
    b.ok(&[
        "run", "-d", "--name", "web", "-p", &spec, "busybox", "sleep", "60",
    ]);
    assert_eq!(
        b.ok(&["port", "web"]),
        format!("80/tcp -> 127.0.0.1:{port}\n")
    );
    assert_eq!(b.ok(&["port", "web", "80"]), format!("127.0.0.1:{port}\n"));
    assert_eq!(
        b.ok(&["container", "port", "web", "80/tcp"]),
        format!("127.0.0.1:{port}\n")
    );
    let (code, err) = b.fail(&["port", "web", "81"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no public port 81/tcp published for web"),
        "{err}"
    );
    let (_, err) = b.fail(&["port", "web", "http"]);
    assert!(err.contains("invalid port"), "{err}");

    // A running container renamed: found by its new name only, its old one free again.
    b.ok(&["create", "--name", "db", "busybox", "true"]);
    assert_eq!(b.ok(&["rename", "web", "front"]), "");
    assert!(b.ok(&["ps"]).contains("front"));
    assert_eq!(inspect(&b, "front")["Name"], "/front");
    let (_, err) = b.fail(&["port", "web"]);
    assert!(err.contains("no such container: web"), "{err}");
    b.ok(&["container", "rename", "db", "web"]);
    let (code, err) = b.fail(&["rename", "front", "web"]);
    assert_eq!(code, 1);
    assert!(err.contains("already in use"), "{err}");
    let (_, err) = b.fail(&["rename", "front", "front"]);
    assert!(err.contains("already named front"), "{err}");
    let (_, err) = b.fail(&["rename", "front", "no/slash"]);
    assert!(err.contains("invalid container name"), "{err}");
    let (_, err) = b.fail(&["rename", "nosuch", "x"]);
    assert!(err.contains("no such container: nosuch"), "{err}");
    b.ok(&["rm", "-f", "front", "web"]);
}

#[test]
fn pause_freezes_a_container_until_unpause() {
    let b = setup();
    // A counter on stdout every 20 ms: its log stops growing while frozen.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "count",
        "busybox",
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo $i; sleep 0.02; done",
    ]);
    let lines = || b.ok(&["logs", "count"]).lines().count();
    assert!(eventually(|| lines() > 2));
    assert_eq!(b.ok(&["pause", "count"]), "count\n");
    let ps = b.ok(&["ps"]);
    assert!(ps.contains("(Paused)"), "{ps}");
    assert_eq!(
        b.ok(&["ps", "-q", "--filter", "status=paused"])
            .lines()
            .count(),
        1
    );
    assert_eq!(inspect(&b, "count")["State"]["Paused"], true);
    assert_eq!(inspect(&b, "count")["State"]["Status"], "paused");
    // Frozen: once the last write has landed, nothing more comes.
    let before = lines();
    std::thread::sleep(Duration::from_millis(300));
    let settled = lines();
    assert!(settled <= before + 1, "{before} then {settled}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(lines(), settled);
    let (code, err) = b.fail(&["exec", "count", "true"]);
    assert_eq!(code, 1);
    assert!(err.contains("is paused: unpause it first"), "{err}");
    let (_, err) = b.fail(&["pause", "count"]);
    assert!(err.contains("already paused"), "{err}");
    assert_eq!(b.ok(&["container", "unpause", "count"]), "count\n");
    assert!(eventually(|| lines() > settled + 2));
    let (_, err) = b.fail(&["unpause", "count"]);
    assert!(err.contains("is not paused"), "{err}");
    // A paused container stops (its signal is acted on once thawed) and is removed.
    b.ok(&["pause", "count"]);
    b.ok(&["stop", "-t", "1", "count"]);
    assert_eq!(inspect(&b, "count")["State"]["Status"], "exited");
    let (_, err) = b.fail(&["pause", "count"]);
    assert!(err.contains("is not running"), "{err}");
    let (_, err) = b.fail(&["pause", "nosuch"]);
    assert!(err.contains("no such container: nosuch"), "{err}");
    b.ok(&["rm", "count"]);
}

#[test]
fn exec_joins_a_running_container() {
    let b = setup();
    b.ok(&[
        "run", "-d", "--name", "box", "-e", "X=1", "busybox", "sleep", "1000",
    ]);
    assert_eq!(
        b.ok(&["exec", "box", "sh", "-c", "echo $X $$"])
            .split_whitespace()
            .next(),
        Some("1")
    );
    let out = b.output(&[
        "exec",
        "-e",
        "Y=2",
        "-w",
        "/tmp",
        "box",
        "sh",
        "-c",
        "echo $Y $(pwd); exit 4",
    ]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2 /tmp\n");
    let (code, _) = b.fail(&["exec", "box", "nosuch"]);
    assert_eq!(code, 127);
    // -d returns at once; the command still runs, and leaves no temp file behind.
    b.ok(&["exec", "-d", "box", "sh", "-c", "echo detached > /tmp/d"]);
    let mut seen = String::new();
    for _ in 0..100 {
        seen = b
            .output(&["exec", "box", "cat", "/tmp/d"])
            .stdout
            .iter()
            .map(|&c| c as char)
            .collect();
        if !seen.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(seen, "detached\n");
    assert_eq!(std::fs::read_dir(b.root().join("tmp")).unwrap().count(), 0);
    // It sees the container's processes, not the host's.
    let ps = b.ok(&["exec", "box", "ps"]);
    assert!(ps.contains("sleep 1000") && ps.lines().count() <= 4, "{ps}");
    // -it gets a real terminal (through `script`, which gives berth one).
    let out = b.in_terminal("exec -it box sh -c '[ -t 0 ] && [ -t 1 ] && echo on-a-tty; exit 7'");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("on-a-tty"), "exec -it has a tty: {text}");
    assert_eq!(out.status.code(), Some(7), "{text}");
    b.ok(&["top", "box"])
        .contains("sleep 1000")
        .then_some(())
        .expect("top lists the workload");
    b.ok(&["rm", "-f", "box"]);
    let (code, err) = b.fail(&["exec", "box", "true"]);
    assert_eq!(code, 1);
    assert!(err.contains("no such container"), "{err}");
}

#[test]
fn interactive_stdin_and_tty() {
    let b = setup();
    let mut child = b
        .cmd(&[
            "run",
            "--rm",
            "-i",
            "busybox",
            "sh",
            "-c",
            "read line; echo got $line",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "got hello\n");
    let out = b.in_terminal("run --rm -it busybox sh -c 'tty; exit 3'");
    let text = String::from_utf8_lossy(&out.stdout);
    // The pty is bound at /dev/console, as runc's consoles are.
    assert!(
        text.contains("/dev/console") || text.contains("/dev/pts/"),
        "run -t gives the container a pty: {text}"
    );
    assert_eq!(out.status.code(), Some(3), "{text}");
}

#[test]
fn signals_reach_the_workload_and_init_reaps() {
    let b = setup();
    let mut child = b
        .cmd(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "trap 'echo got INT; exit 5' INT; echo ready; while true; do sleep 0.1; done",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let mut out = child.stdout.take().unwrap();
    let mut buf = [0u8; 6];
    out.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ready\n");
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "got INT\n");
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(5),
        "Ctrl-C reached the workload and its exit code came back"
    );

    // --init: PID 1 is berth's init and the workload is its child; orphans are reaped.
    let out = b.ok(&["run", "--rm", "--init", "busybox", "sh", "-c", "echo $$; (sleep 0.2 &) ; sleep 0.5; cat /proc/1/cmdline | tr '\\0' ' '; echo; ps -o stat | grep -c Z || true"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_ne!(lines[0], "1", "the workload is not PID 1 under --init");
    assert!(lines[1].contains("__init"), "{out}");
    assert_eq!(lines.last().unwrap().trim(), "0", "no zombies: {out}");

    // Nothing of the environment berth was started with reaches the container, with or
    // without an init that stays as PID 1.
    for init in [&["--init"][..], &[][..]] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(init);
        args.extend(["busybox", "sh", "-c", "cat /proc/1/environ; echo; env"]);
        let out = b.cmd(&args).env("HOST_SECRET", "s3cr3t").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(!text.contains("s3cr3t"), "{init:?}: {text}");
    }
}

#[test]
fn a_killed_monitor_is_noticed() {
    let b = setup();
    let id = b
        .ok(&["run", "-d", "busybox", "sleep", "1000"])
        .trim()
        .to_string();
    let monitor = inspect(&b, &id);
    let pid = monitor["State"]["Pid"].as_i64().unwrap();
    // The state file is a log of records, one per line: the last is current.
    let file =
        std::fs::read_to_string(b.root().join("containers").join(&id).join("state.json")).unwrap();
    let state: serde_json::Value = serde_json::from_str(file.lines().last().unwrap()).unwrap();
    let monitor_pid = state["state"]["monitor_pid"].as_i64().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(monitor_pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // The container dies with its monitor, and shows as exited, never as a ghost.
    for _ in 0..100 {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}/status")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/status"))
                .unwrap()
                .contains("zombie")
    );
    let i = inspect(&b, &id);
    assert_eq!(i["State"]["Status"], "exited");
    assert_eq!(i["State"]["ExitCode"], 137);
    assert_eq!(b.ok(&["ps", "-q"]), "");
    b.ok(&["rm", &id]);
}

#[test]
fn published_ports_serve_the_host() {
    let b = setup();
    let port = common::registry::free_port();
    let spec = format!("127.0.0.1:{port}:80");
    b.ok(&[
        "run", "-d", "--name", "web", "-p", &spec, "busybox", "httpd", "-f", "-p", "80", "-h",
        "/var/www",
    ]);
    let ps = b.ok(&["ps"]);
    assert!(ps.contains(&format!("127.0.0.1:{port}->80/tcp")), "{ps}");
    let get = || -> Option<String> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n")
            .ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        Some(body)
    };
    let mut body = None;
    for _ in 0..50 {
        body = get().filter(|b| b.contains("200 OK"));
        if body.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let body = body.expect("httpd answers through the published port");
    assert!(body.ends_with("hello from berth\n"), "{body}");

    // The port is taken now: a second container asking for it fails clearly and does not run.
    let marks = b.path("marks");
    std::fs::create_dir(&marks).unwrap();
    let vol = format!("{}:/marks", marks.display());
    let (code, err) = b.fail(&[
        "run",
        "--rm",
        "-p",
        &spec,
        "-v",
        &vol,
        "busybox",
        "touch",
        "/marks/ran",
    ]);
    assert_eq!(code, 125);
    assert!(
        err.contains("already in use") && err.contains(&port.to_string()),
        "{err}"
    );
    assert!(!marks.join("ran").exists(), "the workload never ran");
    // -P publishes the image's exposed ports on random host ports.
    b.ok(&[
        "import",
        "-c",
        "EXPOSE 80",
        "-c",
        "CMD [\"httpd\", \"-f\", \"-p\", \"80\", \"-h\", \"/var/www\"]",
        b.path("busybox-rootfs").to_str().unwrap(),
        "webimg",
    ]);
    b.ok(&["run", "-d", "--name", "web2", "-P", "webimg"]);
    let ports = inspect(&b, "web2")["NetworkSettings"]["Ports"].clone();
    assert!(ports[0].as_str().unwrap().ends_with("->80/tcp"), "{ports}");
    b.ok(&["rm", "-f", "web", "web2"]);
    // Once removed, the port is free again.
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("the proxy released the port");
    let (_, err) = b.fail(&["run", "--rm", "-p", "notaport", "busybox", "true"]);
    assert!(err.contains("notaport"), "{err}");
}

#[test]
fn user_namespace_maps_root_to_unprivileged_ids() {
    let b = setup();
    let id = b
        .ok(&[
            "run",
            "-d",
            "--userns",
            "private",
            "busybox",
            "sh",
            "-c",
            "echo data > /root/made-inside; sleep 1000",
        ])
        .trim()
        .to_string();
    let map = b.ok(&["exec", &id, "cat", "/proc/self/uid_map"]);
    let fields: Vec<u64> = map.split_whitespace().map(|f| f.parse().unwrap()).collect();
    assert_eq!(fields[0], 0, "container root…");
    assert_ne!(fields[1], 0, "…is not host root: {map}");
    assert_eq!(b.ok(&["exec", &id, "id", "-u"]).trim(), "0");
    // The image's files still belong to the container's root (idmapped layers).
    assert_eq!(
        b.ok(&["exec", &id, "stat", "-c", "%u", "/bin/busybox"])
            .trim(),
        "0"
    );
    // What the container writes belongs to the mapped ids on the host.
    let mut host_owner = None;
    for _ in 0..50 {
        if let Ok(m) = std::fs::metadata(
            b.root()
                .join("containers")
                .join(&id)
                .join("upper/root/made-inside"),
        ) {
            use std::os::unix::fs::MetadataExt;
            host_owner = Some(m.uid() as u64);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        host_owner,
        Some(fields[1]),
        "files made inside are owned by the mapped host uid"
    );
    // Root inside cannot use host devices.
    let out = b.output(&["exec", &id, "sh", "-c", "mknod /tmp/disk b 8 0"]);
    assert!(!out.status.success());
    b.ok(&["rm", "-f", &id]);
    let (code, err) = b.fail(&["run", "--rm", "--userns", "keep-id", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("--userns"), "{err}");
}

#[test]
fn a_start_that_fails_before_the_workload_leaves_no_cgroup() {
    let b = setup();
    let no_cgroup = |id: &str| {
        for hierarchy in ["memory", "pids", "unified", ""] {
            let dir = std::path::Path::new("/sys/fs/cgroup")
                .join(hierarchy)
                .join("berth")
                .join(id);
            assert!(!dir.exists(), "{} is left behind", dir.display());
        }
    };
    let id = b.ok(&["create", "busybox", "true"]).trim().to_string();
    // The log cannot be opened: the start fails before `__init` is started.
    let log = b.root().join("containers").join(&id).join("log.json");
    std::fs::create_dir_all(&log).unwrap();
    let (code, err) = b.fail(&["start", &id]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("log.json"), "{err}");
    no_cgroup(&id);
    std::fs::remove_dir(&log).unwrap();

    // The writable layer cannot be made: the start fails while `__init` is already making the
    // namespaces, before the cgroup is made; `__init` ends without starting anything.
    let upper = b.root().join("containers").join(&id).join("upper");
    std::fs::write(&upper, "in the way").unwrap();
    let (code, err) = b.fail(&["start", "-a", &id]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("upper"), "{err}");
    no_cgroup(&id);
    // Nothing else is in the way of a start once the cause is gone.
    std::fs::remove_file(&upper).unwrap();
    b.ok(&["start", "-a", &id]);
    no_cgroup(&id);
    b.ok(&["rm", &id]);
}

#[test]
fn a_containers_run_files_are_on_a_tmpfs_and_go_with_it() {
    let b = setup();
    let info: serde_json::Value =
        serde_json::from_str(&b.ok(&["info", "--format", "json"])).unwrap();
    let run_root = std::path::PathBuf::from(info["RunRoot"].as_str().unwrap());
    let fs_type = |p: &std::path::Path| {
        sh(&format!("stat -f -c %T {}", p.display()))
            .trim()
            .to_string()
    };
    let id = b
        .ok(&[
            "run",
            "-d",
            "--name",
            "runfiles",
            "--hostname",
            "h1",
            "busybox",
            "sleep",
            "1000",
        ])
        .trim()
        .to_string();
    let i = inspect(&b, "runfiles");
    let hosts = std::path::PathBuf::from(i["HostsPath"].as_str().unwrap());
    assert_eq!(hosts, run_root.join(&id).join("hosts"));
    assert!(std::fs::read_to_string(&hosts).unwrap().contains("h1"));
    assert_eq!(b.ok(&["exec", "runfiles", "cat", "/etc/hostname"]), "h1\n");
    if fs_type(std::path::Path::new("/dev/shm")) == "tmpfs" {
        // Nothing of a start churns the store's disk that a reboot would clear anyway.
        assert_eq!(fs_type(&hosts), "tmpfs", "{}", hosts.display());
        assert!(!b.root().join("containers").join(&id).join("hosts").exists());
    }
    // Whatever the umask, a `--userns` container's root can reach its own run folder, and
    // nobody else can look into one.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&run_root), 0o711, "{}", run_root.display());
    assert_eq!(mode(run_root.parent().unwrap()), 0o711);
    assert_eq!(mode(&run_root.join(&id)), 0o700);
    b.ok(&["rm", "-f", "runfiles"]);
    assert!(!run_root.join(&id).exists(), "removed with its container");
    b.ok(&["run", "--rm", "busybox", "true"]);
    let left: Vec<_> = std::fs::read_dir(&run_root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.len() == 64)
        .collect();
    assert!(left.is_empty(), "a --rm container leaves nothing: {left:?}");

    // A run root lost with its tmpfs (a reboot) is made again; a leftover one (its container
    // removed by hand) goes with `container prune`.
    b.ok(&["create", "--name", "later", "busybox", "true"]);
    let _ = std::fs::remove_dir_all(&run_root);
    b.ok(&["start", "-a", "later"]);
    let stale = run_root.join("0".repeat(64));
    std::fs::create_dir_all(&stale).unwrap();
    b.ok(&["container", "prune", "-f"]);
    assert!(!stale.exists());
}

#[test]
fn the_callers_umask_does_not_reach_the_container() {
    let b = setup();
    // berth run by someone whose umask lets nobody else in.
    let run = |args: &[&str]| -> String {
        succeed(
            std::process::Command::new("sh")
                .arg("-c")
                .arg("umask 077; exec \"$0\" \"$@\"")
                .arg(env!("CARGO_BIN_EXE_berth"))
                .args(args)
                .env("BERTH_ROOT", b.root())
                .stdin(Stdio::null()),
        )
    };
    // Docker's umask inside; `/`, /etc and the /etc files readable by any user.
    let probe = "umask; stat -c '%a %n' / /etc /etc/hosts /etc/hostname; head -1 /etc/hosts";
    let out = run(&[
        "run", "--rm", "--user", "1000", "busybox", "sh", "-c", probe,
    ]);
    assert!(out.starts_with("0022\n"), "{out}");
    assert!(
        out.contains("755 /\n") && out.contains("644 /etc/hosts"),
        "{out}"
    );
    assert!(out.contains("127.0.0.1"), "{out}");
    // A user namespace's root reaches its rootfs and run folder.
    let out = run(&[
        "run",
        "--rm",
        "--userns",
        "private",
        "busybox",
        "cat",
        "/etc/hostname",
    ]);
    assert!(!out.trim().is_empty());
    // And an exec'd command gets Docker's umask too.
    run(&["run", "-d", "--name", "masked", "busybox", "sleep", "1000"]);
    assert_eq!(run(&["exec", "masked", "sh", "-c", "umask"]), "0022\n");
    b.ok(&["rm", "-f", "masked"]);
}

#[test]
fn what_a_container_did_to_its_root_folder_survives_a_restart() {
    let b = setup();
    b.ok(&[
        "create",
        "--name",
        "chmodder",
        "busybox",
        "sh",
        "-c",
        "stat -c %a /; chmod 700 /",
    ]);
    assert_eq!(b.ok(&["start", "-a", "chmodder"]), "755\n");
    assert_eq!(b.ok(&["start", "-a", "chmodder"]), "700\n");
    b.ok(&["rm", "chmodder"]);
}

#[test]
fn a_state_file_cut_short_keeps_its_last_whole_record() {
    let b = setup();
    let id = b
        .ok(&["create", "--name", "torn", "busybox", "sh", "-c", "exit 3"])
        .trim()
        .to_string();
    b.output(&["start", "-a", "torn"]);
    let state = b.root().join("containers").join(&id).join("state.json");
    let records = std::fs::read_to_string(&state).unwrap();
    assert!(
        records.lines().count() >= 2,
        "a change is appended, not written over: {records}"
    );
    let exited = |b: &Berth| {
        let i = inspect(b, "torn");
        (i["State"]["Status"].clone(), i["State"]["ExitCode"].clone())
    };
    assert_eq!(exited(&b), ("exited".into(), 3.into()));

    // A record half-written when the machine stopped: zeros where its bytes never landed.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&state)
        .unwrap();
    f.write_all(b"{\"id\":\"").unwrap();
    f.write_all(&[0; 300]).unwrap();
    drop(f);
    assert_eq!(
        exited(&b),
        ("exited".into(), 3.into()),
        "the last whole record"
    );
    assert!(b.ok(&["ps", "-a"]).contains("torn"));
    // The next change lands whole after the torn one.
    b.output(&["start", "-a", "torn"]);
    let i = inspect(&b, "torn");
    assert_eq!(i["State"]["ExitCode"], 3);
    assert!(i["State"]["StartedAt"] != serde_json::Value::Null);

    // A state file from before the log: one record over several lines.
    let last = std::fs::read_to_string(&state).unwrap();
    let record: serde_json::Value = serde_json::from_str(last.lines().last().unwrap()).unwrap();
    std::fs::write(&state, serde_json::to_string_pretty(&record).unwrap()).unwrap();
    assert_eq!(exited(&b), ("exited".into(), 3.into()));
    b.output(&["start", "-a", "torn"]);
    assert_eq!(exited(&b), ("exited".into(), 3.into()));
    b.ok(&["rm", "torn"]);
    assert_eq!(b.ok(&["ps", "-aq"]), "");
}

#[test]
fn a_removed_containers_files_go_after_run_returns() {
    let b = setup();
    // What the container wrote goes too, whatever its modes.
    let out = b.output(&[
        "run",
        "--rm",
        "--name",
        "gone",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /a/b && echo x > /a/b/f && chmod 0 /a/b /a && exit 4",
    ]);
    assert_eq!(out.status.code(), Some(4));
    // Out of the store when `run` returns: not listed, its name free at once.
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    // Its folder and cgroup are removed by the container's init once `run` has returned, in
    // the foreground or detached.
    let id = b
        .ok(&["run", "-d", "--rm", "--name", "gone", "busybox", "true"])
        .trim()
        .to_string();
    b.wait_until_gone(&id);
    // Its init made a folder ahead for the next container, which the next one takes; listings
    // never show it, and `system prune` removes one left waiting.
    let containers = b.root().join("containers");
    let names = || -> Vec<_> {
        std::fs::read_dir(&containers)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| n.to_string_lossy().starts_with(".spare-"))
            .collect()
    };
    let spares = || names().len();
    eventually(|| spares() > 0);
    // (Two inits ending at once may each make one.)
    let made = spares();
    assert!((1..=2).contains(&made), "a folder made ahead: {made}");
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    // An init that ends late may still add one after this: only a name that was here and is
    // gone shows the taking.
    let waiting = names();
    let next = b
        .ok(&[
            "create",
            "--name",
            "next",
            "busybox",
            "sh",
            "-c",
            "ls -a /; touch /mine",
        ])
        .trim()
        .to_string();
    let left = names();
    assert!(
        waiting.iter().any(|n| !left.contains(n)),
        "taken by the next container: {waiting:?} then {left:?}"
    );
    assert!(
        b.root()
            .join("containers")
            .join(&next)
            .join("upper")
            .is_dir()
    );
    let out = b.ok(&["start", "-a", "next"]);
    assert!(out.contains("bin") && !out.contains("mine"), "{out}");
    b.ok(&["rm", "next"]);
    b.ok(&["run", "--rm", "busybox", "true"]);
    eventually(|| spares() > 0);
    let before = names();
    b.ok(&["system", "prune", "-f"]);
    let after = names();
    assert!(before.iter().all(|n| !after.contains(n)), "pruned");
    // The same for a container given up before its workload ran.
    let (code, _) = b.fail(&["run", "--rm", "busybox", "nosuchcommand"]);
    assert_eq!(code, 127);
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    let tmp = || std::fs::read_dir(b.root().join("tmp")).unwrap().count();
    eventually(|| tmp() == 0);
    assert_eq!(tmp(), 0);
}

#[test]
fn network_namespaces_made_ahead_are_fresh_and_never_shared() {
    let b = setup();
    let info: serde_json::Value =
        serde_json::from_str(&b.ok(&["info", "--format", "json"])).unwrap();
    let spares = std::path::PathBuf::from(info["RunRoot"].as_str().unwrap()).join("netns");
    let waiting = || {
        std::fs::read_dir(&spares)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".ticket"))
                    .count()
            })
            .unwrap_or(0)
    };
    let wait_for_spare = || {
        if eventually(|| waiting() > 0) {
            return;
        }
        panic!(
            "no network namespace was made ahead in {}",
            spares.display()
        );
    };
    let host = std::fs::read_link("/proc/self/ns/net").unwrap();
    // A container that changes its namespace leaves nothing for the next one: the --rm
    // container's end makes a new namespace for it.
    let first = b.ok(&[
        "run",
        "--rm",
        "--cap-add",
        "NET_ADMIN",
        "busybox",
        "sh",
        "-c",
        "ip addr add 10.9.9.9/32 dev lo && readlink /proc/self/ns/net",
    ]);
    wait_for_spare();
    let waiting_ns = || -> Vec<String> {
        std::fs::read_dir(&spares)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".ticket"))
            .map(|n| std::fs::read_to_string(spares.join(n)).unwrap_or_default())
            .map(|ino| format!("net:[{}]", ino.trim()))
            .collect()
    };
    let made_ahead = waiting_ns();
    let second = b.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "ip addr show lo && readlink /proc/self/ns/net && ping -c 1 -W 2 127.0.0.1",
    ]);
    assert!(!second.contains("10.9.9.9"), "{second}");
    assert!(second.contains("LOOPBACK,UP"), "lo is up: {second}");
    assert!(second.contains("1 packets received"), "{second}");
    let ns_of = |out: &str| {
        out.lines()
            .find(|l| l.starts_with("net:["))
            .unwrap()
            .to_string()
    };
    assert_ne!(ns_of(&first), ns_of(&second));
    assert_eq!(
        made_ahead,
        vec![ns_of(&second)],
        "the second took the one made ahead"
    );
    for out in [&first, &second] {
        assert_ne!(ns_of(out), host.to_string_lossy(), "not the host's");
    }
    // Containers running at once never share one, whichever got the spare.
    wait_for_spare();
    let ids: Vec<String> = (0..2)
        .map(|_| {
            b.ok(&["run", "-d", "--rm", "busybox", "sleep", "1000"])
                .trim()
                .to_string()
        })
        .collect();
    let namespaces: Vec<String> = ids
        .iter()
        .map(|id| b.ok(&["exec", id, "readlink", "/proc/1/ns/net"]))
        .collect();
    assert_ne!(namespaces[0], namespaces[1]);
    for id in &ids {
        b.ok(&["rm", "-f", id]);
    }
    // `system prune` lets the waiting ones go (an init still at work may make another later).
    wait_for_spare();
    let before = waiting_ns();
    b.ok(&["system", "prune", "-f"]);
    let after = waiting_ns();
    assert!(
        before.iter().all(|ns| !after.contains(ns)),
        "{before:?} {after:?}"
    );
    // With --network host there is no namespace to take or make.
    let out = b.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "busybox",
        "readlink",
        "/proc/self/ns/net",
    ]);
    assert_eq!(out.trim(), host.to_string_lossy());
}

#[test]
fn mount_points_are_made_once_per_image_in_its_init_layer() {
    let b = Berth::new();
    // An image whose /etc has a mode and times of its own, and no /etc/hosts, hostname or
    // resolv.conf (busybox has passwd and group).
    let rootfs = busybox_rootfs(&b.path("busybox-rootfs"));
    let mtime = sh(&format!(
        "chmod 0750 {0}/etc && touch -d @981173106 {0}/etc && stat -c %Y {0}/etc",
        rootfs.display()
    ));
    assert_eq!(mtime, "981173106\n");
    b.import_busybox("busybox");
    let init_layers = b.root().join("init-layers");
    let entries = || -> Vec<PathBuf> {
        std::fs::read_dir(&init_layers)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    let probe = "stat -c '%a %Y' /etc; cat /etc/hostname; grep -c ip6-allnodes /etc/hosts; ls /etc";
    let run = |name: &str| {
        b.ok(&[
            "run",
            "--name",
            name,
            "--hostname",
            name,
            "busybox",
            "sh",
            "-c",
            probe,
        ])
    };
    let out = run("first");
    // The image's /etc as it is, with the container's own files bound in it.
    assert_eq!(
        out, "750 981173106\nfirst\n1\ngroup\nhostname\nhosts\npasswd\nresolv.conf\n",
        "{out}"
    );
    let made = entries();
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(
        tree(&made[0]),
        [
            "dev",
            "etc",
            "etc/hostname",
            "etc/hosts",
            "etc/resolv.conf",
            "proc",
            "sys"
        ]
    );
    // Not in the container's writable layer: nothing of its own there.
    let id = inspect(&b, "first")["Id"].as_str().unwrap().to_string();
    let upper = b.root().join("containers").join(id).join("upper");
    assert_eq!(tree(&upper), Vec::<String>::new());
    // The next container of the image shares it.
    assert!(run("second").starts_with("750 981173106\nsecond\n"));
    assert_eq!(entries(), made);

    // An image with an /etc/hosts of its own: the layer makes only the other two.
    let ctx = b.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("hosts"), "10.1.2.3 mine\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nCOPY hosts /etc/hosts\n",
    )
    .unwrap();
    b.ok(&["build", "-q", "-t", "withhosts", ctx.to_str().unwrap()]);
    let out = b.ok(&[
        "run",
        "--rm",
        "withhosts",
        "sh",
        "-c",
        "grep -c mine /etc/hosts; true",
    ]);
    assert_eq!(
        out, "0\n",
        "the container's hosts file is bound over the image's"
    );
    let other: Vec<_> = entries()
        .into_iter()
        .filter(|p| !made.contains(p))
        .collect();
    assert_eq!(other.len(), 1, "{other:?}");
    assert_eq!(
        tree(&other[0]),
        [
            "dev",
            "etc",
            "etc/hostname",
            "etc/resolv.conf",
            "proc",
            "sys"
        ]
    );

    // Removing an image removes its init layer; the other image keeps its own.
    b.ok(&["rmi", "withhosts"]);
    assert_eq!(entries(), made);
    b.ok(&["rm", "first", "second"]);
    b.ok(&["rmi", "busybox"]);
    assert_eq!(entries(), Vec::<PathBuf>::new());
}
