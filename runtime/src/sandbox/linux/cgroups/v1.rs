//! Writing a container's limits into v1 hierarchies (and hybrid mode's, whose controllers are
//! all v1).

use std::path::Path;

use super::plan::{CFS_PERIOD_US, Plan};
use super::{Cgroup, CgroupError};

/// Docker's default device rules (runc's), for the devices controller.
pub(super) const DEFAULT_DEVICES: &[&str] = &[
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
];

/// Writes `plan` into the container's directories.
pub(super) fn apply(cg: &Cgroup, plan: &Plan) -> Result<(), CgroupError> {
    if let Some(d) = cg.dir_with("memory") {
        memory(cg, &d.path, plan)?;
    }
    if let Some(d) = cg.dir_with("cpu") {
        if let Some(quota) = plan.cpu_quota_us {
            cg.write(&d.path, "cpu.cfs_period_us", &CFS_PERIOD_US.to_string())?;
            cg.write(&d.path, "cpu.cfs_quota_us", &quota.to_string())?;
        }
        if let Some(shares) = plan.cpu_shares {
            cg.write(&d.path, "cpu.shares", &shares.to_string())?;
        }
    }
    if let (Some(pids), Some(d)) = (plan.pids, cg.dir_with("pids")) {
        cg.write(&d.path, "pids.max", &pids.to_string())?;
    }
    if let (Some(cpus), Some(d)) = (&plan.cpuset_cpus, cg.dir_with("cpuset")) {
        cg.write(&d.path, "cpuset.cpus", cpus)?;
    }
    if let Some(d) = cg.dir_with("blkio") {
        blkio(cg, &d.path, plan)?;
    }
    if let Some(d) = cg.dir_with("devices") {
        cg.write(&d.path, "devices.deny", "a")?;
        cg.write_each(&d.path, "devices.allow", DEFAULT_DEVICES)?;
    }
    Ok(())
}

fn memory(cg: &Cgroup, p: &Path, plan: &Plan) -> Result<(), CgroupError> {
    let Some(m) = plan.memory else {
        return Ok(());
    };
    // memsw must never be below the memory limit: memory first, as both start unlimited.
    cg.write(p, "memory.limit_in_bytes", &m.to_string())?;
    // Without swap accounting there is no memsw file: the swap limit is moot.
    if p.join("memory.memsw.limit_in_bytes").exists() {
        let total = match (plan.swap_unlimited, plan.memory_swap) {
            (true, _) | (false, None) => "-1".to_string(),
            (false, Some(total)) => total.to_string(),
        };
        cg.write(p, "memory.memsw.limit_in_bytes", &total)?;
    }
    if plan.memory_swap == Some(m) {
        // Not writable in every setup (the root's, some kernels): best effort.
        let _ = std::fs::write(p.join("memory.swappiness"), "0");
    }
    Ok(())
}

/// `--blkio-weight` in blkio.weight (CFQ) or blkio.bfq.weight (BFQ), whichever the kernel has;
/// the rate limits in blkio.throttle.*_bps_device, a `MAJ:MIN BYTES` line per device.
fn blkio(cg: &Cgroup, p: &Path, plan: &Plan) -> Result<(), CgroupError> {
    if let Some(w) = plan.blkio_weight {
        let file = ["blkio.weight", "blkio.bfq.weight"]
            .into_iter()
            .find(|f| p.join(f).exists())
            .ok_or_else(|| CgroupError::Unsupported {
                flag: "--blkio-weight",
                why: "its kernel's blkio controller has no weight (blkio.weight or blkio.bfq.weight, which come with the CFQ or BFQ I/O scheduler)".into(),
            })?;
        cg.write(p, file, &w.to_string())?;
    }
    let lines = |rate: fn(&super::plan::DeviceBps) -> Option<u64>| -> Vec<String> {
        plan.device_bps
            .iter()
            .filter_map(|d| Some(format!("{}:{} {}\n", d.dev.0, d.dev.1, rate(d)?)))
            .collect()
    };
    for (flag, file, rules) in [
        (
            "--device-read-bps",
            "blkio.throttle.read_bps_device",
            lines(|d| d.read),
        ),
        (
            "--device-write-bps",
            "blkio.throttle.write_bps_device",
            lines(|d| d.write),
        ),
    ] {
        if !rules.is_empty() {
            cg.write_rules(p, file, flag, &rules)?;
        }
    }
    Ok(())
}

/// A new cpuset group has no CPUs and no memory nodes, and no process can join it until it
/// has both: the groups from the mount down to the container's (`dirs`) take their parent's,
/// unless set already.
pub(super) fn inherit_cpuset(cg: &Cgroup, dirs: &[&Path]) -> Result<(), CgroupError> {
    for pair in dirs.windows(2) {
        let (from, to) = (pair[0], pair[1]);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let set = std::fs::read_to_string(to.join(file)).unwrap_or_default();
            if !set.trim().is_empty() {
                continue;
            }
            let value = std::fs::read_to_string(from.join(file))
                .map_err(cg.io_err(format!("reading {}", from.join(file).display())))?;
            cg.write(to, file, value.trim())?;
        }
    }
    Ok(())
}
