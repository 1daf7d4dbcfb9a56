//! What a container's limits come to, before any cgroup file is written: Docker's defaults,
//! and runc's conversions of v1 values to v2's scales.

use super::CgroupError;
use crate::workload::Limits;

/// The CFS period; `--cpus` scales the quota against it, as Docker.
pub(super) const CFS_PERIOD_US: u64 = 100_000;
/// The kernel's range of v1 cpu.shares; Docker moves a `--cpu-shares` outside it to the end.
const SHARES: (u64, u64) = (2, 262_144);

/// The values to write, version aside.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Plan {
    /// `--memory`.
    pub memory: Option<u64>,
    /// Memory plus swap (v1 memsw) in bytes, or None for unlimited.
    pub memory_swap: Option<u64>,
    /// Whether swap was explicitly made unlimited (-1).
    pub swap_unlimited: bool,
    /// `--cpus` as a CFS quota per [`CFS_PERIOD_US`].
    pub cpu_quota_us: Option<u64>,
    /// `--cpu-shares`, within the kernel's range.
    pub cpu_shares: Option<u64>,
    /// `--cpuset-cpus`.
    pub cpuset_cpus: Option<String>,
    /// `--blkio-weight`, 10 to 1000.
    pub blkio_weight: Option<u16>,
    /// `--device-read-bps` and `--device-write-bps`, one entry per device.
    pub device_bps: Vec<DeviceBps>,
    /// `--pids-limit`.
    pub pids: Option<i64>,
}

/// The rate limits of one block device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct DeviceBps {
    /// The device's major and minor numbers.
    pub dev: (u64, u64),
    /// Bytes read per second.
    pub read: Option<u64>,
    /// Bytes written per second.
    pub write: Option<u64>,
}

/// A limit asked for, and the controller it needs in each cgroup version.
#[derive(Debug, Clone, Copy)]
pub(super) struct Need {
    /// Whether the limits ask for it.
    pub asked: bool,
    /// The flag that asks for it.
    pub flag: &'static str,
    /// Its v1 controller.
    pub v1: &'static str,
    /// Its v2 controller.
    pub v2: &'static str,
}

impl Plan {
    /// Checks `limits` as at create ([`Limits::check`], the same message) and works out what
    /// to write.
    pub fn of(limits: &Limits) -> Result<Plan, CgroupError> {
        limits
            .check()
            .map_err(|e| CgroupError::InvalidLimit(e.to_string()))?;
        let mut plan = Plan {
            memory: limits.memory,
            cpu_shares: limits
                .cpu_shares
                .filter(|&s| s > 0)
                .map(|s| s.clamp(SHARES.0, SHARES.1)),
            cpuset_cpus: limits.cpuset_cpus.clone().filter(|c| !c.trim().is_empty()),
            blkio_weight: limits.blkio_weight.filter(|&w| w > 0),
            pids: limits.pids.filter(|&p| p > 0),
            ..Plan::default()
        };
        match (limits.memory_swap, limits.memory) {
            (Some(-1), Some(_)) => plan.swap_unlimited = true,
            (Some(s), Some(_)) if s > 0 => plan.memory_swap = Some(s as u64),
            // No swap by default: a memory hog is killed rather than swapping.
            (_, m) => plan.memory_swap = m,
        }
        if let Some(c) = limits.cpus.filter(|&c| c > 0.0) {
            plan.cpu_quota_us = Some((c * CFS_PERIOD_US as f64).round() as u64);
        }
        for (rates, read) in [
            (&limits.device_read_bps, true),
            (&limits.device_write_bps, false),
        ] {
            for r in rates {
                let dev = (r.major, r.minor);
                let i = match plan.device_bps.iter().position(|d| d.dev == dev) {
                    Some(i) => i,
                    None => {
                        plan.device_bps.push(DeviceBps {
                            dev,
                            ..DeviceBps::default()
                        });
                        plan.device_bps.len() - 1
                    }
                };
                let entry = &mut plan.device_bps[i];
                *(if read {
                    &mut entry.read
                } else {
                    &mut entry.write
                }) = Some(r.rate);
            }
        }
        Ok(plan)
    }

    /// The limits asked for, each with the controller it needs.
    pub fn needs(&self) -> [Need; 8] {
        let need = |asked, flag, v1, v2| Need {
            asked,
            flag,
            v1,
            v2,
        };
        let bps = |f: fn(&DeviceBps) -> bool| self.device_bps.iter().any(f);
        [
            need(self.memory.is_some(), "--memory", "memory", "memory"),
            need(self.cpu_quota_us.is_some(), "--cpus", "cpu", "cpu"),
            need(self.cpu_shares.is_some(), "--cpu-shares", "cpu", "cpu"),
            need(self.pids.is_some(), "--pids-limit", "pids", "pids"),
            need(
                self.cpuset_cpus.is_some(),
                "--cpuset-cpus",
                "cpuset",
                "cpuset",
            ),
            need(self.blkio_weight.is_some(), "--blkio-weight", "blkio", "io"),
            need(
                bps(|d| d.read.is_some()),
                "--device-read-bps",
                "blkio",
                "io",
            ),
            need(
                bps(|d| d.write.is_some()),
                "--device-write-bps",
                "blkio",
                "io",
            ),
        ]
    }
}

/// v2's cpu.weight (1 to 10000) for v1 cpu.shares (2 to 262144), as runc converts it.
pub(super) fn cpu_weight(shares: u64) -> u64 {
    1 + ((shares - 2) * 9999) / 262_142
}

/// v2's io.weight (1 to 10000) for a blkio weight (10 to 1000), as runc converts it.
pub(super) fn io_weight(blkio: u16) -> u64 {
    1 + (u64::from(blkio) - 10) * 9999 / 990
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::DeviceRate;

    #[test]
    fn conversions_match_runc() {
        assert_eq!(cpu_weight(2), 1);
        assert_eq!(cpu_weight(1024), 39);
        assert_eq!(cpu_weight(512), 20);
        assert_eq!(cpu_weight(262_144), 10_000);
        assert_eq!(io_weight(10), 1);
        assert_eq!(io_weight(300), 2930);
        assert_eq!(io_weight(1000), 10_000);
    }

    #[test]
    fn defaults_and_ranges_as_docker() {
        let mib = 1 << 20;
        let plan = |l: Limits| Plan::of(&l).unwrap();
        let p = plan(Limits {
            memory: Some(32 * mib),
            ..Default::default()
        });
        assert_eq!(p.memory_swap, Some(32 * mib), "no swap by default");
        let p = plan(Limits {
            memory: Some(32 * mib),
            memory_swap: Some(-1),
            ..Default::default()
        });
        assert!(p.swap_unlimited && p.memory_swap.is_none());
        let p = plan(Limits {
            cpus: Some(0.0),
            pids: Some(-1),
            cpu_shares: Some(0),
            blkio_weight: Some(0),
            ..Default::default()
        });
        assert_eq!(p, Plan::default(), "0 and -1 mean no limit");
        let p = plan(Limits {
            cpu_shares: Some(1),
            ..Default::default()
        });
        assert_eq!(
            p.cpu_shares,
            Some(2),
            "shares below the kernel's range are raised"
        );
        let p = plan(Limits {
            cpu_shares: Some(1 << 20),
            ..Default::default()
        });
        assert_eq!(p.cpu_shares, Some(262_144));
        let rate = |minor, rate| DeviceRate {
            path: "/dev/x".into(),
            major: 8,
            minor,
            rate,
        };
        let p = plan(Limits {
            device_read_bps: vec![rate(0, 1), rate(16, 2)],
            device_write_bps: vec![rate(0, 3)],
            ..Default::default()
        });
        assert_eq!(
            p.device_bps,
            [
                DeviceBps {
                    dev: (8, 0),
                    read: Some(1),
                    write: Some(3)
                },
                DeviceBps {
                    dev: (8, 16),
                    read: Some(2),
                    write: None
                }
            ]
        );
        // The planner refuses what create refuses, with the same message.
        let bad = Limits {
            memory: Some(1024),
            ..Default::default()
        };
        assert_eq!(
            Plan::of(&bad).unwrap_err().to_string(),
            bad.check().unwrap_err().to_string()
        );
    }
}
