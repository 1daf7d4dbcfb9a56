//! The workload spec: what to run and with what isolation. One type, taken by every backend
//! (native processes and WASI modules alike), built by `berth run`/`create` from the image
//! config and the command line, and stored in the container's state.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::backend::Backend;

pub mod runner;
mod start_error;
pub mod user;

pub use runner::{Runner, Workload};
pub use start_error::{StartError, StartFailure};

/// Docker's PATH for images that set none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The workload's environment: the spec's, plus what Docker adds when the image did not set
/// it (PATH, HOSTNAME, HOME from the user's passwd entry, TERM with a tty). Every backend
/// gives its workload this.
pub fn workload_env(spec: &WorkloadSpec, home: &str) -> Vec<String> {
    let mut env = spec.env.clone();
    let has = |env: &[String], k: &str| {
        env.iter()
            .any(|kv| kv.split_once('=').map_or(kv.as_str(), |p| p.0) == k)
    };
    if !has(&env, "PATH") {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    if !has(&env, "HOSTNAME") && !spec.hostname.is_empty() {
        env.push(format!("HOSTNAME={}", spec.hostname));
    }
    if !has(&env, "HOME") {
        env.push(format!("HOME={home}"));
    }
    if spec.tty && !has(&env, "TERM") {
        env.push("TERM=xterm".into());
    }
    env
}

/// Everything a backend needs to run a container's process.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkloadSpec {
    /// argv: the entrypoint followed by the command.
    pub args: Vec<String>,
    /// `KEY=VALUE` entries, image first, then flags.
    pub env: Vec<String>,
    /// The working directory inside the container.
    pub cwd: String,
    /// `user[:group]` as names or ids; empty for root.
    pub user: String,
    /// The container's hostname.
    pub hostname: String,
    /// Bind mounts, volumes and tmpfs mounts, in the order given.
    pub mounts: Vec<MountSpec>,
    /// Resource limits.
    pub limits: Limits,
    /// Which network the workload gets.
    pub network: NetworkMode,
    /// A pseudo-terminal for stdio.
    pub tty: bool,
    /// Keep stdin open.
    pub stdin: bool,
    /// The rootfs is read-only.
    pub read_only: bool,
    /// Capabilities, seccomp, privileges.
    pub security: Security,
    /// Run a minimal init as PID 1 that forwards signals and reaps zombies.
    pub init: bool,
    /// Extra /etc/hosts entries (`host:ip`).
    pub extra_hosts: Vec<String>,
    /// With [`NetworkMode::Bridge`]: the network joined and how.
    #[serde(default)]
    pub bridge: BridgeRequest,
    /// `--dns`: the resolvers of `/etc/resolv.conf` instead of the host's.
    #[serde(default)]
    pub dns: Vec<String>,
    /// `--dns-search`: its search domains.
    #[serde(default)]
    pub dns_search: Vec<String>,
    /// The backend chosen for it (see `backend::select`).
    #[serde(default)]
    pub backend: Backend,
    /// `--runtime` chose the backend; otherwise a native choice still runs a program whose
    /// magic bytes say WebAssembly as WASI.
    #[serde(default)]
    pub backend_forced: bool,
}

/// A mount into the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSpec {
    /// What is mounted.
    pub kind: MountKind,
    /// The host path (bind), the volume's data folder (volume), or unused (tmpfs).
    pub source: PathBuf,
    /// The absolute path inside the container.
    pub destination: String,
    /// Mounted read-only.
    pub read_only: bool,
    /// The volume's name, for named and anonymous volumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
    /// Fill an empty volume with what the image has at the destination.
    #[serde(default)]
    pub populate: bool,
}

/// Kinds of mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// A host path.
    Bind,
    /// A named (or anonymous) volume under the berth root.
    Volume,
    /// A fresh tmpfs.
    Tmpfs,
}

/// Resource limits, enforced through cgroups (and StoreLimits for WASI). `None` (or an empty
/// list) leaves a resource as the host has it. Checked once, at create ([`Limits::validate`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// `--memory`, in bytes.
    pub memory: Option<u64>,
    /// `--cpus`, e.g. 0.5.
    pub cpus: Option<f64>,
    /// `--pids-limit`: most processes at once.
    pub pids: Option<i64>,
    /// `--memory-swap`: memory plus swap, in bytes; -1 for unlimited swap; unset for no swap
    /// at all (so a memory hog is OOM-killed rather than swapping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_swap: Option<i64>,
    /// `--cpu-shares`: the relative CPU weight (v1 cpu.shares; Docker's default is 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<u64>,
    /// `--cpuset-cpus`: the CPUs the container may run on, as the kernel lists them (`0-1,3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset_cpus: Option<String>,
    /// `--blkio-weight`: the relative block IO weight, 10 to 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blkio_weight: Option<u16>,
    /// `--device-read-bps`: read rate limits per block device.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_read_bps: Vec<DeviceRate>,
    /// `--device-write-bps`: write rate limits per block device.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_write_bps: Vec<DeviceRate>,
}

/// A rate limit on one block device (`--device-read-bps /dev/sda:1mb`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRate {
    /// The device as given.
    pub path: String,
    /// Its major number, found at create ([`Limits::validate`]).
    pub major: u64,
    /// Its minor number.
    pub minor: u64,
    /// Bytes per second.
    pub rate: u64,
}

/// A limit Docker would refuse; the message names the flag and what to give instead.
#[derive(Debug, thiserror::Error)]
#[error("invalid {flag} {value}: {why}")]
pub struct LimitError {
    /// The flag, e.g. `--memory`.
    pub flag: &'static str,
    /// The value as the user would write it.
    pub value: String,
    /// What is wrong and the fix.
    pub why: String,
}

/// Docker's smallest `--memory`; below it a container cannot even start its runtime.
pub const MIN_MEMORY: u64 = 6 << 20;

/// A byte count as the user likely wrote it: `64m`, `1k`, or bytes.
fn size(bytes: u64) -> String {
    match bytes {
        0 => "0".into(),
        b if b % (1 << 30) == 0 => format!("{}g", b >> 30),
        b if b % (1 << 20) == 0 => format!("{}m", b >> 20),
        b if b % (1 << 10) == 0 => format!("{}k", b >> 10),
        b => b.to_string(),
    }
}

/// Parses a kernel CPU list (`0-1,3`) into inclusive ranges; `None` when malformed.
pub fn parse_cpu_list(list: &str) -> Option<Vec<(u32, u32)>> {
    list.trim()
        .split(',')
        .map(|part| {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            let (a, b) = (a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?);
            (a <= b).then_some((a, b))
        })
        .collect()
}

impl Limits {
    /// Checks the limits as Docker does, without looking at the host.
    pub fn check(&self) -> Result<(), LimitError> {
        let err = |flag, value: String, why: String| Err(LimitError { flag, value, why });
        if let Some(m) = self.memory
            && m < MIN_MEMORY
        {
            return err(
                "--memory",
                size(m),
                "the minimum memory limit allowed is 6MB; give -m 6m or more".into(),
            );
        }
        match (self.memory_swap, self.memory) {
            (None | Some(0), _) | (Some(-1), Some(_)) => {}
            (Some(s), None) => {
                return err("--memory-swap", swap(s), "it is the total of memory and swap, so it needs --memory too; add -m, e.g. -m 64m".into());
            }
            (Some(s), Some(m)) if s < -1 || (s as u64) < m => {
                return err(
                    "--memory-swap",
                    swap(s),
                    format!(
                        "it is the total of memory and swap and must be at least --memory {}; give --memory-swap {} or more, or -1 for unlimited swap",
                        size(m),
                        size(m)
                    ),
                );
            }
            _ => {}
        }
        if let Some(c) = self.cpus
            && (!c.is_finite() || c < 0.0 || (c > 0.0 && c < 0.01))
        {
            return err(
                "--cpus",
                c.to_string(),
                "give a number of CPUs of at least 0.01, or 0 for no limit".into(),
            );
        }
        if let Some(w) = self.blkio_weight
            && w != 0
            && !(10..=1000).contains(&w)
        {
            return err("--blkio-weight", w.to_string(), "the range of blkio weight is from 10 to 1000 (0 sets none); give e.g. --blkio-weight 500".into());
        }
        if let Some(cpus) = &self.cpuset_cpus
            && parse_cpu_list(cpus).is_none()
        {
            return err(
                "--cpuset-cpus",
                format!("{cpus:?}"),
                "give CPU numbers and ranges such as 0-1 or 0,2".into(),
            );
        }
        Ok(())
    }

    /// Checks the limits at create: [`Limits::check`], then against this host (the CPUs of
    /// `--cpuset-cpus` are online), and finds the device numbers of `--device-*-bps`.
    pub fn validate(&mut self) -> Result<(), LimitError> {
        self.check()?;
        #[cfg(target_os = "linux")]
        if let Some(cpus) = &self.cpuset_cpus
            && let Ok(online) = std::fs::read_to_string("/sys/devices/system/cpu/online")
            && let (Some(want), Some(have)) = (parse_cpu_list(cpus), parse_cpu_list(&online))
            && !want
                .iter()
                .all(|w| have.iter().any(|h| h.0 <= w.0 && w.1 <= h.1))
        {
            let online = online.trim();
            return Err(LimitError {
                flag: "--cpuset-cpus",
                value: cpus.clone(),
                why: format!(
                    "requested CPUs are not available (this host has {online}); give CPUs from {online}"
                ),
            });
        }
        for (flag, rates) in [
            ("--device-read-bps", &mut self.device_read_bps),
            ("--device-write-bps", &mut self.device_write_bps),
        ] {
            for r in rates.iter_mut() {
                (r.major, r.minor) = block_device(flag, r)?;
            }
        }
        Ok(())
    }

    /// These limits with `extra` bytes more memory (and memory plus swap), for a runtime that
    /// needs room of its own beside the workload's.
    pub fn with_headroom(&self, extra: u64) -> Limits {
        Limits {
            memory: self.memory.map(|m| m + extra),
            memory_swap: self
                .memory_swap
                .map(|s| if s > 0 { s + extra as i64 } else { s }),
            ..self.clone()
        }
    }
}

/// `--memory-swap`'s value as the user wrote it.
fn swap(s: i64) -> String {
    if s < 0 { s.to_string() } else { size(s as u64) }
}

/// The (major, minor) of a `--device-*-bps` device, which must be a block device.
fn block_device(flag: &'static str, r: &DeviceRate) -> Result<(u64, u64), LimitError> {
    device_numbers(&r.path).map_err(|why| LimitError {
        flag,
        value: format!("{}:{}", r.path, size(r.rate)),
        why,
    })
}

#[cfg(unix)]
fn device_numbers(path: &str) -> Result<(u64, u64), String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(path).map_err(|e| {
        format!("cannot stat {path}: {e}; give a block device such as /dev/sda (see /sys/block)")
    })?;
    if !meta.file_type().is_block_device() {
        return Err(format!(
            "{path} is not a block device; give one such as /dev/sda (see /sys/block)"
        ));
    }
    let dev = meta.rdev();
    Ok((rustix::fs::major(dev) as u64, rustix::fs::minor(dev) as u64))
}

#[cfg(not(unix))]
fn device_numbers(_path: &str) -> Result<(u64, u64), String> {
    Err("block device limits need Linux cgroups; run without --device-read-bps and --device-write-bps".into())
}

/// The network a workload gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// A network namespace of its own with loopback only (a container recorded before bridge
    /// networks; builds' RUN steps with `--network none` get [`NetworkMode::None`]).
    #[default]
    Private,
    /// A network namespace of its own on a bridge network (`run`'s default, Docker's
    /// `bridge`): see [`WorkloadSpec::bridge`].
    Bridge,
    /// A network namespace of its own with loopback only and no route out, as Docker's `none`.
    None,
    /// The host's network.
    Host,
}

/// Which bridge network a workload joins, and how (`--network NAME --ip --network-alias`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeRequest {
    /// The network's name.
    pub network: String,
    /// `--ip`.
    #[serde(default)]
    pub ip: Option<std::net::Ipv4Addr>,
    /// `--network-alias`.
    #[serde(default)]
    pub aliases: Vec<String>,
}

impl Default for BridgeRequest {
    fn default() -> Self {
        BridgeRequest {
            network: "bridge".into(),
            ip: None,
            aliases: Vec::new(),
        }
    }
}

/// A container's place on a bridge network, recorded with the container when it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The network's name.
    pub network: String,
    /// The network's id.
    pub network_id: String,
    /// The container's address.
    pub ip: std::net::Ipv4Addr,
    /// The subnet's prefix length.
    pub prefix: u8,
    /// Its default route.
    pub gateway: std::net::Ipv4Addr,
    /// The MAC address of its `eth0` (Docker's: 02:42 and the address).
    pub mac: String,
    /// The bridge its veth is on.
    pub bridge: String,
    /// Its interface in the container: `eth0` for the network it started on, `eth1`… for
    /// the ones `network connect` added.
    #[serde(default = "Endpoint::first_interface")]
    pub interface: String,
    /// The names other containers on the network find it by, beside its own
    /// (`--network-alias`).
    #[serde(default)]
    pub aliases: Vec<String>,
}

impl Endpoint {
    /// The MAC as bytes: Docker's, 02:42 and the IPv4 address.
    pub fn mac_bytes(&self) -> [u8; 6] {
        let o = self.ip.octets();
        [0x02, 0x42, o[0], o[1], o[2], o[3]]
    }

    /// The MAC of the address `ip`, as `inspect` shows it.
    pub fn mac_text(ip: std::net::Ipv4Addr) -> String {
        let o = ip.octets();
        format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
    }

    fn first_interface() -> String {
        "eth0".into()
    }

    /// Whether the container's default route goes through this endpoint (its first one).
    pub fn is_default_route(&self) -> bool {
        self.interface == "eth0"
    }

    /// The host's end of container `id`'s veth on network `network_id`: named for both, so
    /// a start finds (and removes) one that a killed start left.
    pub fn host_veth(id: &str, network_id: &str) -> String {
        use sha2::Digest;
        let hash = sha2::Sha256::digest(format!("{id}/{network_id}"));
        format!("veth{}", &hex::encode(hash)[..11])
    }
}

/// Security settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Security {
    /// `--cap-add` names.
    pub cap_add: Vec<String>,
    /// `--cap-drop` names.
    pub cap_drop: Vec<String>,
    /// `--privileged`: every capability, no seccomp, devices and /sys writable.
    pub privileged: bool,
    /// The default seccomp filter (off with `--security-opt seccomp=unconfined`).
    pub seccomp: bool,
    /// A seccomp profile of the caller's (a bundle's `linux.seccomp`), in place of the default
    /// filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp_profile: Option<oci_spec::runtime::LinuxSeccomp>,
    /// Paths hidden from the workload, when the caller names them (a bundle's
    /// `linux.maskedPaths`); `None`: Docker's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masked_paths: Option<Vec<String>>,
    /// Paths made read-only, when the caller names them (`linux.readonlyPaths`); `None`:
    /// Docker's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readonly_paths: Option<Vec<String>>,
    /// no_new_privs (always on unless privileged; `--security-opt no-new-privileges=false`).
    pub no_new_privs: bool,
    /// `--userns`: a user namespace mapping container root to an unprivileged host range.
    pub userns: bool,
}

impl Default for Security {
    fn default() -> Self {
        Security {
            cap_add: Vec::new(),
            cap_drop: Vec::new(),
            privileged: false,
            seccomp: true,
            seccomp_profile: None,
            masked_paths: None,
            readonly_paths: None,
            no_new_privs: true,
            userns: false,
        }
    }
}

impl WorkloadSpec {
    /// The value of an environment variable.
    pub fn env_var(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .rev()
            .find_map(|kv| kv.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
    }

    /// Sets an environment variable, replacing an earlier value.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env
            .retain(|kv| kv.split_once('=').map_or(kv.as_str(), |p| p.0) != key);
        self.env.push(format!("{key}={value}"));
    }

    /// The limits its cgroup gets: a WASI workload's `--memory` bounds the guest's linear
    /// memory, and the engine beside it needs [`crate::sandbox::wasi::RUNTIME_HEADROOM`] more.
    pub fn cgroup_limits(&self) -> Limits {
        match self.backend {
            Backend::Wasi => self
                .limits
                .with_headroom(crate::sandbox::wasi::RUNTIME_HEADROOM),
            _ => self.limits.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn refused(l: Limits) -> String {
        l.check().unwrap_err().to_string()
    }

    #[test]
    fn limits_are_checked_like_docker() {
        let ok = |l: Limits| l.check().unwrap();
        ok(Limits {
            memory: Some(MIN_MEMORY),
            memory_swap: Some(-1),
            ..Default::default()
        });
        ok(Limits {
            memory: Some(64 * MIB),
            memory_swap: Some(64 * MIB as i64),
            blkio_weight: Some(0),
            cpuset_cpus: Some("0-1,3".into()),
            ..Default::default()
        });
        assert_eq!(
            refused(Limits {
                memory: Some(1024),
                ..Default::default()
            }),
            "invalid --memory 1k: the minimum memory limit allowed is 6MB; give -m 6m or more"
        );
        assert_eq!(
            refused(Limits {
                memory_swap: Some(128 * MIB as i64),
                ..Default::default()
            }),
            "invalid --memory-swap 128m: it is the total of memory and swap, so it needs --memory too; add -m, e.g. -m 64m"
        );
        assert_eq!(
            refused(Limits {
                memory: Some(64 * MIB),
                memory_swap: Some(10 * MIB as i64),
                ..Default::default()
            }),
            "invalid --memory-swap 10m: it is the total of memory and swap and must be at least --memory 64m; give --memory-swap 64m or more, or -1 for unlimited swap"
        );
        assert!(
            refused(Limits {
                memory: Some(64 * MIB),
                memory_swap: Some(-2),
                ..Default::default()
            })
            .starts_with("invalid --memory-swap -2: ")
        );
        for cpus in [0.001, f64::NAN, -1.0] {
            assert!(
                refused(Limits {
                    cpus: Some(cpus),
                    ..Default::default()
                })
                .starts_with(&format!("invalid --cpus {cpus}: "))
            );
        }
        for w in [5, 1001] {
            assert!(
                refused(Limits {
                    blkio_weight: Some(w),
                    ..Default::default()
                })
                .starts_with(&format!(
                    "invalid --blkio-weight {w}: the range of blkio weight is from 10 to 1000"
                ))
            );
        }
        for bad in ["", "a", "1-0", "0,", "-1"] {
            assert!(
                refused(Limits {
                    cpuset_cpus: Some(bad.into()),
                    ..Default::default()
                })
                .starts_with("invalid --cpuset-cpus "),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn cpu_lists_parse_as_the_kernel_prints_them() {
        assert_eq!(parse_cpu_list("0-1,3\n"), Some(vec![(0, 1), (3, 3)]));
        assert_eq!(parse_cpu_list("7"), Some(vec![(7, 7)]));
        assert_eq!(parse_cpu_list("2-1"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn validate_checks_the_host() {
        let mut l = Limits {
            cpuset_cpus: Some("100000".into()),
            ..Default::default()
        };
        let e = l.validate().unwrap_err().to_string();
        assert!(
            e.starts_with("invalid --cpuset-cpus 100000: requested CPUs are not available"),
            "{e}"
        );
        let mut l = Limits {
            cpuset_cpus: Some("0".into()),
            device_write_bps: vec![DeviceRate {
                path: "/etc/passwd".into(),
                rate: MIB,
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            l.validate().unwrap_err().to_string(),
            "invalid --device-write-bps /etc/passwd:1m: /etc/passwd is not a block device; give one such as /dev/sda (see /sys/block)"
        );
        // A block device of this host, if it shows any: its numbers are found.
        let Some(dev) = std::fs::read_dir("/sys/block")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| std::path::Path::new("/dev").join(e.file_name()))
            .find(|p| p.exists())
        else {
            return;
        };
        let want = std::fs::read_to_string(
            std::path::Path::new("/sys/block")
                .join(dev.file_name().unwrap())
                .join("dev"),
        )
        .unwrap();
        let mut l = Limits {
            device_read_bps: vec![DeviceRate {
                path: dev.to_string_lossy().into_owned(),
                rate: MIB,
                ..Default::default()
            }],
            ..Default::default()
        };
        l.validate().unwrap();
        let r = &l.device_read_bps[0];
        assert_eq!(format!("{}:{}", r.major, r.minor), want.trim());
    }

    #[test]
    fn headroom_is_added_to_memory_and_swap() {
        let l = Limits {
            memory: Some(64 * MIB),
            memory_swap: Some(128 * MIB as i64),
            pids: Some(5),
            ..Default::default()
        };
        let h = l.with_headroom(MIB);
        assert_eq!(
            (h.memory, h.memory_swap, h.pids),
            (Some(65 * MIB), Some(129 * MIB as i64), Some(5))
        );
        let unlimited = Limits {
            memory_swap: Some(-1),
            ..Default::default()
        };
        assert_eq!(unlimited.with_headroom(MIB), unlimited);
        let spec = WorkloadSpec {
            limits: l.clone(),
            backend: Backend::Wasi,
            ..Default::default()
        };
        assert_eq!(
            spec.cgroup_limits().memory,
            Some(64 * MIB + crate::sandbox::wasi::RUNTIME_HEADROOM)
        );
        let native = WorkloadSpec {
            limits: l.clone(),
            ..Default::default()
        };
        assert_eq!(native.cgroup_limits(), l);
    }

    #[test]
    fn old_state_without_the_new_fields_loads() {
        let l: Limits =
            serde_json::from_str(r#"{"memory":33554432,"cpus":0.5,"pids":null}"#).unwrap();
        assert_eq!(
            l,
            Limits {
                memory: Some(32 * MIB),
                cpus: Some(0.5),
                ..Default::default()
            }
        );
    }
}
