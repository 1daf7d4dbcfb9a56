//! End-to-end: `containerd-shim-berth-v1` under Debian's containerd (1.6), driven by `ctr`.
//! Each test starts its own containerd (temporary config, root, state and socket; no CRI; the
//! shim's folder on its PATH), imports images that berth built and saved, and runs them with
//! `--runtime io.containerd.berth.v1`. Everything it started is stopped by pid, and nothing
//! (shim, mount, cgroup) may be left.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::*;

const RUNTIME: &str = "io.containerd.berth.v1";

/// The shim, built beside berth.
fn shim_binary() -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_berth")).with_file_name("containerd-shim-berth-v1");
    assert!(
        p.exists(),
        "{} is missing: build the workspace (cargo build --workspace), as tests/run.sh does",
        p.display()
    );
    p
}

/// A containerd of the test's own.
struct Containerd {
    dir: tempfile::TempDir,
    child: Child,
    namespace: String,
}

impl Containerd {
    fn start() -> Containerd {
        require("containerd");
        require("ctr");
        let dir = tempfile::Builder::new()
            .prefix("berth-containerd-")
            .tempdir()
            .unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::os::unix::fs::symlink(shim_binary(), bin.join("containerd-shim-berth-v1")).unwrap();
        let d = dir.path().display();
        std::fs::write(
            dir.path().join("config.toml"),
            format!(
                "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"{d}/c.sock\"\n[ttrpc]\n  address = \"{d}/c.sock.ttrpc\"\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("containerd.log")).unwrap();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .env("PATH", path)
            .env("BERTH_ROOT", dir.path().join("berth"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let namespace = format!(
            "berth-test-{}",
            dir.path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .replace('.', "")
        )
        .to_lowercase();
        let c = Containerd {
            dir,
            child,
            namespace,
        };
        assert!(
            eventually(|| c.ctr(&["version"]).status.success()),
            "containerd did not start:\n{}",
            c.log()
        );
        c
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ctr");
        c.arg("-a")
            .arg(self.dir.path().join("c.sock"))
            .args(["-n", &self.namespace])
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn ctr(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run ctr")
    }

    /// `ctr ARGS`, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        assert!(
            out.status.success(),
            "ctr {args:?} failed: {}{}\ncontainerd's log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ctr ARGS` (a shell-quoted string) under a pseudo-terminal made by `script`, in a
    /// window of 30 rows and 100 columns, as a person at a terminal would run it.
    fn in_terminal(&self, args: &str) -> Output {
        let ctr = format!(
            "stty rows 30 cols 100; ctr -a {} -n {} {args}",
            self.dir.path().join("c.sock").display(),
            self.namespace
        );
        Command::new("script")
            .args(["-qec", &ctr, "/dev/null"])
            .env("TERM", "xterm")
            .stdin(Stdio::null())
            .output()
            .expect("run script")
    }

    /// Saves berth's image `name` and imports it; gives containerd's name for it.
    fn import(&self, b: &Berth, name: &str) -> String {
        let tar = b.path(&format!("{name}.tar"));
        b.ok(&["save", "-o", tar.to_str().unwrap(), name]);
        let out = self.ok(&["image", "import", "--all-platforms", tar.to_str().unwrap()]);
        assert!(out.contains("unpacking"), "{out}");
        format!("docker.io/library/{name}:latest")
    }

    /// `ctr run --rm --runtime berth IMAGE ID ARGS`.
    fn run(&self, image: &str, id: &str, args: &[&str]) -> Output {
        let mut all = vec!["run", "--rm", "--runtime", RUNTIME, image, id];
        all.extend_from_slice(args);
        self.ctr(&all)
    }

    /// The pids of this containerd's shims.
    fn shims(&self) -> Vec<i32> {
        let sock = self.dir.path().join("c.sock").display().to_string();
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                    let c = String::from_utf8_lossy(&c);
                    c.contains("containerd-shim-berth-v1") && c.contains(&sock)
                })
            })
            .collect()
    }

    /// What the tests' namespace left in the cgroup hierarchies.
    fn cgroups_left(&self) -> Vec<PathBuf> {
        let mut left = Vec::new();
        for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            let ns = h.path().join(&self.namespace);
            if let Ok(entries) = std::fs::read_dir(&ns) {
                left.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
            }
        }
        left
    }

    /// Mounts under this containerd's folder.
    fn mounts_left(&self) -> Vec<String> {
        let d = self.dir.path().display().to_string();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(&d))
            .map(str::to_string)
            .collect()
    }

    /// Nothing of a task is left: no shim, mount or cgroup.
    fn assert_clean(&self) {
        assert!(
            eventually(|| self.shims().is_empty()),
            "shims left: {:?}",
            self.shims()
        );
        assert!(
            eventually(|| self.mounts_left().is_empty()),
            "mounts left: {:?}",
            self.mounts_left()
        );
        assert!(
            eventually(|| self.cgroups_left().is_empty()),
            "cgroups left: {:?}",
            self.cgroups_left()
        );
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        for pid in self.shims() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        for line in self.mounts_left().iter().rev() {
            if let Some(target) = line.split(' ').nth(4) {
                let _ = nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH);
            }
        }
        for h in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let ns = h.path().join(&self.namespace);
            for e in std::fs::read_dir(&ns).into_iter().flatten().flatten() {
                let _ = std::fs::remove_dir(e.path());
            }
            let _ = std::fs::remove_dir(ns);
        }
    }
}

/// The pid `ctr task ls` (its output `ls`) gives task `id`.
fn task_pid(ls: &str, id: &str) -> i32 {
    ls.lines()
        .find(|l| l.split_whitespace().next() == Some(id))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("task {id} is not in {ls}"))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// berth's WASI probe as image `name`.
fn wasi_image(b: &Berth, name: &str) {
    let ctx = b.path(&format!("{name}-ctx"));
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy(probe("wasm32-wasip1"), ctx.join("probe.wasm")).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY probe.wasm /probe.wasm\nENTRYPOINT [\"/probe.wasm\"]\n",
    )
    .unwrap();
    b.ok(&["build", "-q", "-t", name, ctx.to_str().unwrap()]);
}

#[test]
fn native_and_wasi_images_run_under_ctr_with_their_output_and_exit_codes() {
    let b = Berth::new();
    let c = Containerd::start();
    b.import_busybox("bb");
    wasi_image(&b, "wprobe");
    let bb = c.import(&b, "bb");
    let wasi = c.import(&b, "wprobe");
    assert!(c.ok(&["image", "ls"]).contains("wasip1/wasm"));

    let out = c.run(&bb, "n1", &["echo", "hello from berth"]);
    assert!(out.status.success(), "{}{}", stderr(&out), c.log());
    assert_eq!(stdout(&out), "hello from berth\n");
    let out = c.run(&bb, "n2", &["sh", "-c", "echo to stderr >&2; exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(stderr(&out).contains("to stderr"));
    // The process has the bundle's environment and its own PID namespace.
    let out = c.run(&bb, "n3", &["sh", "-c", "echo $$ $PATH"]);
    assert!(stdout(&out).starts_with("1 /"), "{}", stdout(&out));

    let out = c.run(&wasi, "w1", &["/probe.wasm", "args", "a b"]);
    assert!(out.status.success(), "{}{}", stderr(&out), c.log());
    assert_eq!(stdout(&out), "/probe.wasm\nargs\na b\n");
    let out = c.run(&wasi, "w2", &["/probe.wasm", "exit", "3"]);
    assert_eq!(out.status.code(), Some(3));
    // stdin reaches the guest through containerd's fifo, and its stdout comes back.
    let mut child = c
        .cmd(&[
            "run",
            "--rm",
            "--runtime",
            RUNTIME,
            &wasi,
            "w3",
            "/probe.wasm",
            "stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"through the fifo\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(stdout(&out), "through the fifo\n");
    // A program that is not there: containerd's error names it, and the task is gone.
    let out = c.run(&bb, "n4", &["/nonexistent"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("/nonexistent"), "{}", stderr(&out));
    c.assert_clean();
}

#[test]
fn a_detached_task_lists_its_pids_metrics_and_execs_and_is_killed_and_deleted() {
    let b = Berth::new();
    let c = Containerd::start();
    b.import_busybox("bb");
    wasi_image(&b, "wprobe");
    let bb = c.import(&b, "bb");
    let wasi = c.import(&b, "wprobe");
    c.ok(&["run", "-d", "--runtime", RUNTIME, &bb, "d1", "sleep", "300"]);
    let ls = c.ok(&["task", "ls"]);
    assert!(ls.contains("d1") && ls.contains("RUNNING"), "{ls}");
    let pid = task_pid(&ls, "d1");
    assert!(c.ok(&["task", "ps", "d1"]).contains(&pid.to_string()));
    let metrics = c.ok(&["task", "metrics", "d1"]);
    assert!(metrics.contains("pids.current"), "{metrics}");
    assert!(metrics.contains("memory.usage_in_bytes"), "{metrics}");
    // exec: a second process in the task's namespaces, with its own exit code.
    let out = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "d1",
        "sh",
        "-c",
        "echo in $(cat /proc/1/comm); exit 4",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(stdout(&out), "in sleep\n");
    c.ok(&["task", "kill", "-s", "KILL", "d1"]);
    assert!(eventually(|| c.ok(&["task", "ls"]).contains("STOPPED")));
    let out = c.ctr(&["task", "delete", "d1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("137"), "{}", stderr(&out));
    c.ok(&["container", "rm", "d1"]);

    // A WASI task has no namespaces to exec into: containerd says why.
    c.ok(&[
        "run",
        "-d",
        "--runtime",
        RUNTIME,
        &wasi,
        "w1",
        "/probe.wasm",
        "sleep",
        "300000",
    ]);
    let out = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "w1",
        "/probe.wasm",
        "args",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("WebAssembly"), "{}", stderr(&out));
    c.ok(&["task", "kill", "-s", "KILL", "w1"]);
    assert!(eventually(|| c.ok(&["task", "ls"]).contains("STOPPED")));
    c.ctr(&["task", "delete", "w1"]);
    c.ok(&["container", "rm", "w1"]);
    c.assert_clean();
}

#[test]
fn a_memory_limit_is_kept_and_its_oom_kill_is_a_task_oom_event() {
    let b = Berth::new();
    let c = Containerd::start();
    b.import_busybox("bb");
    let bb = c.import(&b, "bb");
    let mut events = c.cmd(&["events"]).stdout(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let out = c.ctr(&[
        "run",
        "--rm",
        "--memory-limit",
        "16000000",
        "--runtime",
        RUNTIME,
        &bb,
        "o1",
        "sh",
        "-c",
        "a=$(head -c 64000000 /dev/zero | tr '\\0' a); echo survived",
    ]);
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
    assert!(!stdout(&out).contains("survived"));
    std::thread::sleep(Duration::from_millis(300));
    let _ = events.kill();
    let seen = stdout(&events.wait_with_output().unwrap());
    let topics: Vec<&str> = seen
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|t| t.starts_with("/tasks/"))
        .collect();
    assert_eq!(
        topics,
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/oom",
            "/tasks/exit",
            "/tasks/delete"
        ],
        "{seen}"
    );
    c.assert_clean();
}

#[test]
fn a_killed_shim_is_cleaned_up_after_and_its_task_dies_with_it() {
    let b = Berth::new();
    let c = Containerd::start();
    b.import_busybox("bb");
    let bb = c.import(&b, "bb");
    c.ok(&["run", "-d", "--runtime", RUNTIME, &bb, "k1", "sleep", "300"]);
    let ls = c.ok(&["task", "ls"]);
    let pid = task_pid(&ls, "k1");
    let shims = c.shims();
    assert_eq!(shims.len(), 1, "{shims:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(shims[0]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // containerd runs the shim's `delete` action, which takes the task down with its cgroup and
    // rootfs mount.
    assert!(eventually(|| !c.ok(&["task", "ls"]).contains("RUNNING")));
    assert!(eventually(|| !Path::new(&format!("/proc/{pid}")).exists()));
    let _ = c.ctr(&["task", "delete", "k1"]);
    c.ok(&["container", "rm", "k1"]);
    c.assert_clean();
}

#[test]
fn a_task_joins_the_network_namespace_it_is_given_and_hostile_specs_are_refused() {
    let b = Berth::new();
    let c = Containerd::start();
    b.import_busybox("bb");
    let bb = c.import(&b, "bb");
    // A pod's network namespace, made by the test: the task is in it.
    let name = format!("berth-shim-{}", std::process::id());
    sh(&format!("ip netns add {name}"));
    let path = format!("/var/run/netns/{name}");
    let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());
    let with_ns = format!("network:{path}");
    let out = c.ctr(&[
        "run",
        "--rm",
        "--with-ns",
        &with_ns,
        "--runtime",
        RUNTIME,
        &bb,
        "j1",
        "readlink",
        "/proc/self/ns/net",
    ]);
    let _ = Command::new("ip").args(["netns", "del", &name]).status();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("net:[{inode}]\n"));

    // A cgroup path out of the hierarchy, a mount namespace to join: each refused
    // with its reason, leaving nothing.
    let out = c.ctr(&[
        "run",
        "--rm",
        "--cgroup",
        "/../../escape",
        "--runtime",
        RUNTIME,
        &bb,
        "h1",
        "true",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("invalid cgroupsPath"),
        "{}",
        stderr(&out)
    );
    assert!(!Path::new("/sys/fs/cgroup/memory/escape").exists());
    let out = c.ctr(&[
        "run",
        "--rm",
        "--with-ns",
        "mount:/proc/1/ns/mnt",
        "--runtime",
        RUNTIME,
        &bb,
        "h2",
        "true",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("only network, ipc, uts and pid"),
        "{}",
        stderr(&out)
    );
    for id in ["h1", "h2"] {
        let _ = c.ctr(&["container", "rm", id]);
    }
    c.assert_clean();
}

#[test]
fn an_image_berth_pushed_is_pulled_and_run_by_containerd() {
    require("docker-registry");
    let b = Berth::new();
    let c = Containerd::start();
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    std::fs::write(
        dir.path().join("config.yml"),
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut registry = Command::new("docker-registry")
        .arg("serve")
        .arg(dir.path().join("config.yml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(eventually(|| std::net::TcpStream::connect((
        "127.0.0.1",
        port
    ))
    .is_ok()));
    b.import_busybox("bb");
    let reference = format!("127.0.0.1:{port}/berth/bb:1");
    b.ok(&["tag", "bb", &reference]);
    b.ok(&["push", &reference]);
    c.ok(&["image", "pull", "--plain-http", &reference]);
    let out = c.run(&reference, "p1", &["echo", "pulled"]);
    let _ = registry.kill();
    let _ = registry.wait();
    assert_eq!(stdout(&out), "pulled\n", "{}", stderr(&out));
    c.assert_clean();
}

/// `cmd` run inside the network namespace `netns` (by `ip netns exec`); its stdout.
fn in_netns(netns: &str, cmd: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", netns, "bash", "-c", cmd])
        .output()
        .expect("run ip netns exec");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_wasi_http_component_is_served_in_the_network_namespace_it_is_given() {
    example("hello-http", "wasm32-wasip2");
    let b = Berth::new();
    let c = Containerd::start();
    let ctx = repo().join("examples/hello-http");
    b.ok(&["build", "-q", "-t", "hello-http", ctx.to_str().unwrap()]);
    let image = c.import(&b, "hello-http");
    // A pod's network namespace, made by the test, with its loopback up.
    let netns = format!("berth-shim-http-{}", std::process::id());
    sh(&format!(
        "ip netns add {netns} && ip netns exec {netns} ip link set lo up"
    ));
    let with_ns = format!("network:/var/run/netns/{netns}");
    let get = |port: u16, path: &str| {
        in_netns(
            &netns,
            &format!("curl -s -m 5 -i http://127.0.0.1:{port}{path}"),
        )
    };
    let run = |id: &str, env: &[&str]| {
        let mut args = vec!["run", "-d", "--with-ns", &with_ns, "--runtime", RUNTIME];
        for e in env {
            args.extend(["--env", e]);
        }
        args.extend([image.as_str(), id]);
        c.ok(&args);
    };
    // The default address, 0.0.0.0:8080 of the task's namespace. ctr's stdio fifos lose their
    // reader when `ctr run -d` returns: the server's output must not end it.
    run("h1", &[]);
    assert!(
        eventually(|| get(8080, "/from-ctr").contains("200 OK")),
        "no answer on 8080 in the task's namespace: {}",
        c.ok(&["task", "ls"])
    );
    let answer = get(8080, "/from-ctr?x=1");
    assert!(answer.contains("Hello from a berth function!"), "{answer}");
    assert!(answer.contains("path: /from-ctr?x=1"), "{answer}");
    // A client speaking no HTTP gets 400 and the server goes on.
    let garbage = in_netns(
        &netns,
        "exec 3<>/dev/tcp/127.0.0.1/8080; printf 'NOT HTTP \\001\\r\\n\\r\\n' >&3; head -c 12 <&3",
    );
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage}");
    assert!(get(8080, "/again").contains("200 OK"));
    // BERTH_HTTP_LISTEN moves it: a second task in the same namespace, on 9090.
    run("h2", &["BERTH_HTTP_LISTEN=127.0.0.1:9090"]);
    assert!(eventually(|| get(9090, "/second").contains("path: /second")));
    // An address that is none: the task ends saying which variable to fix.
    let out = c.ctr(&[
        "run",
        "--rm",
        "--env",
        "BERTH_HTTP_LISTEN=nonsense",
        "--runtime",
        RUNTIME,
        &image,
        "h3",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("BERTH_HTTP_LISTEN=\"nonsense\""),
        "{}",
        stderr(&out)
    );
    for id in ["h1", "h2"] {
        c.ok(&["task", "kill", id]);
    }
    assert!(eventually(|| {
        let ls = c.ok(&["task", "ls"]);
        ls.matches("STOPPED").count() == 2
    }));
    for id in ["h1", "h2"] {
        c.ctr(&["task", "delete", id]);
        c.ok(&["container", "rm", id]);
    }
    let _ = c.ctr(&["container", "rm", "h3"]);
    let _ = Command::new("ip").args(["netns", "del", &netns]).status();
    c.assert_clean();
}

/// A shell loop that waits until its terminal has the size containerd resizes it to, then
/// prints it: `ctr` sends the size once the process runs.
const SIZE_WHEN_SET: &str = "for i in $(seq 100); do s=$(stty size 2>/dev/null); [ -n \"$s\" ] && [ \"$s\" != \"0 0\" ] && break; sleep 0.05; done; echo size=$s";

#[test]
fn a_task_and_an_exec_with_a_terminal_get_one_that_follows_the_window() {
    let b = Berth::new();
    let c = Containerd::start();
    b.import_busybox("bb");
    let bb = c.import(&b, "bb");
    let out = c.in_terminal(&format!(
        "run -t --rm --runtime {RUNTIME} {bb} t1 sh -c '{SIZE_WHEN_SET}; [ -t 0 ] && [ -t 1 ] && echo on-a-terminal; echo TERM=$TERM; exit 3'"
    ));
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(3), "{text}{}", stderr(&out));
    assert!(text.contains("size=30 100"), "{text}");
    assert!(text.contains("on-a-terminal"), "{text}");
    assert!(text.contains("TERM=xterm"), "{text}");
    // An exec with a terminal into a task without one.
    c.ok(&["run", "-d", "--runtime", RUNTIME, &bb, "t2", "sleep", "300"]);
    let out = c.in_terminal(&format!(
        "task exec -t --exec-id e1 t2 sh -c '{SIZE_WHEN_SET}; [ -t 0 ] && echo on-a-terminal; exit 5'"
    ));
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(5), "{text}{}", stderr(&out));
    assert!(
        text.contains("size=30 100") && text.contains("on-a-terminal"),
        "{text}"
    );
    c.ok(&["task", "kill", "-s", "KILL", "t2"]);
    assert!(eventually(|| c.ok(&["task", "ls"]).contains("STOPPED")));
    c.ctr(&["task", "delete", "t2"]);
    c.ok(&["container", "rm", "t2"]);
    c.assert_clean();
}

#[test]
fn the_spec_seccomp_profile_is_the_filter_and_one_berth_cannot_keep_is_refused() {
    let b = Berth::new();
    let c = Containerd::start();
    b.import_busybox("bb");
    let bb = c.import(&b, "bb");
    let run = |id: &str, seccomp: &[&str], script: &str| {
        let mut args = vec!["run", "--rm", "--runtime", RUNTIME];
        args.extend_from_slice(seccomp);
        args.extend([bb.as_str(), id, "sh", "-c", script]);
        c.ctr(&args)
    };
    // containerd's default profile: ordinary work goes on, a new user namespace is refused.
    let out = run(
        "s1",
        &["--seccomp"],
        "echo ok; ls / >/dev/null && echo listed; unshare -U true 2>&1; echo unshare=$?",
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.contains("ok\nlisted\n"), "{text}");
    assert!(
        text.contains("Operation not permitted") && text.contains("unshare=1"),
        "{text}"
    );
    // A WASI guest (wasmtime in the task's process) runs under it too.
    wasi_image(&b, "wprobe");
    let wasi = c.import(&b, "wprobe");
    let out = c.ctr(&[
        "run",
        "--rm",
        "--seccomp",
        "--runtime",
        RUNTIME,
        &wasi,
        "s0",
        "/probe.wasm",
        "args",
        "x",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "/probe.wasm\nargs\nx\n");
    // A profile of the user's: mkdir answers EACCES, everything else is allowed.
    let file = b.path("profile.json");
    std::fs::write(
        &file,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#,
    )
    .unwrap();
    let profile = file.to_str().unwrap();
    let out = run(
        "s2",
        &["--seccomp", "--seccomp-profile", profile],
        "mkdir /tmp/d 2>&1; touch /tmp/f && echo touched",
    );
    let text = stdout(&out);
    assert!(text.contains("Permission denied"), "{text}{}", stderr(&out));
    assert!(text.contains("touched"), "{text}");
    // A profile that needs a seccomp agent: refused at create, saying why.
    std::fs::write(
        &file,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
    )
    .unwrap();
    let out = run("s3", &["--seccomp", "--seccomp-profile", profile], "true");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("seccomp agent"), "{}", stderr(&out));
    let _ = c.ctr(&["container", "rm", "s3"]);
    c.assert_clean();
}
