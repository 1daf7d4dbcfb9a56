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

/// Compiles the attack program `tests/attacks/NAME.c` statically (it runs in a busybox
/// container) into the test's scratch folder `attack/`, which the test mounts at /attack.
fn compile_attack(b: &Berth, name: &str) -> std::path::PathBuf {
    common::require("gcc");
    let dir = b.path("attack");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(name);
    let src = format!("{}/../tests/attacks/{name}.c", env!("CARGO_MANIFEST_DIR"));
    common::succeed(Command::new("gcc").args([
        "-static",
        "-O2",
        "-o",
        out.to_str().unwrap(),
        &src,
    ]));
    out
}

/// The host's glibc, mounted into a busybox container: berth's binary is dynamically linked,
/// and an image with a C library (as most have) is what lets it run in there.
const GLIBC: [&str; 2] = ["/usr/lib:/lib:ro", "/usr/lib64:/lib64:ro"];

/// A file's identity and what an append would change: the attack must leave all of it be.
fn fingerprint(path: &std::path::Path) -> (u64, u64, u64, std::time::SystemTime) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).unwrap();
    (m.dev(), m.ino(), m.len(), m.modified().unwrap())
}

/// CVE-2019-5736 as the probe ran it: a program in the container watches /proc for berth
/// processes, keeps an O_PATH handle on their executable and reopens it for writing once
/// they are gone, while `berth exec` runs a `#!/proc/self/exe` script. `exec` runs from a
/// copy of berth and the monitor from the original, so without the seal nothing would keep
/// the copy busy and the write would land.
#[test]
fn a_container_cannot_take_or_overwrite_the_host_berth_binary() {
    let b = setup();
    compile_attack(&b, "proc_exe");
    let copy = b.path("berth-copy");
    std::fs::copy(env!("CARGO_BIN_EXE_berth"), &copy).unwrap();
    let host_files = [
        fingerprint(std::path::Path::new(env!("CARGO_BIN_EXE_berth"))),
        fingerprint(&copy),
    ];
    let attack = format!("{}:/attack", b.path("attack").display());
    b.ok(&[
        "run",
        "-d",
        "--name",
        "victim",
        "-v",
        &attack,
        "-v",
        GLIBC[0],
        "-v",
        GLIBC[1],
        "busybox",
        "sh",
        "-c",
        "mkdir -p /usr/local/bin && printf '#!/proc/self/exe\\n' > /usr/local/bin/evilsh && \
         chmod +x /usr/local/bin/evilsh && exec /attack/proc_exe /attack/report 8",
    ]);
    let report = b.path("attack/report");
    let read = || std::fs::read_to_string(&report).unwrap_or_default();
    assert!(
        common::eventually(|| read().starts_with("ready")),
        "{}",
        read()
    );
    let from_copy = |args: &[&str]| {
        Command::new(&copy)
            .args(args)
            .env("BERTH_ROOT", b.root())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    for _ in 0..4 {
        // The script's interpreter is the exec'ing process' own binary: berth's, sealed, which
        // then runs in the container (and fails on its arguments) for the attack to grab.
        let out = from_copy(&["exec", "victim", "/usr/local/bin/evilsh"]);
        assert_ne!(out.status.code(), Some(0));
        // A plain exec: its process is berth in the container until the command runs.
        let out = from_copy(&["exec", "victim", "true"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for _ in 0..300 {
        if read().contains("done") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let report = read();
    eprintln!("the attack's report:\n{report}");
    assert!(
        report.contains("done"),
        "the attack did not finish:\n{report}"
    );
    assert!(
        !report.contains("wrote"),
        "a berth binary was written:\n{report}"
    );
    for line in report.lines().filter(|l| l.starts_with("handle ")) {
        let f: Vec<u64> = line
            .split(' ')
            .skip(1)
            .map(|x| x.parse().unwrap())
            .collect();
        assert!(
            !host_files.iter().any(|h| (h.0, h.1) == (f[0], f[1])),
            "the container held the host's berth binary: {line}\n{report}"
        );
    }
    assert_eq!(
        fingerprint(&copy),
        host_files[1],
        "the copy of berth changed"
    );
    b.ok(&["rm", "-f", "victim"]);
}

/// A `#!/proc/self/exe` workload: PID 1 is a fork of berth until it execs the workload, so
/// the script's interpreter would be the host's berth binary, running in the container.
/// Landlock keeps every exec in the container to files under its root.
#[test]
fn a_workload_cannot_run_the_host_binary_as_its_interpreter() {
    let b = setup();
    let dir = b.path("attack");
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("evil");
    std::fs::write(&script, "#!/proc/self/exe version\n").unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let attack = format!("{}:/attack", dir.display());
    let glibc = ["-v", GLIBC[0], "-v", GLIBC[1]];
    let out = b.output(
        &[
            &["run", "--rm", "-v", &attack][..],
            &glibc,
            &["busybox", "/attack/evil"],
        ]
        .concat(),
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(126), "{stdout}{stderr}");
    assert!(stderr.contains("permission denied"), "{stderr}");
    assert!(!stdout.to_lowercase().contains("berth"), "{stdout}");
    // The same from a build's RUN step.
    let ctx = b.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy(&script, ctx.join("evil")).unwrap();
    // berth's loader and libraries, as an image with glibc has them.
    let libs = ctx.join("lib/x86_64-linux-gnu");
    std::fs::create_dir_all(&libs).unwrap();
    std::fs::create_dir_all(ctx.join("lib64")).unwrap();
    for lib in [
        "ld-linux-x86-64.so.2",
        "libc.so.6",
        "libm.so.6",
        "libgcc_s.so.1",
    ] {
        std::fs::copy(format!("/lib/x86_64-linux-gnu/{lib}"), libs.join(lib)).unwrap();
    }
    std::fs::copy(
        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        ctx.join("lib64/ld-linux-x86-64.so.2"),
    )
    .unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nCOPY lib /lib\nCOPY lib64 /lib64\nCOPY evil /evil\nRUN [\"/evil\"]\n",
    )
    .unwrap();
    let out = b.output(&[
        "build",
        "--progress",
        "plain",
        "-t",
        "evil",
        ctx.to_str().unwrap(),
    ]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("permission denied"), "{all}");
}

/// The landlock domain that keeps execs in the container leaves renames and links across
/// folders alone (a ruleset without the Refer right answers them EXDEV, which apt's
/// `rename` of its lists does not survive; busybox `ln` has no copy to fall back on).
#[test]
fn the_exec_confinement_allows_links_and_renames_across_folders() {
    let b = setup();
    let out = b.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /var/a /var/b && echo x > /var/a/f && ln /var/a/f /var/b/f && echo linked",
    ]);
    assert!(out.contains("linked"), "{out}");
}

/// With `--init`, PID 1 is berth for the container's whole life: the container may neither
/// open its executable nor write it.
#[test]
fn an_init_pid_1_cannot_be_opened_from_the_container() {
    let b = setup();
    let out = b.ok(&[
        "run",
        "--rm",
        "--init",
        "busybox",
        "sh",
        "-c",
        "cat /proc/1/exe >/dev/null 2>&1 && echo readable || echo unreadable; \
         (echo x >> /proc/1/exe) 2>/dev/null && echo written || echo unwritten; \
         cat /proc/1/environ >/dev/null 2>&1 && echo environ || echo no-environ",
    ]);
    assert_eq!(out, "unreadable\nunwritten\nno-environ\n");
}

/// The container's monitor: the `__monitor` process that holds container `id`.
fn monitor_of(id: &str) -> i32 {
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.contains(&&b"__monitor"[..]) && args.contains(&id.as_bytes()) {
            return pid;
        }
    }
    panic!("no monitor for {id}");
}

/// A process' threads and open descriptors.
fn threads_and_fds(pid: i32) -> (usize, usize) {
    let count = |what| {
        std::fs::read_dir(format!("/proc/{pid}/{what}"))
            .unwrap()
            .count()
    };
    (count("task"), count("fd"))
}

/// One HTTP request on a fresh connection; its response, or what went wrong.
fn http_get(addr: std::net::SocketAddr) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let timeout = std::time::Duration::from_secs(10);
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// The probe's flood: 9,000 idle connections to a published port, then a normal request,
/// then 2,000 more. The proxy holds them with a bounded number of threads, serves the request,
/// refuses what is past its descriptor budget at once, and returns to its baseline threads
/// and descriptors once the clients close; the container stays up throughout.
#[test]
fn a_connection_flood_on_a_published_port_never_takes_the_container_down() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    use std::io::{ErrorKind, Read, Write};
    let b = setup();
    compile_attack(&b, "hold_server");
    // This test holds both ends' client sockets.
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    let idle_count = 9_000.min((hard as usize).saturating_sub(1_000) * 3 / 4);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let attack = format!("{}:/attack", b.path("attack").display());
    let publish = format!("127.0.0.1:{port}:80");
    let id = b.ok(&[
        "run",
        "-d",
        "-p",
        &publish,
        "-v",
        &attack,
        "busybox",
        "/attack/hold_server",
        "80",
    ]);
    let id = id.trim();
    let hello = |r: std::io::Result<String>| r.is_ok_and(|r| r.ends_with("\r\n\r\nhello\n"));
    assert!(common::eventually(|| hello(http_get(addr))));
    let monitor = monitor_of(id);
    let (threads, fds) = threads_and_fds(monitor);

    let idle: Vec<std::net::TcpStream> = (0..idle_count)
        .map(|i| {
            std::net::TcpStream::connect(addr)
                .unwrap_or_else(|e| panic!("idle connection {i}: {e}"))
        })
        .collect();
    assert!(
        hello(http_get(addr)),
        "a request among {idle_count} idle connections"
    );
    let (mut served, mut refused) = (0, 0);
    let more: Vec<_> = (0..2_000)
        .filter_map(|_| std::net::TcpStream::connect(addr).ok())
        .collect();
    refused += 2_000 - more.len();
    for mut s in more {
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
        let mut out = String::new();
        match s.read_to_string(&mut out) {
            Ok(_) if out.ends_with("hello\n") => served += 1,
            Ok(_) => refused += 1,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => refused += 1,
            Err(e) => panic!("a connection past the flood hung or failed: {e}"),
        }
    }
    assert_eq!(served + refused, 2_000);
    let (flood_threads, _) = threads_and_fds(monitor);
    assert!(
        flood_threads <= threads + 2,
        "the monitor went from {threads} to {flood_threads} threads"
    );
    drop(idle);
    // At most the baseline: the baseline itself may still have counted the first request's
    // two sockets, closing as it was taken.
    assert!(
        common::eventually(|| {
            let (t, f) = threads_and_fds(monitor);
            t <= threads && f <= fds
        }),
        "the monitor kept {:?} threads and fds, from {:?}",
        threads_and_fds(monitor),
        (threads, fds)
    );
    assert!(hello(http_get(addr)));
    let ps = b.ok(&["ps", "--format", "json"]);
    assert!(ps.contains(&id[..12]) && ps.contains("running"), "{ps}");
    eprintln!("{idle_count} idle held; of 2000 more, {served} served and {refused} refused");
    b.ok(&["rm", "-f", id]);
}

#[test]
fn an_image_whose_proc_is_a_link_cannot_unmask_proc() {
    // An image with /proc a link elsewhere: the kernel's /proc would go there, and the masked
    // and read-only paths under /proc (sysrq-trigger, /proc/sys) would find nothing to cover.
    let b = setup();
    let rootfs = common::busybox_rootfs(&b.path("linked-proc"));
    let _ = std::fs::remove_dir(rootfs.join("proc"));
    std::fs::create_dir_all(rootfs.join("xproc")).unwrap();
    std::os::unix::fs::symlink("/xproc", rootfs.join("proc")).unwrap();
    b.ok(&["import", rootfs.to_str().unwrap(), "linked-proc"]);
    let (code, err) = b.fail(&[
        "run",
        "--rm",
        "linked-proc",
        "sh",
        "-c",
        "echo 1 > /proc/sys/kernel/sysrq",
    ]);
    assert_eq!(code, 125, "{err}");
    assert!(
        err.contains("the image's /proc is a symbolic link"),
        "{err}"
    );
    // Ordinary images still get /proc/sys read-only and /proc/keys masked (an empty file).
    let out = b.output(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo x > /proc/sys/kernel/hostname; echo keys=$(wc -c < /proc/keys)",
    ]);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("Read-only file system"), "{text}");
    assert!(text.contains("keys=0"), "{text}");
}
