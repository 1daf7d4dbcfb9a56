//! Writing a container's limits into the v2 hierarchy, with runc's conversions of Docker's v1
//! values.

use std::path::{Path, PathBuf};

use super::plan::{CFS_PERIOD_US, Plan, cpu_weight, io_weight};
use super::root::{OPTIONAL, words};
use super::{Cgroup, CgroupError};

/// The v2 controllers a container may get (see [`OPTIONAL`] for those only asked for).
const CONTROLLERS: &[&str] = &["memory", "cpu", "pids", "cpuset", "io"];

/// Passes the controllers on from the root down the groups `above` the container's (the root
/// first: `berth/`, or a spec's path), making those groups. Returns those the container will
/// have. A controller no limit asks for is best effort; an optional one is
/// enabled only when asked for.
pub(super) fn enable(
    cg: &Cgroup,
    above: &[PathBuf],
    available: &[String],
    asked: &dyn Fn(&str) -> bool,
) -> Result<Vec<String>, CgroupError> {
    for dir in &above[1..] {
        cg.mkdir(dir)?;
    }
    let mut enabled = Vec::new();
    for c in CONTROLLERS {
        let needed = asked(c);
        if !available.iter().any(|a| a == c) || (OPTIONAL.contains(c) && !needed) {
            continue;
        }
        let mut ok = true;
        for dir in above {
            let on = words(&dir.join("cgroup.subtree_control"))
                .iter()
                .any(|x| x == c);
            if !on && let Err(e) = cg.write(dir, "cgroup.subtree_control", &format!("+{c}")) {
                if needed {
                    return Err(e);
                }
                ok = false;
                break;
            }
        }
        if ok {
            enabled.push(c.to_string());
        }
    }
    Ok(enabled)
}

/// Writes `plan` into the container's directory.
pub(super) fn apply(cg: &Cgroup, plan: &Plan) -> Result<(), CgroupError> {
    if let (Some(m), Some(d)) = (plan.memory, cg.dir_with("memory")) {
        cg.write(&d.path, "memory.max", &m.to_string())?;
        if d.path.join("memory.swap.max").exists() {
            let swap = match (plan.swap_unlimited, plan.memory_swap) {
                (true, _) | (false, None) => "max".to_string(),
                (false, Some(total)) => (total - m).to_string(),
            };
            cg.write(&d.path, "memory.swap.max", &swap)?;
        }
    }
    if let Some(d) = cg.dir_with("cpu") {
        if let Some(quota) = plan.cpu_quota_us {
            cg.write(&d.path, "cpu.max", &format!("{quota} {CFS_PERIOD_US}"))?;
        }
        if let Some(shares) = plan.cpu_shares {
            cg.write(&d.path, "cpu.weight", &cpu_weight(shares).to_string())?;
        }
    }
    if let (Some(pids), Some(d)) = (plan.pids, cg.dir_with("pids")) {
        cg.write(&d.path, "pids.max", &pids.to_string())?;
    }
    if let (Some(cpus), Some(d)) = (&plan.cpuset_cpus, cg.dir_with("cpuset")) {
        cg.write(&d.path, "cpuset.cpus", cpus)?;
    }
    if let Some(d) = cg.dir_with("io") {
        io(cg, &d.path, plan)?;
    }
    Ok(())
}

/// `--blkio-weight` in io.bfq.weight (BFQ, as given) or io.weight (converted); the rate limits
/// in io.max, a `MAJ:MIN rbps=N wbps=N` line per device.
fn io(cg: &Cgroup, p: &Path, plan: &Plan) -> Result<(), CgroupError> {
    if let Some(w) = plan.blkio_weight {
        if p.join("io.bfq.weight").exists() {
            cg.write(p, "io.bfq.weight", &w.to_string())?;
        } else if p.join("io.weight").exists() {
            cg.write(p, "io.weight", &io_weight(w).to_string())?;
        } else {
            return Err(CgroupError::Unsupported {
                flag: "--blkio-weight",
                why: "its kernel's io controller has no weight (io.bfq.weight or io.weight, which come with the BFQ I/O scheduler or blk-iocost)".into(),
            });
        }
    }
    let rules: Vec<String> = plan
        .device_bps
        .iter()
        .map(|d| {
            let rbps = d.read.map(|r| format!(" rbps={r}")).unwrap_or_default();
            let wbps = d.write.map(|w| format!(" wbps={w}")).unwrap_or_default();
            format!("{}:{}{rbps}{wbps}\n", d.dev.0, d.dev.1)
        })
        .collect();
    if let Some(first) = plan.device_bps.first() {
        let flag = if first.read.is_some() {
            "--device-read-bps"
        } else {
            "--device-write-bps"
        };
        cg.write_rules(p, "io.max", flag, &rules)?;
    }
    Ok(())
}
