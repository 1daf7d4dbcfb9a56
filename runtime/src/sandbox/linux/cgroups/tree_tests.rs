//! The planner against cgroup trees made in a temporary folder, laid out as the kernel shows
//! v1, v2 and hybrid hosts: what each limit writes where, and the errors when the host lacks
//! a controller or a file. No root needed.

use std::path::{Path, PathBuf};

use super::*;
use crate::workload::DeviceRate;

const ID: &str = "c0ffee";
const MIB: u64 = 1 << 20;

/// The files the kernel shows in a new group of each v1 controller, with their contents.
fn v1_files(controller: &str) -> &'static [(&'static str, &'static str)] {
    match controller {
        "memory" => &[
            ("memory.limit_in_bytes", "9223372036854771712"),
            ("memory.memsw.limit_in_bytes", "9223372036854771712"),
            ("memory.swappiness", "60"),
        ],
        "cpu" => &[
            ("cpu.cfs_period_us", "100000"),
            ("cpu.cfs_quota_us", "-1"),
            ("cpu.shares", "1024"),
        ],
        "cpuacct" => &[("cpuacct.usage", "0")],
        "pids" => &[("pids.max", "max")],
        "freezer" => &[("freezer.state", "THAWED")],
        "devices" => &[("devices.allow", ""), ("devices.deny", "")],
        // A new cpuset group starts with no CPUs and no memory nodes.
        "cpuset" => &[("cpuset.cpus", ""), ("cpuset.mems", "")],
        "blkio" => &[
            ("blkio.weight", "500"),
            ("blkio.throttle.read_bps_device", ""),
            ("blkio.throttle.write_bps_device", ""),
        ],
        _ => &[],
    }
}

/// The files of a new v2 group with every controller enabled.
const V2_FILES: &[(&str, &str)] = &[
    ("cgroup.procs", ""),
    ("memory.max", "max"),
    ("memory.swap.max", "max"),
    ("cpu.max", "max 100000"),
    ("cpu.weight", "100"),
    ("pids.max", "max"),
    ("cpuset.cpus", ""),
    ("io.weight", "default 100"),
    ("io.max", ""),
];

fn put(dir: &Path, files: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A v1 (or hybrid) host with `controllers` mounted, cpu and cpuacct co-mounted as systemd
/// does. The container's group exists already in the hierarchies of `made`, as the kernel
/// would have filled it; elsewhere berth's mkdir makes a bare folder.
fn v1_tree(controllers: &[&str], made: &[&str], hybrid: bool) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    for c in controllers {
        let mount = if matches!(*c, "cpu" | "cpuacct") {
            std::fs::create_dir_all(root.join("cpu,cpuacct")).unwrap();
            std::os::unix::fs::symlink("cpu,cpuacct", root.join(c)).unwrap();
            root.join("cpu,cpuacct")
        } else {
            root.join(c)
        };
        put(&mount, &[("cgroup.procs", "1")]);
        if *c == "cpuset" {
            put(&mount, &[("cpuset.cpus", "0-3"), ("cpuset.mems", "0")]);
        }
        if made.contains(c) {
            put(&mount.join(PARENT).join(ID), v1_files(c));
        }
    }
    if hybrid {
        put(&root.join("unified"), &[("cgroup.procs", "1")]);
        put(
            &root.join("unified").join(PARENT).join(ID),
            &[("cgroup.procs", "")],
        );
    }
    t
}

/// A v2 host offering `available`, with memory, cpu and pids already passed down to `berth/`.
fn v2_tree(available: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    put(
        root,
        &[
            ("cgroup.controllers", available),
            ("cgroup.subtree_control", "cpu memory pids"),
            ("cgroup.procs", "1"),
        ],
    );
    put(
        &root.join(PARENT),
        &[("cgroup.subtree_control", "cpu memory pids")],
    );
    put(&root.join(PARENT).join(ID), files);
    t
}

const ALL_V1: &[&str] = &[
    "memory", "cpu", "cpuacct", "pids", "freezer", "devices", "cpuset", "blkio",
];

/// Every limit berth has, with two devices (the first both read and write limited).
fn every_limit() -> Limits {
    let rate = |minor, rate| DeviceRate {
        path: "/dev/sdx".into(),
        major: 8,
        minor,
        rate,
    };
    Limits {
        memory: Some(64 * MIB),
        memory_swap: Some(128 * MIB as i64),
        cpus: Some(0.5),
        pids: Some(20),
        cpu_shares: Some(512),
        cpuset_cpus: Some("0".into()),
        blkio_weight: Some(300),
        device_read_bps: vec![rate(0, MIB), rate(16, 3)],
        device_write_bps: vec![rate(0, 2 * MIB)],
    }
}

fn group(root: &Path, mount: &str) -> PathBuf {
    root.join(mount).join(PARENT).join(ID)
}

#[test]
fn v1_writes_every_limit() {
    for hybrid in [false, true] {
        let t = v1_tree(ALL_V1, ALL_V1, hybrid);
        let root = CgroupRoot::at(t.path());
        let want = if hybrid {
            CgroupVersion::V1Hybrid
        } else {
            CgroupVersion::V1
        };
        assert_eq!(root.version(), want);
        let cg = Cgroup::create_in(&root, ID, &every_limit()).unwrap();
        let r = |mount: &str, file: &str| read(group(t.path(), mount).join(file));
        assert_eq!(r("memory", "memory.limit_in_bytes"), "67108864");
        assert_eq!(r("memory", "memory.memsw.limit_in_bytes"), "134217728");
        assert_eq!(r("memory", "memory.swappiness"), "60", "swap allowed");
        assert_eq!(r("cpu,cpuacct", "cpu.cfs_period_us"), "100000");
        assert_eq!(r("cpu,cpuacct", "cpu.cfs_quota_us"), "50000");
        assert_eq!(r("cpu,cpuacct", "cpu.shares"), "512");
        assert_eq!(r("pids", "pids.max"), "20");
        assert_eq!(r("cpuset", "cpuset.cpus"), "0");
        assert_eq!(r("cpuset", "cpuset.mems"), "0", "copied from the parent");
        let berth = t.path().join("cpuset").join(PARENT);
        assert_eq!(read(berth.join("cpuset.cpus")), "0-3");
        assert_eq!(read(berth.join("cpuset.mems")), "0");
        assert_eq!(r("blkio", "blkio.weight"), "300");
        assert_eq!(
            r("blkio", "blkio.throttle.read_bps_device"),
            "8:0 1048576\n8:16 3\n"
        );
        assert_eq!(
            r("blkio", "blkio.throttle.write_bps_device"),
            "8:0 2097152\n"
        );
        assert_eq!(r("devices", "devices.deny"), "a");
        assert_eq!(r("devices", "devices.allow"), v1::DEFAULT_DEVICES.concat());
        // One directory per hierarchy (cpu and cpuacct share one), plus the unified one.
        let mut mounts: Vec<String> = cg
            .paths()
            .iter()
            .map(|p| p.parent().unwrap().parent().unwrap().file_name().unwrap())
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        mounts.sort();
        let mut expect = vec![
            "blkio",
            "cpu,cpuacct",
            "cpuset",
            "devices",
            "freezer",
            "memory",
            "pids",
        ];
        if hybrid {
            expect.push("unified");
        }
        assert_eq!(mounts, expect);
        assert_eq!(Cgroup::open_in(&root, ID).unwrap().paths(), cg.paths());
    }
}

#[test]
fn v1_defaults_leave_optional_controllers_alone() {
    // Only memory is limited: no swap, swappiness 0; cpuset and blkio are not joined at all.
    let t = v1_tree(ALL_V1, &["memory", "devices"], false);
    let root = CgroupRoot::at(t.path());
    let limits = Limits {
        memory: Some(32 * MIB),
        ..Default::default()
    };
    let cg = Cgroup::create_in(&root, ID, &limits).unwrap();
    let mem = group(t.path(), "memory");
    assert_eq!(read(mem.join("memory.memsw.limit_in_bytes")), "33554432");
    assert_eq!(read(mem.join("memory.swappiness")), "0");
    assert!(!t.path().join("cpuset").join(PARENT).exists());
    assert!(!t.path().join("blkio").join(PARENT).exists());
    assert_eq!(cg.paths().len(), 5, "{:?}", cg.paths());
    // A group made by mkdir alone (no limits): nothing is written to cpu or pids.
    assert!(group(t.path(), "pids").read_dir().unwrap().next().is_none());

    // Unlimited swap.
    let t = v1_tree(ALL_V1, &["memory", "devices"], false);
    let limits = Limits {
        memory: Some(32 * MIB),
        memory_swap: Some(-1),
        ..Default::default()
    };
    Cgroup::create_in(&CgroupRoot::at(t.path()), ID, &limits).unwrap();
    let mem = group(t.path(), "memory");
    assert_eq!(read(mem.join("memory.memsw.limit_in_bytes")), "-1");
    assert_eq!(read(mem.join("memory.swappiness")), "60");
}

#[test]
fn v1_blkio_weight_goes_to_bfq_when_cfq_is_absent() {
    let t = v1_tree(ALL_V1, &["devices"], false);
    put(&group(t.path(), "blkio"), &[("blkio.bfq.weight", "100")]);
    let limits = Limits {
        blkio_weight: Some(300),
        ..Default::default()
    };
    Cgroup::create_in(&CgroupRoot::at(t.path()), ID, &limits).unwrap();
    assert_eq!(
        read(group(t.path(), "blkio").join("blkio.bfq.weight")),
        "300"
    );
    assert!(!group(t.path(), "blkio").join("blkio.weight").exists());
}

#[test]
fn v2_writes_every_limit_converted_as_runc() {
    let t = v2_tree("cpuset cpu io memory pids", V2_FILES);
    let root = CgroupRoot::at(t.path());
    assert_eq!(root.version(), CgroupVersion::V2);
    let cg = Cgroup::create_in(&root, ID, &every_limit()).unwrap();
    let r = |file: &str| read(t.path().join(PARENT).join(ID).join(file));
    assert_eq!(r("memory.max"), "67108864");
    assert_eq!(
        r("memory.swap.max"),
        "67108864",
        "swap alone: the total less memory"
    );
    assert_eq!(r("cpu.max"), "50000 100000");
    assert_eq!(r("cpu.weight"), "20", "1 + (512 - 2) * 9999 / 262142");
    assert_eq!(r("pids.max"), "20");
    assert_eq!(r("cpuset.cpus"), "0");
    assert_eq!(r("io.weight"), "2930", "1 + (300 - 10) * 9999 / 990");
    assert_eq!(r("io.max"), "8:0 rbps=1048576 wbps=2097152\n8:16 rbps=3\n");
    // The optional controllers were passed down (each write replaces the fake file: the
    // last one, io, is what is left); memory, cpu and pids were on already.
    assert_eq!(read(t.path().join("cgroup.subtree_control")), "+io");
    assert_eq!(
        read(t.path().join(PARENT).join("cgroup.subtree_control")),
        "+io"
    );
    assert_eq!(cg.paths(), [t.path().join(PARENT).join(ID)]);
}

#[test]
fn v2_defaults_and_bfq() {
    // No optional limit: cpuset and io are not enabled; no swap.
    let t = v2_tree("cpuset cpu io memory pids", V2_FILES);
    let limits = Limits {
        memory: Some(32 * MIB),
        ..Default::default()
    };
    Cgroup::create_in(&CgroupRoot::at(t.path()), ID, &limits).unwrap();
    let r = |file: &str| read(t.path().join(PARENT).join(ID).join(file));
    assert_eq!(r("memory.swap.max"), "0");
    assert_eq!(r("cpu.weight"), "100");
    assert_eq!(
        read(t.path().join("cgroup.subtree_control")),
        "cpu memory pids"
    );

    // BFQ's weight takes Docker's value as it is.
    let mut files = V2_FILES.to_vec();
    files.push(("io.bfq.weight", "100"));
    let t = v2_tree("cpuset cpu io memory pids", &files);
    let limits = Limits {
        blkio_weight: Some(300),
        ..Default::default()
    };
    Cgroup::create_in(&CgroupRoot::at(t.path()), ID, &limits).unwrap();
    let r = |file: &str| read(t.path().join(PARENT).join(ID).join(file));
    assert_eq!(r("io.bfq.weight"), "300");
    assert_eq!(r("io.weight"), "default 100");
    assert_eq!(read(t.path().join("cgroup.subtree_control")), "+io");
}

fn refused(tree: &Path, limits: Limits) -> String {
    Cgroup::create_in(&CgroupRoot::at(tree), ID, &limits)
        .unwrap_err()
        .to_string()
}

#[test]
fn missing_controllers_are_errors_only_when_asked_for() {
    // A v1 host without cpuset and blkio runs containers that do not ask for them.
    let t = v1_tree(&["memory", "cpu", "cpuacct", "pids"], &[], false);
    Cgroup::create_in(&CgroupRoot::at(t.path()), ID, &Limits::default()).unwrap();
    for (limits, flag, controller) in [
        (
            Limits {
                cpuset_cpus: Some("0".into()),
                ..Default::default()
            },
            "--cpuset-cpus",
            "cpuset",
        ),
        (
            Limits {
                blkio_weight: Some(300),
                ..Default::default()
            },
            "--blkio-weight",
            "blkio",
        ),
        (
            Limits {
                device_write_bps: vec![DeviceRate::default()],
                ..Default::default()
            },
            "--device-write-bps",
            "blkio",
        ),
    ] {
        assert_eq!(
            refused(t.path(), limits),
            format!(
                "{flag} needs the {controller} cgroup controller, which this host does not mount"
            )
        );
    }
    // v2 without io.
    let t = v2_tree("cpu memory pids", V2_FILES);
    let limits = Limits {
        device_read_bps: vec![DeviceRate::default()],
        ..Default::default()
    };
    assert_eq!(
        refused(t.path(), limits),
        "--device-read-bps needs the io cgroup controller, which this host does not enable for berth"
    );
}

#[test]
fn missing_files_name_the_flag() {
    // blkio mounted, but no weight (no CFQ or BFQ) and no throttling built in.
    let t = v1_tree(ALL_V1, &["devices"], false);
    put(&group(t.path(), "blkio"), &[]);
    let e = refused(
        t.path(),
        Limits {
            blkio_weight: Some(300),
            ..Default::default()
        },
    );
    assert!(
        e.starts_with("--blkio-weight cannot be applied on this host: its kernel's blkio controller has no weight")
            && e.ends_with("; run without --blkio-weight"),
        "{e}"
    );
    let e = refused(
        t.path(),
        Limits {
            device_read_bps: vec![DeviceRate::default()],
            ..Default::default()
        },
    );
    assert_eq!(
        e,
        "--device-read-bps cannot be applied on this host: its kernel offers no blkio.throttle.read_bps_device; run without --device-read-bps"
    );
    // v2 with the io controller but neither weight file.
    let files: Vec<_> = V2_FILES
        .iter()
        .copied()
        .filter(|f| f.0 != "io.weight")
        .collect();
    let t = v2_tree("cpu io memory pids", &files);
    let e = refused(
        t.path(),
        Limits {
            blkio_weight: Some(300),
            ..Default::default()
        },
    );
    assert!(e.starts_with("--blkio-weight cannot be applied on this host: its kernel's io controller has no weight"), "{e}");
}

#[test]
fn invalid_limits_are_refused_with_create_time_message() {
    let t = v1_tree(ALL_V1, ALL_V1, false);
    let e = refused(
        t.path(),
        Limits {
            memory: Some(1024),
            ..Default::default()
        },
    );
    assert_eq!(
        e,
        "invalid --memory 1k: the minimum memory limit allowed is 6MB; give -m 6m or more"
    );
}

#[test]
fn privileged_keeps_every_device() {
    let t = v1_tree(ALL_V1, &["devices"], false);
    let cg = Cgroup::create_in(&CgroupRoot::at(t.path()), ID, &Limits::default()).unwrap();
    cg.allow_all_devices().unwrap();
    assert_eq!(read(group(t.path(), "devices").join("devices.allow")), "a");
}

#[test]
fn unknown_container_is_not_found() {
    for t in [v1_tree(ALL_V1, &[], false), v2_tree("cpu memory pids", &[])] {
        std::fs::remove_dir(t.path().join(PARENT).join(ID)).ok();
        assert!(matches!(
            Cgroup::open_in(&CgroupRoot::at(t.path()), ID),
            Err(CgroupError::NotFound(_))
        ));
    }
    let none = tempfile::tempdir().unwrap();
    assert!(matches!(
        Cgroup::create_in(&CgroupRoot::at(none.path()), ID, &Limits::default()),
        Err(CgroupError::NoCgroups(_))
    ));
}
