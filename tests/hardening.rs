//! End-to-end regressions for ways out of a container and store hazards found in review:
//! each test is an attack or a race that once worked, and must not again.

mod common;

use std::process::{Command, Stdio};

use common::{Berth, sh};

fn setup() -> Berth {
    let b = Berth::new();
    b.import_busybox("busybox");
    b
}

#[test]
fn inherited_file_descriptors_never_reach_the_workload() {
    let b = setup();
    // A caller's open fd to the host's / would let the container read host files.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec 7</; {} run --rm busybox sh -c '[ -e /proc/self/fd/7 ] && echo leaked || echo clean'",
            env!("CARGO_BIN_EXE_berth")
        ))
        .env("BERTH_ROOT", b.root())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "clean\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    b.ok(&["run", "-d", "--name", "box", "busybox", "sleep", "1000"]);
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec 7</; {} exec box sh -c '[ -e /proc/self/fd/7 ] && echo leaked || echo clean'",
            env!("CARGO_BIN_EXE_berth")
        ))
        .env("BERTH_ROOT", b.root())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "clean\n");
    b.ok(&["rm", "-f", "box"]);
}

#[test]
fn exec_tty_cannot_be_redirected_to_host_files() {
    let b = setup();
    let victim = b.path("victim");
    std::fs::write(&victim, "untouched\n").unwrap();
    // The container builds a tree whose pts entries point at a host path, then chroots so
    // /proc/PID/root names that tree.
    let script = format!(
        "mkdir -p /evil/dev/pts /evil/bin; cp /bin/busybox /evil/bin/; ln -s busybox /evil/bin/sleep; ln -s busybox /evil/bin/echo; ln -s busybox /evil/bin/sh; \
         ln -s /dev/ptmx /evil/dev/pts/ptmx; for i in $(seq 0 50); do ln -s {} /evil/dev/pts/$i; done; exec chroot /evil /bin/sleep 1000",
        victim.display()
    );
    b.ok(&[
        "run", "-d", "--name", "evil", "busybox", "sh", "-c", &script,
    ]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let state: serde_json::Value = serde_json::from_str(&b.ok(&["inspect", "evil"])).unwrap();
    assert_eq!(state[0]["State"]["Running"], true, "the attack setup ran");
    let _ = b.in_terminal("exec -t evil /bin/echo PWNED");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched\n");
    b.ok(&["rm", "-f", "evil"]);
}

#[test]
fn exec_without_tty_gets_no_controlling_terminal() {
    let b = setup();
    b.ok(&["run", "-d", "--name", "box", "busybox", "sleep", "1000"]);
    // Under a real terminal: the command must not have it as its controlling tty (TIOCSTI).
    let out = b.in_terminal("exec box cut -d' ' -f7 /proc/self/stat");
    let tty_nr = String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_start_matches('\0')
        .to_string();
    assert_eq!(tty_nr, "0", "no controlling terminal: {tty_nr:?}");
    b.ok(&["rm", "-f", "box"]);
}

#[test]
fn host_network_keeps_sys_and_cgroups_read_only() {
    let b = setup();
    let out = b.ok(&["run", "--rm", "--network", "host", "busybox", "sh", "-c", "grep -E ' /sys(/| )' /proc/mounts | grep -c ' rw,' || true; echo $$ > /sys/fs/cgroup/devices/cgroup.procs 2>/dev/null && echo escaped || echo contained"]);
    assert_eq!(out, "0\ncontained\n", "{out}");
}

#[test]
fn the_store_keeps_other_users_out() {
    use std::os::unix::fs::PermissionsExt;
    let b = setup();
    let id = b.ok(&["create", "busybox", "true"]).trim().to_string();
    let mode = |p: std::path::PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(b.root()), 0o711);
    assert_eq!(mode(b.root().join("snapshots")), 0o700);
    assert_eq!(mode(b.root().join("tmp")), 0o700);
    assert_eq!(mode(b.root().join("containers").join(&id)), 0o700);
}

#[test]
fn mount_targets_resolve_inside_the_rootfs() {
    let b = setup();
    let rootfs = b.path("busybox-rootfs");
    std::fs::create_dir_all(rootfs.join("run")).unwrap();
    std::fs::create_dir_all(rootfs.join("var")).unwrap();
    std::os::unix::fs::symlink("/run", rootfs.join("var/run")).unwrap();
    std::os::unix::fs::symlink("/etc", rootfs.join("escape")).unwrap();
    b.ok(&["import", rootfs.to_str().unwrap(), "links"]);
    let host = b.path("hostdir");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("f"), "x\n").unwrap();
    // /var/run -> /run, as in Debian: the mount lands at the container's /run/x.
    let spec = format!("{}:/var/run/x:ro", host.display());
    assert_eq!(
        b.ok(&["run", "--rm", "-v", &spec, "links", "cat", "/run/x/f"]),
        "x\n"
    );
    // An absolute link to /etc is the container's /etc, never the host's.
    let spec = format!("{}:/escape/berth-injected", host.display());
    b.ok(&[
        "run",
        "--rm",
        "-v",
        &spec,
        "links",
        "ls",
        "/etc/berth-injected",
    ]);
    assert!(!std::path::Path::new("/etc/berth-injected").exists());
}

#[test]
fn one_monitor_per_container() {
    let b = setup();
    b.ok(&["create", "--name", "twice", "busybox", "sleep", "1000"]);
    let starts: Vec<_> = (0..2)
        .map(|_| {
            b.cmd(&["start", "twice"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for s in starts {
        let _ = s.wait_with_output().unwrap();
    }
    let inspect: serde_json::Value = serde_json::from_str(&b.ok(&["inspect", "twice"])).unwrap();
    assert_eq!(
        inspect[0]["State"]["Running"], true,
        "one of the starts ran it"
    );
    b.ok(&["exec", "twice", "true"]);
    b.ok(&["rm", "-f", "twice"]);
}

#[test]
fn docker_semantics_found_in_review() {
    let b = setup();
    // Nested mounts: the shallower one first, so it does not hide the deeper.
    let out = b.ok(&[
        "run",
        "--rm",
        "-v",
        "inner:/x/y",
        "-v",
        "outer:/x",
        "busybox",
        "sh",
        "-c",
        "touch /x/y/deep && echo ok",
    ]);
    assert_eq!(out, "ok\n");
    assert_eq!(
        b.ok(&["run", "--rm", "-v", "inner:/data", "busybox", "ls", "/data"]),
        "deep\n"
    );
    // nocopy: a new volume over /etc stays empty.
    let etc = b.ok(&[
        "run",
        "--rm",
        "-v",
        "empty:/etc:nocopy",
        "busybox",
        "ls",
        "/etc",
    ]);
    assert!(!etc.contains("passwd"), "{etc}");
    // A refused create makes no volume.
    let before = b.ok(&["volume", "ls", "-q"]);
    b.fail(&[
        "run", "--rm", "-v", "/anon", "-p", "notaport", "busybox", "true",
    ]);
    assert_eq!(b.ok(&["volume", "ls", "-q"]), before);
    // rmi of one tag of an image a container uses just untags.
    b.ok(&["tag", "busybox", "other:1"]);
    b.ok(&["create", "busybox", "true"]);
    assert_eq!(b.ok(&["rmi", "other:1"]).trim(), "Untagged: other:1");
    // run -d --rm of a command that cannot start leaves no container.
    let (code, _) = b.fail(&["run", "-d", "--rm", "busybox", "nosuchcommand"]);
    assert_eq!(code, 127);
    assert_eq!(b.ok(&["ps", "-aq", "--filter", "status=exited"]), "");
    // load of something that is not an archive says so, without dumping it.
    let (_, err) = b.fail(&["load", "-i", "/etc/passwd"]);
    assert!(
        err.contains("not a tar archive") || err.contains("archive"),
        "{err}"
    );
    assert!(!err.contains("root:x:0:0"), "{err}");
    sh("true");
}

#[test]
fn a_volume_under_proc_or_sys_is_not_filled_from_the_kernel() {
    let b = setup();
    // Filling a new volume copies what the image has at its path; under /proc and /sys that
    // is the kernel's live files (at /proc itself /proc/kcore, which a copy as root would
    // never finish), not the image's.
    let ctx = b.path("ctx-volumes");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nVOLUME /proc/sys /sys/kernel\n",
    )
    .unwrap();
    b.ok(&["build", "-q", "-t", "kernel-volumes", ctx.to_str().unwrap()]);
    // The same places reached through `..` and through a symlink of the image's.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN ln -s proc/sys /data\nVOLUME /data /tmp/../sys/kernel\n",
    )
    .unwrap();
    b.ok(&[
        "build",
        "-q",
        "-t",
        "kernel-volumes-2",
        ctx.to_str().unwrap(),
    ]);
    for image in ["kernel-volumes", "kernel-volumes-2"] {
        let out = b.ok(&[
            "run",
            "--rm",
            image,
            "sh",
            "-c",
            "ls -A /sys/kernel | wc -l; ls -A /proc/sys | wc -l",
        ]);
        assert_eq!(out, "0\n0\n", "{image}: the volumes were filled: {out}");
    }
}
