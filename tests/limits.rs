//! Resource limits end to end: Docker's flags reach the container's cgroup (read back from the
//! host's cgroup directories while it runs) and `inspect`; bad values fail `run` and `create`
//! with 125 before anything is stored. Needs root, as every native container.

mod common;

use std::path::{Path, PathBuf};

use common::Berth;

fn setup() -> Berth {
    let b = Berth::new();
    b.import_busybox("busybox");
    b
}

/// Whether the host runs cgroup v2 alone.
fn v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// A container's file in its cgroup: `controller`'s hierarchy on v1, the only one on v2.
fn cgroup_path(id: &str, controller: &str, file: &str) -> PathBuf {
    if v2() {
        PathBuf::from("/sys/fs/cgroup/berth").join(id).join(file)
    } else {
        Path::new("/sys/fs/cgroup")
            .join(controller)
            .join("berth")
            .join(id)
            .join(file)
    }
}

/// The contents of [`cgroup_path`].
fn cgroup_file(id: &str, controller: &str, file: &str) -> String {
    let path = cgroup_path(id, controller, file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A block device of this host and its `MAJ:MIN`, from /sys/block (disks before loop and RAM
/// devices).
fn block_device() -> (String, String) {
    let mut names: Vec<String> = std::fs::read_dir("/sys/block")
        .expect("/sys/block")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| Path::new("/dev").join(n).exists())
        .collect();
    names.sort_by_key(|n| (n.starts_with("loop") || n.contains("ram"), n.clone()));
    let name = names
        .first()
        .expect("a block device in /sys/block and /dev");
    let dev = std::fs::read_to_string(Path::new("/sys/block").join(name).join("dev")).unwrap();
    (format!("/dev/{name}"), dev.trim().to_string())
}

fn inspect(b: &Berth, name: &str) -> serde_json::Value {
    serde_json::from_str::<serde_json::Value>(&b.ok(&["inspect", name])).unwrap()[0].clone()
}

#[test]
fn limits_reach_the_cgroup_and_inspect() {
    let b = setup();
    let (dev, numbers) = block_device();
    let read_bps = format!("{dev}:1mb");
    let write_bps = format!("{dev}:2mb");
    let id = b
        .ok(&[
            "run",
            "-d",
            "--name",
            "limited",
            "--memory",
            "64m",
            "--memory-swap",
            "128m",
            "--cpu-shares",
            "512",
            "--cpuset-cpus",
            "0",
            "--device-read-bps",
            &read_bps,
            "--device-write-bps",
            &write_bps,
            "busybox",
            "sleep",
            "1000",
        ])
        .trim()
        .to_string();
    let file = |controller, name| cgroup_file(&id, controller, name).trim().to_string();
    if v2() {
        assert_eq!(file("memory", "memory.max"), "67108864");
        if Path::new("/sys/fs/cgroup/berth")
            .join(&id)
            .join("memory.swap.max")
            .exists()
        {
            assert_eq!(file("memory", "memory.swap.max"), "67108864");
        }
        assert_eq!(
            file("cpu", "cpu.weight"),
            "20",
            "runc's conversion of 512 shares"
        );
        assert_eq!(file("cpuset", "cpuset.cpus"), "0");
        let io_max = file("io", "io.max");
        assert!(
            io_max.contains(&format!("{numbers} rbps=1048576 wbps=2097152")),
            "{io_max}"
        );
    } else {
        assert_eq!(file("memory", "memory.limit_in_bytes"), "67108864");
        if cgroup_path(&id, "memory", "memory.memsw.limit_in_bytes").exists() {
            assert_eq!(file("memory", "memory.memsw.limit_in_bytes"), "134217728");
        }
        assert_eq!(file("cpu", "cpu.shares"), "512");
        assert_eq!(file("cpuset", "cpuset.cpus"), "0");
        assert_eq!(
            file("blkio", "blkio.throttle.read_bps_device"),
            format!("{numbers} 1048576")
        );
        assert_eq!(
            file("blkio", "blkio.throttle.write_bps_device"),
            format!("{numbers} 2097152")
        );
    }
    // The workload really is held to CPU 0.
    let status = b.ok(&[
        "exec",
        "limited",
        "grep",
        "Cpus_allowed_list",
        "/proc/1/status",
    ]);
    assert_eq!(status.split_whitespace().nth(1), Some("0"), "{status}");

    let host = &inspect(&b, "limited")["HostConfig"];
    assert_eq!(host["Memory"], 64 << 20);
    assert_eq!(host["MemorySwap"], 128 << 20);
    assert_eq!(host["CpuShares"], 512);
    assert_eq!(host["CpusetCpus"], "0");
    assert_eq!(host["BlkioWeight"], 0);
    assert_eq!(
        host["BlkioDeviceReadBps"],
        serde_json::json!([{ "Path": dev, "Rate": 1 << 20 }])
    );
    assert_eq!(
        host["BlkioDeviceWriteBps"],
        serde_json::json!([{ "Path": dev, "Rate": 2 << 20 }])
    );
    b.ok(&["rm", "-f", "limited"]);
    b.wait_until_gone(&id);
}

#[test]
fn blkio_weight_is_written_or_refused_clearly() {
    let b = setup();
    let out = b.output(&[
        "run",
        "-d",
        "--name",
        "weighted",
        "--blkio-weight",
        "300",
        "busybox",
        "sleep",
        "1000",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        // A kernel without the CFQ or BFQ scheduler (or blk-iocost) has no weight to set.
        assert_eq!(out.status.code(), Some(125), "{err}");
        assert!(
            err.contains("--blkio-weight cannot be applied on this host")
                && err.contains("run without --blkio-weight"),
            "{err}"
        );
        assert_eq!(b.container_folders(), 0, "the refused container is removed");
        return;
    }
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (dir, weights) = if v2() {
        ("io", [("io.bfq.weight", "300"), ("io.weight", "2930")])
    } else {
        (
            "blkio",
            [("blkio.weight", "300"), ("blkio.bfq.weight", "300")],
        )
    };
    let (name, want) = weights
        .into_iter()
        .find(|(name, _)| cgroup_path(&id, dir, name).exists())
        .expect("a weight file");
    assert!(cgroup_file(&id, dir, name).contains(want), "{name}");
    assert_eq!(inspect(&b, "weighted")["HostConfig"]["BlkioWeight"], 300);
    b.ok(&["rm", "-f", "weighted"]);
}

#[test]
fn bad_limits_fail_before_anything_is_stored() {
    let b = setup();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--memory-swap", "10m", "--memory", "64m"],
            "invalid --memory-swap 10m: it is the total of memory and swap and must be at least --memory 64m",
        ),
        (&["--memory-swap", "64m"], "invalid --memory-swap 64m: "),
        (
            &["--memory", "1k"],
            "invalid --memory 1k: the minimum memory limit allowed is 6MB",
        ),
        (
            &["--blkio-weight", "5"],
            "invalid --blkio-weight 5: the range of blkio weight is from 10 to 1000",
        ),
        (
            &["--device-read-bps", "/etc/passwd:1mb"],
            "invalid --device-read-bps /etc/passwd:1m: /etc/passwd is not a block device",
        ),
        (&["--device-write-bps", "sda"], "--device-write-bps"),
        (
            &["--cpuset-cpus", "99"],
            "invalid --cpuset-cpus 99: requested CPUs are not available",
        ),
        (&["--cpuset-cpus", "0-x"], "invalid --cpuset-cpus \"0-x\""),
    ];
    for (flags, message) in cases {
        for command in ["run", "create"] {
            let mut args = vec![command, "--rm"];
            if command == "create" {
                args.pop();
            }
            args.extend_from_slice(flags);
            args.extend_from_slice(&["busybox", "true"]);
            let (code, err) = b.fail(&args);
            assert_eq!(code, 125, "{args:?}: {err}");
            assert!(err.contains(message), "{args:?}: {err}");
            assert_eq!(b.container_folders(), 0, "{args:?} stored a container");
        }
    }
}
