//! An OCI runtime bundle's `config.json` (what containerd hands a shim) read into berth's
//! [`WorkloadSpec`], and the placement only a bundle gives: namespaces to join by path (a pod's
//! network namespace) and the cgroup path (`linux.cgroupsPath`).
//!
//! What berth makes itself is not taken from the spec: the system mounts (`/proc`, `/dev`,
//! `/sys` and their children). The spec's masked and read-only paths are kept (Docker's when
//! it names none), and its seccomp profile is compiled as it is (`seccomp_profile`); no profile
//! means no filter, as with runc.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::backend::Backend;
use crate::sandbox::linux::capabilities::DOCKER_DEFAULT;
use crate::sandbox::linux::init::NamespacePath;
use crate::workload::{MountKind, MountSpec, NetworkMode, Security, WorkloadSpec};

/// Why a bundle cannot run.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// `config.json` is missing or not a runtime spec.
    #[error("reading the bundle's config.json at {path}: {cause}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        cause: String,
    },
    /// Something the spec asks for that berth does not do.
    #[error("the bundle's config.json {0}")]
    Unsupported(String),
}

/// A bundle's workload and where it goes.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// What to run.
    pub spec: WorkloadSpec,
    /// Namespaces joined by path.
    pub join: Vec<NamespacePath>,
    /// `linux.cgroupsPath`, when given.
    pub cgroup_path: Option<String>,
    /// The spec's annotations (the image's wasm markers among them).
    pub annotations: Vec<(String, String)>,
    /// The root filesystem's folder, as the spec names it (relative to the bundle).
    pub root: PathBuf,
}

/// Destinations berth mounts itself; a spec's mounts there are left to it.
const SYSTEM_MOUNTS: &[&str] = &["/proc", "/dev", "/sys"];

impl Bundle {
    /// Reads `config.json` in the bundle folder `dir`.
    pub fn load(dir: &Path) -> Result<Bundle, BundleError> {
        let path = dir.join("config.json");
        let spec = Spec::load(&path).map_err(|e| BundleError::Read {
            path: path.clone(),
            cause: e.to_string(),
        })?;
        Bundle::of(&spec)
    }

    /// The bundle a spec describes.
    pub fn of(oci: &Spec) -> Result<Bundle, BundleError> {
        let process = oci
            .process()
            .as_ref()
            .ok_or_else(|| BundleError::Unsupported("has no process to run".into()))?;
        let mut spec = WorkloadSpec {
            args: process.args().clone().unwrap_or_default(),
            env: process.env().clone().unwrap_or_default(),
            cwd: process.cwd().display().to_string(),
            user: format!("{}:{}", process.user().uid(), process.user().gid()),
            hostname: oci.hostname().clone().unwrap_or_default(),
            tty: process.terminal().unwrap_or(false),
            read_only: oci
                .root()
                .as_ref()
                .and_then(|r| r.readonly())
                .unwrap_or(false),
            security: security(oci),
            backend: Backend::Native,
            ..WorkloadSpec::default()
        };
        if spec.args.is_empty() {
            return Err(BundleError::Unsupported(
                "has no process.args: give the command to run".into(),
            ));
        }
        let sec = &spec.security;
        for (field, paths) in [
            ("maskedPaths", &sec.masked_paths),
            ("readonlyPaths", &sec.readonly_paths),
        ] {
            for p in paths.iter().flatten() {
                let clean = p.starts_with('/')
                    && Path::new(p)
                        .components()
                        .all(|c| !matches!(c, std::path::Component::ParentDir));
                if !clean {
                    return Err(BundleError::Unsupported(format!(
                        "linux.{field} has {p:?}: give absolute paths without `..`"
                    )));
                }
            }
        }
        // A profile berth cannot compile is refused at create, not at the workload's start.
        if let Some(p) = &spec.security.seccomp_profile {
            crate::sandbox::linux::seccomp_profile::compile(p)
                .map_err(|e| BundleError::Unsupported(format!("linux.seccomp: {e}")))?;
        }
        spec.mounts = mounts(oci);
        let linux = oci.linux().as_ref();
        let namespaces = linux
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default();
        let mut join = Vec::new();
        let mut own_net = false;
        for ns in &namespaces {
            let kind = match ns.typ() {
                LinuxNamespaceType::Network => "network",
                LinuxNamespaceType::Ipc => "ipc",
                LinuxNamespaceType::Uts => "uts",
                LinuxNamespaceType::Pid => "pid",
                LinuxNamespaceType::User if ns.path().is_none() => {
                    spec.security.userns = true;
                    continue;
                }
                other => {
                    if let Some(p) = ns.path() {
                        return Err(BundleError::Unsupported(format!(
                            "asks to join the {other} namespace {}, which berth cannot: only network, ipc, uts and pid namespaces can be joined",
                            p.display()
                        )));
                    }
                    continue;
                }
            };
            match ns.path() {
                Some(p) => join.push(NamespacePath {
                    kind: kind.into(),
                    path: p.clone(),
                }),
                None if kind == "network" => own_net = true,
                None => {}
            }
        }
        let joins_net = join.iter().any(|n| n.kind == "network");
        // No network namespace in the spec: the host's network, as runc does.
        spec.network = if own_net || joins_net {
            NetworkMode::Private
        } else {
            NetworkMode::Host
        };
        if let Some(r) = linux.and_then(|l| l.resources().as_ref()) {
            limits(&mut spec, r);
        }
        Ok(Bundle {
            spec,
            join,
            cgroup_path: linux
                .and_then(|l| l.cgroups_path().as_ref())
                .map(|p| p.display().to_string())
                .filter(|p| !p.is_empty()),
            annotations: oci
                .annotations()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            root: oci
                .root()
                .as_ref()
                .map(|r| r.path().clone())
                .unwrap_or_else(|| PathBuf::from("rootfs")),
        })
    }
}

/// The spec's capabilities as additions to and removals from Docker's default set; its seccomp
/// and no_new_privs.
fn security(oci: &Spec) -> Security {
    let process = oci.process().as_ref();
    let caps: Vec<String> = process
        .and_then(|p| p.capabilities().as_ref())
        .and_then(|c| c.bounding().clone())
        .map(|set| {
            set.iter()
                .map(|c| c.to_string().trim_start_matches("CAP_").to_string())
                .collect()
        })
        .unwrap_or_default();
    let has = |name: &str| caps.iter().any(|c| c == name);
    Security {
        cap_add: caps
            .iter()
            .filter(|c| !DOCKER_DEFAULT.contains(&c.as_str()))
            .cloned()
            .collect(),
        cap_drop: DOCKER_DEFAULT
            .iter()
            .filter(|c| !has(c))
            .map(|c| c.to_string())
            .collect(),
        privileged: false,
        seccomp: false,
        seccomp_profile: oci.linux().as_ref().and_then(|l| l.seccomp().clone()),
        masked_paths: oci.linux().as_ref().and_then(|l| l.masked_paths().clone()),
        readonly_paths: oci
            .linux()
            .as_ref()
            .and_then(|l| l.readonly_paths().clone()),
        no_new_privs: process.and_then(|p| p.no_new_privileges()).unwrap_or(false),
        userns: false,
    }
}

/// The spec's mounts but the system ones berth makes: binds (and containerd's `rbind`) and
/// tmpfs.
fn mounts(oci: &Spec) -> Vec<MountSpec> {
    let under_system = |d: &str| {
        SYSTEM_MOUNTS
            .iter()
            .any(|s| d == *s || d.strip_prefix(s).is_some_and(|r| r.starts_with('/')))
    };
    oci.mounts()
        .clone()
        .unwrap_or_default()
        .iter()
        .filter_map(|m| {
            let destination = m.destination().display().to_string();
            if under_system(&destination) {
                return None;
            }
            let options = m.options().clone().unwrap_or_default();
            let read_only = options.iter().any(|o| o == "ro");
            let bind = m.typ().as_deref() == Some("bind")
                || options.iter().any(|o| o == "bind" || o == "rbind");
            let kind = if bind {
                MountKind::Bind
            } else if m.typ().as_deref() == Some("tmpfs") {
                MountKind::Tmpfs
            } else {
                return None;
            };
            Some(MountSpec {
                kind,
                source: m.source().clone().unwrap_or_default(),
                destination,
                read_only,
                volume: None,
                populate: false,
            })
        })
        .collect()
}

/// The spec's memory, CPU and pids limits.
fn limits(spec: &mut WorkloadSpec, r: &oci_spec::runtime::LinuxResources) {
    if let Some(m) = r.memory() {
        spec.limits.memory = m.limit().filter(|l| *l > 0).map(|l| l as u64);
        spec.limits.memory_swap = m.swap().filter(|s| *s != 0);
    }
    if let Some(c) = r.cpu() {
        if let (Some(q), Some(p)) = (c.quota(), c.period())
            && q > 0
            && p > 0
        {
            spec.limits.cpus = Some(q as f64 / p as f64);
        }
        spec.limits.cpu_shares = c.shares().filter(|s| *s > 0);
        spec.limits.cpuset_cpus = c.cpus().clone().filter(|s| !s.is_empty());
    }
    if let Some(p) = r.pids() {
        spec.limits.pids = Some(p.limit()).filter(|l| *l > 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Spec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_pods_container_joins_its_network_and_keeps_its_cgroup_path() {
        let b = Bundle::of(&spec(
            r#"{"ociVersion":"1.0.2","root":{"path":"rootfs","readonly":true},
            "process":{"args":["/pause"],"env":["PATH=/bin"],"cwd":"/","user":{"uid":65535,"gid":65535},
              "capabilities":{"bounding":["CAP_CHOWN","CAP_SYS_ADMIN"]}},
            "mounts":[{"destination":"/proc","type":"proc","source":"proc"},
              {"destination":"/dev/shm","type":"tmpfs","source":"shm"},
              {"destination":"/etc/hosts","type":"bind","source":"/var/lib/x/hosts","options":["rbind","ro"]},
              {"destination":"/data","type":"tmpfs","source":"tmpfs"}],
            "linux":{"cgroupsPath":"/kubepods/besteffort/pod1/abc",
              "namespaces":[{"type":"pid"},{"type":"network","path":"/var/run/netns/cni-1"},{"type":"mount"}],
              "resources":{"memory":{"limit":67108864},"cpu":{"quota":50000,"period":100000},"pids":{"limit":64}}}}"#,
        ))
        .unwrap();
        assert_eq!(b.spec.args, ["/pause"]);
        assert_eq!(b.spec.user, "65535:65535");
        assert!(b.spec.read_only);
        assert_eq!(b.spec.network, NetworkMode::Private);
        assert_eq!(b.join.len(), 1);
        assert_eq!(b.join[0].path, Path::new("/var/run/netns/cni-1"));
        assert_eq!(
            b.cgroup_path.as_deref(),
            Some("/kubepods/besteffort/pod1/abc")
        );
        assert_eq!(b.spec.limits.memory, Some(64 << 20));
        assert_eq!(b.spec.limits.cpus, Some(0.5));
        assert_eq!(b.spec.limits.pids, Some(64));
        assert_eq!(b.spec.security.cap_add, ["SYS_ADMIN"]);
        assert!(b.spec.security.cap_drop.iter().any(|c| c == "KILL"));
        let dests: Vec<_> = b
            .spec
            .mounts
            .iter()
            .map(|m| m.destination.as_str())
            .collect();
        assert_eq!(dests, ["/etc/hosts", "/data"]);
        assert!(b.spec.mounts[0].read_only);
    }

    #[test]
    fn masked_and_read_only_paths_are_kept_and_a_path_out_of_the_root_is_refused() {
        let with = |linux: &str| {
            Bundle::of(&spec(&format!(
                r#"{{"ociVersion":"1.0.2","process":{{"args":["true"],"cwd":"/","user":{{"uid":0,"gid":0}}}},"linux":{linux}}}"#
            )))
        };
        let b = with(r#"{"maskedPaths":["/proc/kcore","/secret"],"readonlyPaths":["/proc/sys"]}"#)
            .unwrap();
        assert_eq!(
            b.spec.security.masked_paths.as_deref(),
            Some(&["/proc/kcore".to_string(), "/secret".to_string()][..])
        );
        assert_eq!(
            b.spec.security.readonly_paths.as_deref(),
            Some(&["/proc/sys".to_string()][..])
        );
        // None named: Docker's lists, which the rootfs applies.
        let b = with("{}").unwrap();
        assert_eq!(b.spec.security.masked_paths, None);
        for hostile in [
            r#"{"maskedPaths":["/proc/../../etc"]}"#,
            r#"{"readonlyPaths":["relative"]}"#,
        ] {
            let e = with(hostile).unwrap_err().to_string();
            assert!(e.contains("give absolute paths without `..`"), "{e}");
        }
    }

    #[test]
    fn no_network_namespace_is_the_hosts_network_and_a_mount_namespace_path_is_refused() {
        let b = Bundle::of(&spec(
            r#"{"ociVersion":"1.0.2","process":{"args":["true"],"cwd":"/","user":{"uid":0,"gid":0}},
            "linux":{"namespaces":[{"type":"pid"}]}}"#,
        ))
        .unwrap();
        assert_eq!(b.spec.network, NetworkMode::Host);
        let e = Bundle::of(&spec(
            r#"{"ociVersion":"1.0.2","process":{"args":["true"],"cwd":"/","user":{"uid":0,"gid":0}},
            "linux":{"namespaces":[{"type":"mount","path":"/proc/1/ns/mnt"}]}}"#,
        ))
        .unwrap_err();
        assert!(
            e.to_string().contains("only network, ipc, uts and pid"),
            "{e}"
        );
        let e = Bundle::of(&spec(
            r#"{"ociVersion":"1.0.2","process":{"args":[],"cwd":"/","user":{"uid":0,"gid":0}}}"#,
        ))
        .unwrap_err();
        assert!(e.to_string().contains("process.args"), "{e}");
    }
}
