//! The flags `berth run` and `berth create` share, as Docker names them, and their mapping to
//! the runtime's create options.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use berth_runtime::backend::Backend;
use berth_runtime::container::create::CreateOptions;
use berth_runtime::workload::{Limits, NetworkMode, Security};
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
    /// Network: none, host, or the default private namespace with loopback ("bridge", "default", "private")
    #[arg(long, alias = "net", default_value = "default")]
    pub network: String,
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
    /// Memory limit (e.g. 512m, 1g)
    #[arg(short, long)]
    pub memory: Option<String>,
    /// Number of CPUs (e.g. 0.5)
    #[arg(long)]
    pub cpus: Option<f64>,
    /// Most processes at once (-1 for unlimited)
    #[arg(long = "pids-limit")]
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
    /// Runtime backend: native or wasi (default: chosen from the image)
    #[arg(long)]
    pub runtime: Option<String>,
    /// When to pull the image: missing, never, always
    #[arg(long, default_value = "missing")]
    pub pull: String,
    /// The image
    pub image: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Parses Docker's memory sizes: a number with an optional b, k, m or g suffix (binary units).
pub fn parse_memory(s: &str) -> Result<u64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix('b')
        .filter(|r| !r.is_empty() && r.chars().last().is_some_and(|c| c.is_ascii_alphabetic()))
        .unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('b') => (&t[..t.len() - 1], 1),
        _ => (t, 1),
    };
    let n: f64 = num.parse().with_context(|| {
        format!(
            "invalid size {s:?}: expected a number with an optional unit b, k, m or g (e.g. 512m)"
        )
    })?;
    let bytes = (n * mult as f64) as u64;
    if bytes < 6 << 20 {
        bail!("minimum memory limit allowed is 6MB (got {s})");
    }
    Ok(bytes)
}

fn read_env_file(path: &PathBuf) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading --env-file {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            if l.contains('=') {
                Some(l.to_string())
            } else {
                std::env::var(l).ok().map(|v| format!("{l}={v}"))
            }
        })
        .collect())
}

impl ContainerFlags {
    /// The runtime's create options for these flags.
    pub fn to_options(&self) -> Result<CreateOptions> {
        let mut env = Vec::new();
        for f in &self.env_file {
            env.extend(read_env_file(f)?);
        }
        for e in &self.env {
            if e.contains('=') {
                env.push(e.clone());
            } else if let Ok(v) = std::env::var(e) {
                // `-e KEY` passes this shell's value, as Docker's.
                env.push(format!("{e}={v}"));
            }
        }
        let network = match self.network.as_str() {
            "default" | "bridge" | "private" => NetworkMode::Private,
            "none" => NetworkMode::None,
            "host" => NetworkMode::Host,
            other => bail!("unsupported --network {other:?}: use default, none or host"),
        };
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
            tty: self.tty,
            stdin: self.interactive,
            auto_remove: self.rm,
            read_only: self.read_only,
            init: self.init,
            security,
            limits: Limits {
                memory: self.memory.as_deref().map(parse_memory).transpose()?,
                cpus: match self.cpus {
                    Some(c) if c <= 0.0 => bail!("invalid --cpus {c}: must be more than 0"),
                    c => c,
                },
                pids: self.pids_limit.filter(|p| *p > 0),
            },
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
        assert!(parse_memory("1k").is_err(), "below Docker's minimum");
        assert!(parse_memory("lots").is_err());
    }
}
