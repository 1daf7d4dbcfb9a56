//! Making a container from an image and Docker's `run`/`create` options: the image config
//! gives the defaults (Entrypoint, Cmd, Env, WorkingDir, User, ExposedPorts, Volumes,
//! StopSignal) and the options override them as Docker's do.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::Utc;

use super::state::{Container, RunState, new_id, new_name};
use super::store::ContainerError;
use crate::backend::{self, Backend};
use crate::image::{Image, ImageError};
use crate::store::Store;
use crate::volume::VolumeError;
use crate::workload::{Limits, MountKind, MountSpec, NetworkMode, Security, WorkloadSpec};

/// The options of `berth run` and `berth create` that shape a container.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// `--name`.
    pub name: Option<String>,
    /// The command after the image name.
    pub command: Vec<String>,
    /// `--entrypoint` (an empty string clears the image's).
    pub entrypoint: Option<String>,
    /// `-e`/`--env-file` entries, `KEY=VALUE`.
    pub env: Vec<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-u`.
    pub user: Option<String>,
    /// `--hostname`.
    pub hostname: Option<String>,
    /// `-v` specs.
    pub volumes: Vec<String>,
    /// `--mount` specs.
    pub mounts: Vec<String>,
    /// `--tmpfs` paths.
    pub tmpfs: Vec<String>,
    /// `-p` specs.
    pub publish: Vec<String>,
    /// `-P`.
    pub publish_all: bool,
    /// `--network`.
    pub network: NetworkMode,
    /// With a bridge network: which, `--ip`, `--network-alias`.
    pub bridge: crate::workload::BridgeRequest,
    /// `--dns`.
    pub dns: Vec<String>,
    /// `--dns-search`.
    pub dns_search: Vec<String>,
    /// `-t`.
    pub tty: bool,
    /// `-i`.
    pub stdin: bool,
    /// `--rm`.
    pub auto_remove: bool,
    /// `--read-only`.
    pub read_only: bool,
    /// `--init`.
    pub init: bool,
    /// Security options.
    pub security: Security,
    /// Limits.
    pub limits: Limits,
    /// `--stop-signal`.
    pub stop_signal: Option<String>,
    /// `--stop-timeout`.
    pub stop_timeout: Option<u64>,
    /// `--label`.
    pub labels: BTreeMap<String, String>,
    /// `--add-host`.
    pub extra_hosts: Vec<String>,
    /// `--runtime`: the backend that runs it, when not chosen from the image.
    pub runtime: Option<Backend>,
    /// `--log-driver` and `--log-opt`.
    pub log_config: super::log::LogConfig,
    /// `--isolation` (always WASI's where there is no Linux).
    pub isolation: super::state::Isolation,
}

/// Why a container could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// An option is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The image is unusable.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// A volume could not be made.
    #[error(transparent)]
    Volume(#[from] VolumeError),
    /// The container store failed.
    #[error(transparent)]
    Container(#[from] ContainerError),
}

fn invalid(s: impl Into<String>) -> CreateError {
    CreateError::Invalid(s.into())
}

/// Where a `-v` mount comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSource {
    /// A host path, as given (`/data`, `./data`, `C:\data`).
    Host(String),
    /// A named volume.
    Named(String),
    /// A new anonymous volume.
    Anonymous,
}

/// A `-v` value, parsed and checked but not acted on (no volume or folder made yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeFlag {
    /// What is mounted.
    pub source: VolumeSource,
    /// Where, cleaned (`/data`, never `/` or a kernel mount point).
    pub destination: String,
    /// `:ro`.
    pub read_only: bool,
    /// `:nocopy`: an empty volume is not filled from the image.
    pub nocopy: bool,
}

impl std::fmt::Display for VolumeFlag {
    /// The `-v` value that parses back to this (an anonymous volume's options cannot be
    /// written: `-v /data:ro` names /data as a host path).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            VolumeSource::Host(s) | VolumeSource::Named(s) => write!(f, "{s}:")?,
            VolumeSource::Anonymous => {}
        }
        f.write_str(&self.destination)?;
        let opts: Vec<&str> = [(self.read_only, "ro"), (self.nocopy, "nocopy")]
            .into_iter()
            .filter_map(|(on, o)| on.then_some(o))
            .collect();
        if !opts.is_empty() {
            write!(f, ":{}", opts.join(","))?;
        }
        Ok(())
    }
}

/// Whether `name` can name a volume, a container or a server: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn valid_volume_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// The files of `/proc` a bind mount may cover (runc's list, for lxcfs and its kind).
const PROC_FILES_ALLOWED: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/net/dev",
];

/// Checks and cleans a mount's container path (`flag` and `spec` name it in errors): absolute,
/// `.` and `..` resolved, and not `/` (it would replace the rootfs) nor where the kernel's
/// file systems are mounted (`/proc` and what is in it, `/sys`, `/dev`, `/dev/pts`), which
/// would undo the container's masked paths, as Docker refuses them.
pub fn clean_destination(flag: &str, spec: &str, dst: &str) -> Result<String, CreateError> {
    if !dst.starts_with('/') {
        return Err(invalid(format!(
            "invalid {flag} {spec:?}: the container path {dst:?} must be absolute, e.g. /data"
        )));
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in dst.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let clean = format!("/{}", parts.join("/"));
    if clean == "/" {
        return Err(invalid(format!(
            "invalid {flag} {spec:?}: the destination can't be '/' (it would replace the container's root filesystem); mount below it, e.g. /data"
        )));
    }
    let under = |root: &str| clean == root || clean.starts_with(&format!("{root}/"));
    let kernel = if under("/proc") && !PROC_FILES_ALLOWED.contains(&clean.as_str()) {
        Some("proc")
    } else if clean == "/sys" {
        Some("sysfs")
    } else if clean == "/dev" || under("/dev/pts") {
        Some("devices")
    } else {
        None
    };
    if let Some(what) = kernel {
        return Err(invalid(format!(
            "invalid {flag} {spec:?}: {clean} is where the container's {what} file system is mounted, which no mount may replace; choose another container path"
        )));
    }
    Ok(clean)
}

/// Parses `-v SPEC`: `HOST:CTR[:OPTS]` (HOST a path), `NAME:CTR[:OPTS]` (a named volume) or
/// `CTR` (an anonymous volume); OPTS are `ro`/`rw`, `nocopy`, and SELinux's `z`/`Z` and
/// `private`/`rprivate` propagation, which change nothing here.
pub fn parse_volume_flag(spec: &str) -> Result<VolumeFlag, CreateError> {
    // A Windows host path starts with a drive (`C:\data:/data`): its colon is not a separator.
    // Elsewhere `c:/data` is the volume `c` at /data.
    let drive = cfg!(windows)
        && spec.len() > 2
        && spec.as_bytes()[0].is_ascii_alphabetic()
        && spec.as_bytes()[1] == b':'
        && matches!(spec.as_bytes()[2], b'\\' | b'/');
    let mut parts: Vec<&str> = spec[if drive { 2 } else { 0 }..].split(':').collect();
    if drive {
        parts[0] = &spec[..2 + parts[0].len()];
    }
    let (src, dst, opts) = match parts.as_slice() {
        [dst] => (None, *dst, ""),
        [src, dst] => (Some(*src), *dst, ""),
        [src, dst, opts] => (Some(*src), *dst, *opts),
        _ => {
            return Err(invalid(format!(
                "invalid -v {spec:?}: expected HOST_PATH:CONTAINER_PATH[:ro], NAME:CONTAINER_PATH[:ro] or CONTAINER_PATH"
            )));
        }
    };
    let destination = clean_destination("-v", spec, dst)?;
    let (mut read_only, mut nocopy) = (false, false);
    for o in opts.split(',') {
        match o {
            "ro" | "readonly" => read_only = true,
            "nocopy" => nocopy = true,
            "" | "rw" | "z" | "Z" | "rprivate" | "private" => {}
            other => {
                return Err(invalid(format!(
                    "invalid -v {spec:?}: unknown option {other:?} (use ro, rw or nocopy)"
                )));
            }
        }
    }
    let source = match src {
        None => VolumeSource::Anonymous,
        Some(s) if s.starts_with('/') || s.starts_with('.') || s.starts_with('~') || drive => {
            VolumeSource::Host(s.to_string())
        }
        Some(name) if valid_volume_name(name) => VolumeSource::Named(name.to_string()),
        Some(name) => {
            return Err(invalid(format!(
                "invalid -v {spec:?}: {name:?} is neither an absolute host path nor a volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)"
            )));
        }
    };
    Ok(VolumeFlag {
        source,
        destination,
        read_only,
        nocopy,
    })
}

/// A `--mount` value, parsed and checked but not acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountFlag {
    /// `bind`, `volume` or `tmpfs`.
    pub kind: MountKind,
    /// `source=`: the host path (bind) or the volume's name (none for an anonymous volume).
    pub source: Option<String>,
    /// `target=`, cleaned.
    pub target: String,
    /// `readonly`.
    pub read_only: bool,
    /// `volume-nocopy`.
    pub nocopy: bool,
}

impl std::fmt::Display for MountFlag {
    /// The `--mount` value that parses back to this.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            MountKind::Bind => "bind",
            MountKind::Volume => "volume",
            MountKind::Tmpfs => "tmpfs",
        };
        write!(f, "type={kind}")?;
        if let Some(s) = &self.source {
            write!(f, ",source={s}")?;
        }
        write!(f, ",target={}", self.target)?;
        if self.read_only {
            f.write_str(",readonly")?;
        }
        if self.nocopy {
            f.write_str(",volume-nocopy")?;
        }
        Ok(())
    }
}

/// A boolean of a `--mount` field, as Go's `strconv.ParseBool` (Docker's) reads it.
fn mount_bool(spec: &str, key: &str, v: &str) -> Result<bool, CreateError> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(invalid(format!(
            "invalid --mount {spec:?}: {key}={v:?} is not a boolean (use {key}, {key}=true or {key}=false)"
        ))),
    }
}

/// Parses `--mount type=bind|volume|tmpfs,source=…,target=…[,readonly][,volume-nocopy]`.
pub fn parse_mount_flag(spec: &str) -> Result<MountFlag, CreateError> {
    let mut kind = "volume";
    let (mut source, mut target, mut read_only, mut nocopy) = (None, None, false, false);
    for field in spec.split(',') {
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (field, None),
        };
        match (k, v) {
            ("type", Some(v)) => kind = v,
            ("source" | "src", Some(v)) => source = Some(v.to_string()),
            ("target" | "destination" | "dst", Some(v)) => target = Some(v.to_string()),
            ("readonly" | "ro", v) => read_only = mount_bool(spec, k, v.unwrap_or("true"))?,
            ("volume-nocopy", v) => nocopy = mount_bool(spec, k, v.unwrap_or("true"))?,
            // What berth does anyway: private propagation; consistency is for macOS.
            ("bind-propagation", Some("rprivate" | "private"))
            | ("consistency", Some("default" | "consistent" | "cached" | "delegated")) => {}
            ("tmpfs-size" | "tmpfs-mode" | "bind-propagation" | "consistency", _) => {
                return Err(invalid(format!(
                    "invalid --mount {spec:?}: berth does not support {field:?} (a tmpfs has mode 1777 and no size limit, a bind is private); drop it"
                )));
            }
            _ => {
                return Err(invalid(format!(
                    "invalid --mount {spec:?}: unknown field {field:?} (use type=, source=, target=, readonly, volume-nocopy)"
                )));
            }
        }
    }
    let target =
        target.ok_or_else(|| invalid(format!("invalid --mount {spec:?}: target= is required")))?;
    let target = clean_destination("--mount", spec, &target)?;
    let kind = match kind {
        "bind" => MountKind::Bind,
        "volume" => MountKind::Volume,
        "tmpfs" => MountKind::Tmpfs,
        other => {
            return Err(invalid(format!(
                "invalid --mount {spec:?}: type {other:?} is not bind, volume or tmpfs"
            )));
        }
    };
    match (kind, &source) {
        (MountKind::Bind, None) => Err(invalid(format!(
            "invalid --mount {spec:?}: a bind mount needs source="
        ))),
        (MountKind::Bind, Some(s)) if !s.starts_with('/') => Err(invalid(format!(
            "invalid --mount {spec:?}: a bind mount's source {s:?} must be an absolute host path"
        ))),
        (MountKind::Volume, Some(name)) if !valid_volume_name(name) => Err(invalid(format!(
            "invalid --mount {spec:?}: invalid volume name {name:?} (use [a-zA-Z0-9][a-zA-Z0-9_.-]*, or type=bind for a host path)"
        ))),
        (MountKind::Tmpfs, Some(_)) => Err(invalid(format!(
            "invalid --mount {spec:?}: a tmpfs mount takes no source="
        ))),
        (MountKind::Bind | MountKind::Tmpfs, _) if nocopy => Err(invalid(format!(
            "invalid --mount {spec:?}: volume-nocopy is for type=volume"
        ))),
        _ => Ok(MountFlag {
            kind,
            source,
            target,
            read_only,
            nocopy,
        }),
    }
}

/// Parses `--tmpfs PATH[:OPTIONS]`; the options may say what berth does anyway (`rw` or `ro`,
/// `nosuid`, `nodev`, `exec`, `mode=1777`), nothing else: a size or owner berth would not
/// apply is refused rather than ignored. Returns the cleaned path and whether it is read-only.
pub fn parse_tmpfs_flag(spec: &str) -> Result<(String, bool), CreateError> {
    let (path, opts) = spec.split_once(':').unwrap_or((spec, ""));
    let path = clean_destination("--tmpfs", spec, path)?;
    let mut read_only = false;
    for o in opts.split(',') {
        match o {
            "ro" => read_only = true,
            "" | "rw" | "nosuid" | "nodev" | "exec" | "mode=1777" => {}
            other => {
                return Err(invalid(format!(
                    "invalid --tmpfs {spec:?}: berth does not support the option {other:?} (a tmpfs is mounted rw or ro, nosuid, nodev, mode=1777, with no size limit); drop it"
                )));
            }
        }
    }
    Ok((path, read_only))
}

/// Parses `--add-host NAME:IP` (or Docker's newer `NAME=IP`, and `[IPv6]`) into the
/// `NAME:IP` form the container's `/etc/hosts` is written from.
pub fn parse_extra_host(spec: &str) -> Result<String, CreateError> {
    let Some((name, ip)) = spec.split_once('=').or_else(|| spec.split_once(':')) else {
        return Err(invalid(format!(
            "invalid --add-host {spec:?}: expected HOST:IP, e.g. db:10.0.0.5"
        )));
    };
    if !valid_hostname(name, 253, true) {
        return Err(invalid(format!(
            "invalid --add-host {spec:?}: {name:?} is not a valid host name (letters, digits, '-', '_' and '.')"
        )));
    }
    let bare = ip
        .strip_prefix('[')
        .and_then(|i| i.strip_suffix(']'))
        .unwrap_or(ip);
    match bare.parse::<std::net::IpAddr>() {
        Ok(addr) => Ok(format!("{name}:{addr}")),
        Err(_) => Err(invalid(format!(
            "invalid argument {spec:?} for \"--add-host\" flag: invalid IP address in add-host: {ip:?} (give HOST:IP, e.g. db:10.0.0.5)"
        ))),
    }
}

/// Whether `name` is an RFC 1123 host name of at most `max` bytes: dot-separated labels of
/// letters, digits and inner hyphens (and underscores when `underscore`), each 1 to 63 long.
pub fn valid_hostname(name: &str, max: usize, underscore: bool) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || (underscore && b == b'_'))
        })
}

/// Makes what a parsed `-v` needs (the host folder, as Docker creates it; the volume) and
/// returns the mount.
fn volume_flag_mount(store: &Store, v: &VolumeFlag) -> Result<MountSpec, CreateError> {
    let mut m = match &v.source {
        VolumeSource::Host(s) => {
            let spec = v.to_string();
            let path = std::path::absolute(s).map_err(|e| invalid(format!("-v {spec:?}: {e}")))?;
            if !path.exists() {
                std::fs::create_dir_all(&path).map_err(|e| {
                    invalid(format!("-v {spec:?}: creating {}: {e}", path.display()))
                })?;
            }
            MountSpec {
                kind: MountKind::Bind,
                source: path,
                destination: v.destination.clone(),
                read_only: v.read_only,
                volume: None,
                populate: false,
            }
        }
        VolumeSource::Named(name) => volume_mount(store, name, &v.destination, v.read_only, false)?,
        VolumeSource::Anonymous => {
            volume_mount(store, &new_id(), &v.destination, v.read_only, true)?
        }
    };
    m.populate &= !v.nocopy;
    Ok(m)
}

fn volume_mount(
    store: &Store,
    name: &str,
    dst: &str,
    read_only: bool,
    anonymous: bool,
) -> Result<MountSpec, CreateError> {
    let v = store.create_volume(name, anonymous)?;
    Ok(MountSpec {
        kind: MountKind::Volume,
        source: v.mountpoint,
        destination: dst.to_string(),
        read_only,
        volume: Some(name.to_string()),
        populate: true,
    })
}

/// Makes what a parsed `--mount` needs and returns the mount.
fn mount_flag_mount(store: &Store, m: &MountFlag) -> Result<MountSpec, CreateError> {
    match m.kind {
        MountKind::Bind => {
            let src = m.source.clone().unwrap_or_default();
            let path = PathBuf::from(&src);
            // Unlike -v, --mount does not create the host path, as Docker's.
            if !path.exists() {
                return Err(invalid(format!(
                    "invalid --mount {m}: bind source path does not exist: {src}"
                )));
            }
            Ok(MountSpec {
                kind: MountKind::Bind,
                source: std::path::absolute(&path).unwrap_or(path),
                destination: m.target.clone(),
                read_only: m.read_only,
                volume: None,
                populate: false,
            })
        }
        MountKind::Volume => {
            let mut spec = match &m.source {
                Some(name) => volume_mount(store, name, &m.target, m.read_only, false)?,
                None => volume_mount(store, &new_id(), &m.target, m.read_only, true)?,
            };
            spec.populate &= !m.nocopy;
            Ok(spec)
        }
        MountKind::Tmpfs => Ok(tmpfs_mount(&m.target, m.read_only)),
    }
}

fn tmpfs_mount(destination: &str, read_only: bool) -> MountSpec {
    MountSpec {
        kind: MountKind::Tmpfs,
        source: PathBuf::new(),
        destination: destination.to_string(),
        read_only,
        volume: None,
        populate: false,
    }
}

/// The mounts of `-v`, `--mount` and `--tmpfs`: every value is parsed and checked (and two
/// mounts on one path refused, as Docker's "duplicate mount point") before anything is made,
/// so a refused one leaves no volume or folder behind.
fn make_mounts(store: &Store, opts: &CreateOptions) -> Result<Vec<MountSpec>, CreateError> {
    let volumes: Vec<VolumeFlag> = opts
        .volumes
        .iter()
        .map(|v| parse_volume_flag(v))
        .collect::<Result<_, _>>()?;
    let mounts: Vec<MountFlag> = opts
        .mounts
        .iter()
        .map(|m| parse_mount_flag(m))
        .collect::<Result<_, _>>()?;
    let tmpfs: Vec<(String, bool)> = opts
        .tmpfs
        .iter()
        .map(|t| parse_tmpfs_flag(t))
        .collect::<Result<_, _>>()?;
    let mut seen = std::collections::BTreeSet::new();
    let destinations = volumes
        .iter()
        .map(|v| &v.destination)
        .chain(mounts.iter().map(|m| &m.target))
        .chain(tmpfs.iter().map(|t| &t.0));
    for d in destinations {
        if !seen.insert(d.clone()) {
            return Err(invalid(format!(
                "duplicate mount point: {d} is the container path of two of -v, --mount and --tmpfs; keep one"
            )));
        }
    }
    let mut out = Vec::new();
    let made = volumes
        .iter()
        .map(|v| volume_flag_mount(store, v))
        .chain(mounts.iter().map(|m| mount_flag_mount(store, m)))
        .try_for_each(|m| m.map(|m| out.push(m)));
    if let Err(e) = made {
        remove_anonymous_volumes(store, &out);
        return Err(e);
    }
    out.extend(tmpfs.iter().map(|(p, ro)| tmpfs_mount(p, *ro)));
    Ok(out)
}

/// Checks `-u USER[:GROUP]`: each part a name (`[A-Za-z0-9_.][A-Za-z0-9_.-]*`, a trailing `$`
/// allowed) or a number that is a valid id (below 4294967295).
fn check_user(user: &str) -> Result<(), CreateError> {
    let valid = |part: &str| {
        if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
            return part.parse::<u32>().is_ok_and(|n| n != u32::MAX);
        }
        let name = part.strip_suffix('$').unwrap_or(part);
        !name.is_empty()
            && name.len() <= 256
            && !name.starts_with('-')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    };
    let ok = match user.split_once(':') {
        Some((u, g)) => valid(u) && valid(g),
        None => valid(user),
    };
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "invalid -u/--user {user:?}: expected USER[:GROUP], each a name or a numeric id below 4294967295, e.g. -u 1000:1000"
        )))
    }
}

/// Checks `--network`, `--ip`, `--network-alias` and `--dns` (the network must exist, as on
/// Docker; the default one is made here on first use).
fn check_network(store: &Store, opts: &CreateOptions) -> Result<(), CreateError> {
    for d in &opts.dns {
        if d.parse::<std::net::IpAddr>().is_err() {
            return Err(invalid(format!(
                "invalid --dns {d:?}: give a resolver's IP address, e.g. --dns 192.0.2.53"
            )));
        }
    }
    if opts.network != NetworkMode::Bridge {
        if opts.bridge.ip.is_some() || !opts.bridge.aliases.is_empty() {
            return Err(invalid(
                "--ip and --network-alias need a bridge network (--network bridge)",
            ));
        }
        return Ok(());
    }
    #[cfg(target_os = "linux")]
    {
        let network = crate::network::bridge::load(store, &opts.bridge.network)
            .map_err(|e| invalid(e.to_string()))?;
        if let Some(ip) = opts.bridge.ip
            && (!network.subnet.contains(&ip) || ip == network.gateway)
        {
            return Err(invalid(format!(
                "--ip {ip} is not a host address of network {} ({}, gateway {})",
                network.name, network.subnet, network.gateway
            )));
        }
        if network.name == crate::network::bridge::DEFAULT
            && (opts.bridge.ip.is_some() || !opts.bridge.aliases.is_empty())
        {
            return Err(invalid(
                "--ip and --network-alias are only for user-defined networks, as on Docker: make one with `berth network create NAME` and run with --network NAME",
            ));
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = store;
    Ok(())
}

/// Checks the options that need neither the store nor the image, and puts `-e` and
/// `--add-host` into `spec`.
fn check_options(opts: &CreateOptions, spec: &mut WorkloadSpec) -> Result<(), CreateError> {
    if let Some(w) = &opts.workdir
        && !w.starts_with('/')
    {
        return Err(invalid(format!(
            "invalid -w/--workdir {w:?}: the working directory must be an absolute path, e.g. -w /app"
        )));
    }
    if !spec.cwd.starts_with('/') {
        return Err(invalid(format!(
            "the image's working directory {:?} is not an absolute path; give one with -w",
            spec.cwd
        )));
    }
    for kv in &opts.env {
        match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => spec.set_env(k, v),
            _ => {
                return Err(invalid(format!(
                    "invalid environment variable: {kv} (-e takes KEY=VALUE, or KEY to pass this shell's value)"
                )));
            }
        }
    }
    if let Some(name) = &opts.name
        && !valid_volume_name(name)
    {
        return Err(invalid(format!(
            "invalid container name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    if let Some(h) = &opts.hostname
        && !valid_hostname(h, 64, false)
    {
        return Err(invalid(format!(
            "invalid -h/--hostname {h:?}: a host name is up to 64 letters, digits, '-' and '.', as RFC 1123 says, e.g. -h web-1"
        )));
    }
    if let Some(u) = &opts.user
        && !u.is_empty()
    {
        check_user(u)?;
    }
    spec.extra_hosts = opts
        .extra_hosts
        .iter()
        .map(|h| parse_extra_host(h))
        .collect::<Result<_, _>>()?;
    #[cfg(target_os = "linux")]
    for p in &opts.publish {
        crate::network::ports::parse_publish(p).map_err(|e| invalid(e.to_string()))?;
    }
    #[cfg(not(target_os = "linux"))]
    if !opts.publish.is_empty() || opts.publish_all {
        return Err(invalid(
            "publishing ports (-p, -P) needs Linux network namespaces; this system runs WASI guests on the host network",
        ));
    }
    Ok(())
}

/// Removes the anonymous volumes of `mounts` (made for a container that was then refused).
fn remove_anonymous_volumes(store: &Store, mounts: &[MountSpec]) {
    for m in mounts {
        if let Some(v) = &m.volume
            && store.volume(v).is_ok_and(|v| v.anonymous)
        {
            let _ = store.remove_volume(v, true);
        }
    }
}

/// The command a container of `image` runs: `--entrypoint` and the command given, else the
/// image's.
fn command(
    image: &Image,
    image_name: &str,
    opts: &CreateOptions,
    rc: &crate::image::config::RunConfig,
) -> Result<Vec<String>, CreateError> {
    let entrypoint: Vec<String> = match &opts.entrypoint {
        Some(e) if e.is_empty() => Vec::new(),
        Some(e) => vec![e.clone()],
        None => rc.entrypoint.clone().unwrap_or_default(),
    };
    // A command given on the command line replaces the image's; so does --entrypoint.
    let cmd: Vec<String> = if !opts.command.is_empty() {
        opts.command.clone()
    } else if opts.entrypoint.is_some() {
        Vec::new()
    } else {
        rc.cmd.clone().unwrap_or_default()
    };
    let mut args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    // An image of bare wasm layers (other wasm tooling's) runs its module by default.
    if args.is_empty() && image.has_wasm_layer() {
        args.push(crate::image::layer::WASM_LAYER_PATH.to_string());
    }
    if args.is_empty() {
        return Err(invalid(format!(
            "no command specified: image {image_name} has no Cmd or Entrypoint; give a command after the image name"
        )));
    }
    Ok(args)
}

/// Makes and records a container of `image` (named `image_name` by the user).
pub fn create_container(
    store: &Store,
    image: &Image,
    image_name: &str,
    opts: &CreateOptions,
) -> Result<Container, CreateError> {
    let rc = image.config.config.clone().unwrap_or_default();
    let mut spec = WorkloadSpec {
        args: command(image, image_name, opts, &rc)?,
        env: rc.env.clone().unwrap_or_default(),
        cwd: opts
            .workdir
            .clone()
            .or(rc.working_dir.clone())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into()),
        user: opts.user.clone().or(rc.user.clone()).unwrap_or_default(),
        hostname: String::new(),
        mounts: Vec::new(),
        limits: opts.limits.clone(),
        network: opts.network,
        tty: opts.tty,
        stdin: opts.stdin,
        read_only: opts.read_only,
        security: opts.security.clone(),
        init: opts.init,
        extra_hosts: Vec::new(),
        bridge: opts.bridge.clone(),
        dns: opts.dns.clone(),
        dns_search: opts.dns_search.clone(),
        backend: Backend::Native,
        backend_forced: opts.runtime.is_some(),
    };
    // Everything that can be refused is checked before volumes are made; once they are, a
    // failure removes the anonymous ones again.
    spec.limits.validate().map_err(|e| invalid(e.to_string()))?;
    check_network(store, opts)?;
    check_options(opts, &mut spec)?;
    spec.mounts = make_mounts(store, opts)?;
    let made = record_container(store, image, image_name, opts, &rc, &mut spec);
    if made.is_err() {
        remove_anonymous_volumes(store, &spec.mounts);
    }
    made
}

/// Adds the image's volumes and ports to `spec` and records the container.
fn record_container(
    store: &Store,
    image: &Image,
    image_name: &str,
    opts: &CreateOptions,
    rc: &crate::image::config::RunConfig,
    spec: &mut WorkloadSpec,
) -> Result<Container, CreateError> {
    // The layers are unpacked first: the backend is decided from the entrypoint's bytes in
    // them when the image does not say.
    for layer in image.layers()? {
        store.ensure_snapshot(&layer)?;
    }
    let hints = backend::ImageHints::of_image(image);
    let header = hints
        .needs_program_header(opts.runtime)
        .then(|| {
            let top_first = store.snapshots_top_first(&image.config.rootfs.diff_ids);
            backend::program_header(&top_first, spec)
        })
        .flatten();
    let evidence = backend::Evidence {
        forced: opts.runtime,
        program_header: header.as_deref(),
    };
    spec.backend = backend::decide(image_name, &hints, evidence).map_err(invalid)?;
    if opts.isolation == super::state::Isolation::Wasi && spec.backend == Backend::Native {
        return Err(invalid(format!(
            "image {image_name} is a native image, which needs Linux namespaces: drop --isolation wasi"
        )));
    }
    if !spec.backend.available() {
        return Err(invalid(if spec.backend == Backend::Native {
            format!(
                "image {image_name} is a native Linux image: running it needs Linux (namespaces and cgroups); here berth runs WASI images (os wasip1/wasip2, arch wasm)"
            )
        } else {
            format!(
                "this build of berth cannot run {} workloads on this system; image {image_name} needs the {} runtime",
                spec.backend, spec.backend
            )
        }));
    }
    // The image's VOLUMEs get anonymous volumes unless something is mounted there.
    for path in rc.volumes.clone().unwrap_or_default().into_keys() {
        if !spec.mounts.iter().any(|m| m.destination == path) {
            spec.mounts
                .push(volume_mount(store, &new_id(), &path, false, true)?);
        }
    }
    // Shallow mounts first, so `-v a:/x/y -v b:/x` does not hide /x/y, as Docker sorts them.
    spec.mounts
        .sort_by_key(|m| m.destination.trim_end_matches('/').matches('/').count());
    let mut publish = opts.publish.clone();
    if opts.network == NetworkMode::Host && !publish.is_empty() {
        tracing::warn!("published ports are discarded when using host network mode");
        publish.clear();
    }
    #[cfg(target_os = "linux")]
    if opts.publish_all && opts.network != NetworkMode::Host {
        let exposed: Vec<String> = rc
            .exposed_ports
            .clone()
            .unwrap_or_default()
            .into_keys()
            .collect();
        for m in crate::network::ports::publish_all(&exposed).map_err(|e| invalid(e.to_string()))? {
            publish.push(format!("{}/{}", m.container_port, m.protocol.as_str()));
        }
    }
    #[cfg(not(target_os = "linux"))]
    if spec.backend == Backend::Native {
        return Err(invalid(format!(
            "image {image_name} is not a WebAssembly image, and native containers need Linux: on this system berth runs WASI images (os wasip1/wasip2, arch wasm)"
        )));
    }
    let id = new_id();
    spec.hostname = opts
        .hostname
        .clone()
        .unwrap_or_else(|| id[..12].to_string());
    let mut labels = rc.labels.clone().unwrap_or_default();
    labels.extend(opts.labels.clone());
    let c = Container {
        id,
        name: opts.name.clone().unwrap_or_else(new_name),
        image: image_name.to_string(),
        image_id: image.id.clone(),
        layers: image.config.rootfs.diff_ids.clone(),
        created: Utc::now(),
        spec: spec.clone(),
        publish,
        ports: Vec::new(),
        auto_remove: opts.auto_remove,
        stop_signal: opts
            .stop_signal
            .clone()
            .or(rc.stop_signal.clone())
            .unwrap_or_else(|| "SIGTERM".into()),
        stop_timeout: opts
            .stop_timeout
            .or(rc.stop_timeout.map(|t| t.max(0) as u64))
            .unwrap_or(10),
        labels,
        log_config: opts.log_config.clone(),
        endpoints: Vec::new(),
        isolation: if cfg!(target_os = "linux") {
            opts.isolation
        } else {
            super::state::Isolation::Wasi
        },
        state: RunState::default(),
    };
    store.create_container(&c)?;
    Ok(c)
}
