//! The flags `berth run` and `berth create` share, as Docker names them, and their mapping to
//! the runtime's create options.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use berth_runtime::backend::Backend;
use berth_runtime::container::Isolation;
use berth_runtime::container::create::CreateOptions;
use berth_runtime::container::log::LogConfig;
use berth_runtime::workload::{DeviceRate, Limits, NetworkMode, Security};
use clap::Args;

/// Flags shared by `run` and `create`.
#[derive(Debug, Args, Clone)]
pub struct ContainerFlags {
    /// Print help (-h is --hostname, as in Docker)
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables (KEY=VALUE, or KEY to pass this shell's value)
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Read environment variables from a file of KEY=VALUE lines
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Bind mount a host path or mount a volume (HOST:CTR[:ro], NAME:CTR[:ro], CTR)
    #[arg(short, long = "volume", value_name = "SPEC")]
    pub volume: Vec<String>,
    /// Attach a mount (type=bind|volume|tmpfs,source=…,target=…[,readonly])
    #[arg(long = "mount", value_name = "SPEC")]
    pub mount: Vec<String>,
    /// Mount a tmpfs at a path
    #[arg(long = "tmpfs", value_name = "PATH")]
    pub tmpfs: Vec<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// User (name|uid[:group|gid])
    #[arg(short, long)]
    pub user: Option<String>,
    /// Overwrite the image's entrypoint
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// The container's hostname
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Keep stdin open
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal
    #[arg(short, long)]
    pub tty: bool,
    /// Remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Mount the container's root filesystem read-only
    #[arg(long)]
    pub read_only: bool,
    /// Connect to a network: bridge (the default, with NAT out), a user-defined one, host, none, or private (loopback only)
    #[arg(long, alias = "net", value_name = "NETWORK")]
    pub network: Option<String>,
    /// The container's IPv4 address on a user-defined network
    #[arg(long, value_name = "IP")]
    pub ip: Option<std::net::Ipv4Addr>,
    /// A name the container is also found by on a user-defined network
    #[arg(long = "network-alias", alias = "net-alias", value_name = "ALIAS")]
    pub network_alias: Vec<String>,
    /// A DNS server for /etc/resolv.conf instead of the host's
    #[arg(long, value_name = "IP")]
    pub dns: Vec<String>,
    /// A DNS search domain for /etc/resolv.conf
    #[arg(long = "dns-search", value_name = "DOMAIN")]
    pub dns_search: Vec<String>,
    /// Publish a container port on the host ([IP:]HOST:CTR[/tcp|udp])
    #[arg(short, long = "publish", value_name = "SPEC")]
    pub publish: Vec<String>,
    /// Publish every exposed port on a random host port
    #[arg(short = 'P', long)]
    pub publish_all: bool,
    /// Run a minimal init as PID 1 that forwards signals and reaps zombies
    #[arg(long)]
    pub init: bool,
    /// Add Linux capabilities
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Give the container every capability and no seccomp filter
    #[arg(long)]
    pub privileged: bool,
    /// Security options (seccomp=unconfined, no-new-privileges[=false])
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// User namespace: private (container root maps to unprivileged host ids) or host
    #[arg(long)]
    pub userns: Option<String>,
    /// Memory limit (e.g. 512m, 1g; at least 6m)
    #[arg(short, long, value_parser = parse_memory)]
    pub memory: Option<u64>,
    /// Memory plus swap (e.g. 1g; at least --memory, which it needs; -1 for unlimited swap)
    #[arg(long = "memory-swap", value_name = "BYTES", value_parser = parse_memory_swap, allow_negative_numbers = true)]
    pub memory_swap: Option<i64>,
    /// CPU shares: the relative weight against other containers (Docker's default 1024)
    #[arg(short = 'c', long = "cpu-shares", value_name = "SHARES")]
    pub cpu_shares: Option<u64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus", value_name = "CPUS")]
    pub cpuset_cpus: Option<String>,
    /// Block IO weight: the relative weight against other containers, from 10 to 1000 (0 for none)
    #[arg(long = "blkio-weight", value_name = "WEIGHT")]
    pub blkio_weight: Option<u16>,
    /// Limit the read rate from a block device (e.g. /dev/sda:1mb)
    #[arg(long = "device-read-bps", value_name = "PATH:RATE", value_parser = parse_device_rate)]
    pub device_read_bps: Vec<DeviceRate>,
    /// Limit the write rate to a block device (e.g. /dev/sda:1mb)
    #[arg(long = "device-write-bps", value_name = "PATH:RATE", value_parser = parse_device_rate)]
    pub device_write_bps: Vec<DeviceRate>,
    /// Number of CPUs (e.g. 0.5; from 0.01 to the host's CPUs, 0 for no limit)
    #[arg(long, value_parser = parse_cpus)]
    pub cpus: Option<f64>,
    /// Most processes at once (0 or -1 for unlimited)
    #[arg(long = "pids-limit", value_parser = parse_pids_limit, allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    /// Signal to stop the container
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Seconds to wait after the stop signal before killing
    #[arg(long = "stop-timeout")]
    pub stop_timeout: Option<u64>,
    /// Set metadata (KEY=VALUE)
    #[arg(short, long = "label", value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Add a host-to-IP mapping (host:ip)
    #[arg(long = "add-host", value_name = "HOST:IP")]
    pub add_host: Vec<String>,
    /// Logging driver: json-file (the default) or none
    #[arg(long = "log-driver", value_name = "DRIVER")]
    pub log_driver: Option<String>,
    /// Log options: max-size=SIZE (k, m or g; default 20m), max-file=N (default 5): the log
    /// is rotated past max-size and at most max-file files are kept (100 MB by default)
    #[arg(long = "log-opt", value_name = "KEY=VALUE")]
    pub log_opt: Vec<String>,
    /// Runtime backend: native or wasi (default: chosen from the image)
    #[arg(long)]
    pub runtime: Option<String>,
    /// How the container is isolated: default (namespaces and cgroups on Linux), or wasi (a
    /// WASI image in berth's own process, in the foreground, isolated by WASI's capabilities
    /// alone: for hosts without namespaces, such as qemu-user)
    #[arg(long, value_name = "MODE", default_value = "default", value_parser = ["default", "wasi"])]
    pub isolation: String,
    /// When to pull the image: missing, never, always
    #[arg(long, default_value = "missing")]
    pub pull: String,
    /// The image
    pub image: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Parses Docker's memory sizes (`--memory`): a number with an optional unit b, k, m or g
/// (powers of 1024), small enough for the kernel's counters. The limits' checks (Docker's
/// 6 MiB minimum) are the runtime's, at create.
pub fn parse_memory(s: &str) -> Result<u64, String> {
    let too_big =
        || format!("{s} is more memory than a limit can hold; give a size such as 512m or 2g");
    let bytes = parse_size::Config::new()
        .with_binary()
        .parse_size(s.trim())
        .map_err(|e| match e {
            parse_size::Error::PosOverflow => too_big(),
            _ => format!(
                "expected a number with an optional unit b, k, m or g (e.g. 512m), not {s:?}"
            ),
        })?;
    if bytes > i64::MAX as u64 {
        return Err(too_big());
    }
    Ok(bytes)
}

/// Parses `--memory-swap`: a size as `--memory`'s, or -1 for unlimited swap.
pub fn parse_memory_swap(s: &str) -> Result<i64, String> {
    if s.trim() == "-1" {
        return Ok(-1);
    }
    parse_memory(s).map(|b| b as i64)
}

/// Parses `--device-read-bps`/`--device-write-bps` (`/dev/sda:1mb`): a device path and a rate
/// in bytes per second, with an optional unit k, m or g (powers of 1024). The device is
/// looked up at create.
pub fn parse_device_rate(s: &str) -> Result<DeviceRate, String> {
    let usage = || {
        format!(
            "expected DEVICE:RATE, a block device and bytes per second with an optional unit k, m or g (e.g. /dev/sda:1mb), not {s:?}"
        )
    };
    let (path, rate) = s.rsplit_once(':').ok_or_else(usage)?;
    if !path.starts_with('/') {
        return Err(usage());
    }
    let rate = parse_size::Config::new()
        .with_binary()
        .parse_size(rate.trim())
        .map_err(|_| usage())?;
    Ok(DeviceRate {
        path: path.to_string(),
        rate,
        ..DeviceRate::default()
    })
}

/// Parses `--cpus` as Docker checks it: a finite number of CPUs from 0.01 to the CPUs this
/// host gives berth, or 0 for no limit.
pub fn parse_cpus(s: &str) -> Result<f64, String> {
    let host = std::thread::available_parallelism().map_or(1, |n| n.get());
    let range = || {
        format!(
            "Range of CPUs is from 0.01 to {host}.00, as there are only {host} CPUs available (0 sets no limit)"
        )
    };
    let cpus: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of CPUs; {}", range()))?;
    if !cpus.is_finite() || cpus < 0.0 || (cpus > 0.0 && cpus < 0.01) || cpus > host as f64 {
        return Err(range());
    }
    Ok(cpus)
}

/// Parses `--pids-limit`: a positive count, or 0 or -1 for no limit.
pub fn parse_pids_limit(s: &str) -> Result<i64, String> {
    match s.trim().parse::<i64>() {
        Ok(n) if n >= -1 => Ok(n),
        _ => Err(format!(
            "{s:?} is not a process count: give a positive number, or 0 or -1 for no limit"
        )),
    }
}

/// Checks one `-e` value as Docker does: a name is needed before any `=`.
fn check_env(e: &str) -> Result<()> {
    if e.split_once('=').map_or(e, |(k, _)| k).is_empty() {
        bail!(
            "invalid environment variable: {e} (-e takes KEY=VALUE, or KEY to pass this shell's value)"
        );
    }
    Ok(())
}

fn read_env_file(path: &PathBuf) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading --env-file {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let l = line.trim_start();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let name = l.split_once('=').map_or(l, |(k, _)| k);
        if name.is_empty() || name.contains(char::is_whitespace) {
            bail!(
                "invalid --env-file {} line {}: {line:?} needs a variable name without spaces before '=' (KEY=VALUE or KEY)",
                path.display(),
                n + 1
            );
        }
        if l.contains('=') {
            out.push(l.to_string());
        } else if let Ok(v) = std::env::var(l) {
            out.push(format!("{l}={v}"));
        }
    }
    Ok(out)
}

impl ContainerFlags {
    /// The resource limits these flags ask for (0 or -1 meaning none, as Docker's); they are
    /// checked at create.
    fn limits(&self) -> Limits {
        Limits {
            memory: self.memory,
            cpus: self.cpus.filter(|c| *c > 0.0),
            pids: self.pids_limit.filter(|p| *p > 0),
            memory_swap: self.memory_swap.filter(|s| *s != 0),
            cpu_shares: self.cpu_shares.filter(|s| *s > 0),
            cpuset_cpus: self.cpuset_cpus.clone().filter(|c| !c.is_empty()),
            blkio_weight: self.blkio_weight.filter(|w| *w > 0),
            device_read_bps: self.device_read_bps.clone(),
            device_write_bps: self.device_write_bps.clone(),
        }
    }

    /// `--network`: the mode, and the bridge network's name (for the bridge mode).
    fn network_mode(&self) -> Result<(NetworkMode, &str)> {
        let (network, bridge_network) = match self.network.as_deref().unwrap_or("default") {
            // Without nftables the default bridge cannot route out: a container then gets
            // loopback alone, said once, rather than no start (`--network bridge` insists).
            // Bridges are root's: a rootless container keeps loopback alone, as before.
            #[cfg(target_os = "linux")]
            "default" if !nix::unistd::geteuid().is_root() => (NetworkMode::Private, "bridge"),
            #[cfg(target_os = "linux")]
            "default" if !berth_runtime::network::firewall::available() => {
                tracing::warn!(
                    "nftables' `nft` is not installed: the container gets loopback only (install nftables for the bridge network)"
                );
                (NetworkMode::Private, "bridge")
            }
            "default" | "bridge" => (NetworkMode::Bridge, "bridge"),
            "private" => (NetworkMode::Private, "bridge"),
            "none" => (NetworkMode::None, "bridge"),
            "host" => (NetworkMode::Host, "bridge"),
            name if name.starts_with("container:") => bail!(
                "--network container:NAME is not supported yet: use --network bridge and a published port"
            ),
            name => (NetworkMode::Bridge, name),
        };
        #[cfg(not(target_os = "linux"))]
        // Without Linux namespaces a WASI guest uses the host's network, as before bridges.
        let network = if network == NetworkMode::Bridge {
            NetworkMode::Private
        } else {
            network
        };
        Ok((network, bridge_network))
    }

    /// The runtime's create options for these flags.
    pub fn to_options(&self) -> Result<CreateOptions> {
        let mut env = Vec::new();
        for f in &self.env_file {
            env.extend(read_env_file(f)?);
        }
        for e in &self.env {
            check_env(e)?;
            if e.contains('=') {
                env.push(e.clone());
            } else if let Ok(v) = std::env::var(e) {
                // `-e KEY` passes this shell's value, as Docker's.
                env.push(format!("{e}={v}"));
            }
        }
        let (mut network, bridge_network) = self.network_mode()?;
        let isolation = match self.isolation.as_str() {
            "wasi" => Isolation::Wasi,
            _ => Isolation::Namespaces,
        };
        if isolation == Isolation::Wasi || !cfg!(target_os = "linux") {
            if !self.publish.is_empty() || self.publish_all {
                bail!(
                    "a WASI guest without namespaces (--isolation wasi, or any container where there is no Linux) has no network namespace to publish ports from: it is on the host's network; drop -p"
                );
            }
            // No namespace to put a network in: the guest shares the host's.
            if self.network.is_none() {
                network = NetworkMode::Host;
            }
        }
        let mut security = Security {
            cap_add: self.cap_add.clone(),
            cap_drop: self.cap_drop.clone(),
            privileged: self.privileged,
            ..Security::default()
        };
        for opt in &self.security_opt {
            match opt.as_str() {
                "seccomp=unconfined" | "seccomp:unconfined" => security.seccomp = false,
                "no-new-privileges" | "no-new-privileges=true" | "no-new-privileges:true" => {
                    security.no_new_privs = true
                }
                "no-new-privileges=false" | "no-new-privileges:false" => {
                    security.no_new_privs = false
                }
                "apparmor=unconfined" | "label=disable" => {}
                other => bail!(
                    "unsupported --security-opt {other:?}: berth knows seccomp=unconfined and no-new-privileges[=false]"
                ),
            }
        }
        match self.userns.as_deref() {
            None | Some("host") => {}
            Some("private" | "auto" | "remap") => security.userns = true,
            Some(other) => bail!(
                "unsupported --userns {other:?}: use private (container root is an unprivileged range of host ids from /etc/subuid) or host"
            ),
        }
        let mut labels = BTreeMap::new();
        for l in &self.label {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            if k.trim().is_empty() {
                bail!("invalid label {l:?}: empty name (-l takes KEY=VALUE or KEY)");
            }
            labels.insert(k.to_string(), v.to_string());
        }
        #[cfg(target_os = "linux")]
        if let Some(s) = &self.stop_signal
            && !berth_builder::config_edit::valid_signal(s)
        {
            bail!("invalid --stop-signal {s:?}: give a name such as SIGTERM or a number");
        }
        Ok(CreateOptions {
            name: self.name.clone(),
            command: self.command.clone(),
            entrypoint: self.entrypoint.clone(),
            env,
            workdir: self.workdir.clone(),
            user: self.user.clone(),
            hostname: self.hostname.clone(),
            volumes: self.volume.clone(),
            mounts: self.mount.clone(),
            tmpfs: self.tmpfs.clone(),
            publish: self.publish.clone(),
            publish_all: self.publish_all,
            network,
            bridge: berth_runtime::workload::BridgeRequest {
                network: bridge_network.to_string(),
                ip: self.ip,
                aliases: self.network_alias.clone(),
            },
            dns: self.dns.clone(),
            dns_search: self.dns_search.clone(),
            tty: self.tty,
            stdin: self.interactive,
            auto_remove: self.rm,
            read_only: self.read_only,
            init: self.init,
            security,
            limits: self.limits(),
            stop_signal: self.stop_signal.clone(),
            stop_timeout: self.stop_timeout,
            labels,
            extra_hosts: self.add_host.clone(),
            runtime: self
                .runtime
                .as_deref()
                .map(Backend::parse)
                .transpose()
                .map_err(|e| anyhow::anyhow!(e))?,
            log_config: LogConfig::parse(self.log_driver.as_deref(), &self.log_opt)?,
            isolation,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_as_docker() {
        assert_eq!(parse_memory("512m").unwrap(), 512 << 20);
        assert_eq!(parse_memory("1g").unwrap(), 1 << 30);
        assert_eq!(parse_memory("64MB").unwrap(), 64 << 20);
        assert_eq!(parse_memory("10485760").unwrap(), 10 << 20);
        assert_eq!(
            parse_memory("1k").unwrap(),
            1024,
            "the minimum is checked at create"
        );
        assert!(parse_memory("lots").is_err());
        assert!(parse_memory("99999999999g").is_err(), "overflows");
        assert!(parse_memory("9000000000g").is_err(), "past i64");
    }

    #[test]
    fn swap_and_device_rates_as_docker() {
        assert_eq!(parse_memory_swap("-1").unwrap(), -1);
        assert_eq!(parse_memory_swap("128m").unwrap(), 128 << 20);
        assert!(parse_memory_swap("-2").is_err());
        let r = parse_device_rate("/dev/sda:1mb").unwrap();
        assert_eq!((r.path.as_str(), r.rate), ("/dev/sda", 1 << 20));
        assert_eq!(parse_device_rate("/dev/sda:500").unwrap().rate, 500);
        for bad in ["/dev/sda", "sda:1mb", "/dev/sda:fast", "/dev/sda:-1"] {
            let e = parse_device_rate(bad).unwrap_err();
            assert!(e.contains("expected DEVICE:RATE"), "{bad}: {e}");
        }
    }

    #[test]
    fn cpus_in_docker_range() {
        assert_eq!(parse_cpus("0.5").unwrap(), 0.5);
        assert_eq!(parse_cpus("0").unwrap(), 0.0);
        for bad in ["nan", "inf", "-inf", "-1", "0.001", "1e9", "x"] {
            let e = parse_cpus(bad).unwrap_err();
            assert!(e.contains("Range of CPUs is from 0.01"), "{bad}: {e}");
        }
    }
}
