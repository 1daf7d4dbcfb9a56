//! Linux capabilities of a native container: Docker's default set, `--cap-add`/`--cap-drop`
//! with Docker's semantics, and applying the result in the container's init.
//!
//! The init, still root with every capability, must go in this order:
//! 1. [`prepare_uid_change`] when the workload runs as a non-root user, so the permitted set
//!    survives setuid and [`apply`] can still shrink the bounding set (that needs CAP_SETPCAP);
//! 2. setgroups, setgid, setuid;
//! 3. [`apply`]`(&set, uid == 0)`;
//! 4. `seccomp::set_no_new_privs`, `seccomp::install`, execve.
//!
//! For root the kept set is what the workload gets: the bounding, permitted and effective sets.
//! For another user, as Docker, only the bounding set is limited and permitted/effective are
//! empty, so the workload gains capabilities only through setuid-root or file-capability
//! binaries (which no_new_privs also stops). The inheritable and ambient sets are always
//! emptied: Docker does so since CVE-2022-24769, as a non-empty inheritable set lets a non-root
//! workload gain capabilities from files marked inheritable.
//!
//! The syscalls come from rustix (capget/capset, prctl), which needs no allocation, so
//! [`apply`] is safe to call between fork and exec.

use rustix::io::Errno;
use rustix::thread::{CapabilitySet as Bits, CapabilitySets};

/// Docker's default capabilities for a container, without the `CAP_` prefix.
pub const DOCKER_DEFAULT: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// The capabilities a container keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapSet(Bits);

impl CapSet {
    /// No capability at all.
    pub fn empty() -> CapSet {
        CapSet(Bits::empty())
    }

    /// Docker's default set ([`DOCKER_DEFAULT`]).
    pub fn docker_default() -> CapSet {
        CapSet(
            DOCKER_DEFAULT
                .iter()
                .filter_map(|n| parse(n))
                .fold(Bits::empty(), |a, b| a | b),
        )
    }

    /// Every capability berth knows (`--privileged`, `--cap-add ALL`); [`apply`] leaves out
    /// those the running kernel does not have.
    pub fn all() -> CapSet {
        CapSet(known())
    }

    /// Whether the set holds the named capability (any case, with or without `CAP_`).
    pub fn contains(&self, name: &str) -> bool {
        parse(name).is_some_and(|c| self.0.contains(c))
    }

    /// How many capabilities the set holds.
    pub fn len(&self) -> usize {
        self.0.bits().count_ones() as usize
    }

    /// Whether the set holds no capability.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The set as the bitmask `/proc/PID/status` shows (`CapBnd`, `CapEff`…).
    pub fn mask(&self) -> u64 {
        self.0.bits()
    }

    pub(crate) fn bits(&self) -> Bits {
        self.0
    }
}

impl Default for CapSet {
    fn default() -> Self {
        CapSet::docker_default()
    }
}

/// What can go wrong with capabilities.
#[derive(Debug, thiserror::Error)]
pub enum CapError {
    /// A `--cap-add` or `--cap-drop` name that is no capability.
    #[error(
        "unknown capability {name:?} in {flag}: use a name from capabilities(7) such as NET_ADMIN or CAP_NET_ADMIN, or ALL"
    )]
    Unknown {
        /// `--cap-add` or `--cap-drop`.
        flag: &'static str,
        /// The name as given.
        name: String,
    },
    /// The bounding set must shrink but this process may no longer do it.
    #[error(
        "dropping capabilities from the bounding set needs CAP_SETPCAP, which this process no longer has: for a non-root user call capabilities::prepare_uid_change before setuid"
    )]
    NoSetpcap,
    /// A capability syscall failed.
    #[error("{action}: {cause}")]
    Syscall {
        /// What was being done.
        action: String,
        /// The kernel's answer.
        cause: std::io::Error,
    },
}

fn syscall_err(action: impl Into<String>) -> impl FnOnce(Errno) -> CapError {
    move |e| CapError::Syscall {
        action: action.into(),
        cause: e.into(),
    }
}

/// Every named capability (rustix's set also has unnamed bits, so `Bits::all()` is too wide).
fn known() -> Bits {
    Bits::from_bits_retain(!0)
        .iter_names()
        .fold(Bits::empty(), |a, (_, b)| a | b)
}

/// One capability from a user's spelling: any case, with or without `CAP_`.
fn parse(name: &str) -> Option<Bits> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    if bare.is_empty() {
        return None;
    }
    Bits::from_name(bare).filter(|b| b.bits().count_ones() == 1)
}

/// The capabilities named in one flag's values, and whether `ALL` was among them.
fn parse_list(names: &[String], flag: &'static str) -> Result<(bool, Bits), CapError> {
    let mut all = false;
    let mut bits = Bits::empty();
    for name in names {
        if name.trim().eq_ignore_ascii_case("ALL") {
            all = true;
        } else {
            bits |= parse(name).ok_or_else(|| CapError::Unknown {
                flag,
                name: name.clone(),
            })?;
        }
    }
    Ok((all, bits))
}

/// The set a container keeps, from `--cap-add`, `--cap-drop` and `--privileged`, as Docker
/// computes it: privileged keeps everything; `--cap-add ALL` keeps everything but the drops;
/// `--cap-drop ALL` keeps only the adds; otherwise the default set minus the drops plus the
/// adds (a name in both is kept).
pub fn resolve(add: &[String], drop: &[String], privileged: bool) -> Result<CapSet, CapError> {
    // Names are checked even when privileged, so a typo is reported rather than ignored.
    let (add_all, adds) = parse_list(add, "--cap-add")?;
    let (drop_all, drops) = parse_list(drop, "--cap-drop")?;
    let bits = if privileged {
        known()
    } else if add_all {
        known() - drops
    } else if drop_all {
        adds
    } else {
        (CapSet::docker_default().0 - drops) | adds
    };
    Ok(CapSet(bits))
}

/// The names in the set, `CAP_`-prefixed, in the kernel's order (for `inspect`).
pub fn names(set: &CapSet) -> Vec<String> {
    set.0
        .iter_names()
        .map(|(n, _)| format!("CAP_{n}"))
        .collect()
}

/// The capabilities in `set` that this process cannot pass on, because its own bounding set
/// lacks them (a berth running in a restricted container) or the kernel does not know them.
/// [`apply`] silently leaves them out; call this in the parent to warn or refuse.
pub fn unavailable(set: &CapSet) -> Vec<String> {
    set.0
        .iter_names()
        .filter(|(_, c)| !rustix::thread::capability_is_in_bounding_set(*c).unwrap_or(false))
        .map(|(n, _)| format!("CAP_{n}"))
        .collect()
}

/// Keeps the permitted set across the coming setuid to a non-root user (PR_SET_KEEPCAPS), so
/// [`apply`] can still drop from the bounding set afterwards. Cleared again by execve.
pub fn prepare_uid_change() -> Result<(), CapError> {
    rustix::thread::set_keep_capabilities(true).map_err(syscall_err("setting PR_SET_KEEPCAPS"))
}

/// Limits this process to `set`, in the container's init just before it execs (after setuid,
/// see the module docs): drops everything else from the bounding set, empties the ambient and
/// inheritable sets, and sets permitted and effective to `set` when `user_is_root`, else to
/// nothing. Capabilities this process does not hold itself are left out.
pub fn apply(set: &CapSet, user_is_root: bool) -> Result<(), CapError> {
    let current =
        rustix::thread::capabilities(None).map_err(syscall_err("reading capabilities"))?;

    // Which bounding-set members must go; the loop stops at the kernel's last capability,
    // where PR_CAPBSET_READ answers EINVAL.
    let mut to_drop = Bits::empty();
    for bit in 0..64 {
        let cap = Bits::from_bits_retain(1 << bit);
        match rustix::thread::capability_is_in_bounding_set(cap) {
            Ok(true) if !set.0.contains(cap) => to_drop |= cap,
            Ok(_) => {}
            Err(Errno::INVAL) => break,
            Err(e) => return Err(syscall_err("reading the bounding set")(e)),
        }
    }

    if !to_drop.is_empty() {
        if !current.permitted.contains(Bits::SETPCAP) {
            return Err(CapError::NoSetpcap);
        }
        // After setuid with keepcaps the effective set is empty: raise it to the permitted
        // one so CAP_SETPCAP is in force for PR_CAPBSET_DROP.
        rustix::thread::set_capabilities(
            None,
            CapabilitySets {
                effective: current.permitted,
                permitted: current.permitted,
                inheritable: current.inheritable,
            },
        )
        .map_err(syscall_err("raising the effective capabilities"))?;
        for (name, cap) in to_drop.iter_names() {
            rustix::thread::remove_capability_from_bounding_set(cap).map_err(syscall_err(
                format!("dropping CAP_{name} from the bounding set"),
            ))?;
        }
        // Bits without a name in rustix (capabilities newer than it) go too.
        for bit in 0..64 {
            let cap = Bits::from_bits_retain(1 << bit);
            if to_drop.contains(cap) && (known() & cap).is_empty() {
                rustix::thread::remove_capability_from_bounding_set(cap).map_err(syscall_err(
                    format!("dropping capability {bit} from the bounding set"),
                ))?;
            }
        }
    }

    // EINVAL: a kernel without ambient capabilities (before 4.3) has none to clear.
    match rustix::thread::clear_ambient_capability_set() {
        Ok(()) | Err(Errno::INVAL) => {}
        Err(e) => return Err(syscall_err("clearing the ambient capabilities")(e)),
    }

    let keep = if user_is_root {
        set.0 & current.permitted
    } else {
        Bits::empty()
    };
    rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: keep,
            permitted: keep,
            inheritable: Bits::empty(),
        },
    )
    .map_err(syscall_err(
        "setting the permitted and effective capabilities",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn set(v: &[&str]) -> Vec<String> {
        let mut n: Vec<String> = v.iter().map(|x| format!("CAP_{x}")).collect();
        n.sort();
        n
    }

    fn sorted(c: &CapSet) -> Vec<String> {
        let mut n = names(c);
        n.sort();
        n
    }

    #[test]
    fn resolve_table() {
        let default = set(DOCKER_DEFAULT);
        let without = |gone: &[&str]| -> Vec<String> {
            let gone = set(gone);
            default
                .iter()
                .filter(|n| !gone.contains(n))
                .cloned()
                .collect()
        };
        let with = |more: &[&str]| -> Vec<String> {
            let mut v = default.clone();
            v.extend(set(more));
            v.sort();
            v
        };
        let all = names(&CapSet::all());
        let all_but = |gone: &[&str]| -> Vec<String> {
            let gone = set(gone);
            let mut v: Vec<String> = all.iter().filter(|n| !gone.contains(n)).cloned().collect();
            v.sort();
            v
        };
        let mut all_sorted = all.clone();
        all_sorted.sort();

        type Case<'a> = (&'a [&'a str], &'a [&'a str], bool, Vec<String>);
        let cases: Vec<Case> = vec![
            (&[], &[], false, default.clone()),
            (&["NET_ADMIN"], &[], false, with(&["NET_ADMIN"])),
            (&["net_admin"], &[], false, with(&["NET_ADMIN"])),
            (&["CAP_SYS_ADMIN"], &[], false, with(&["SYS_ADMIN"])),
            (&["cap_sys_ptrace"], &[], false, with(&["SYS_PTRACE"])),
            (
                &[],
                &["NET_RAW", "chown"],
                false,
                without(&["NET_RAW", "CHOWN"]),
            ),
            (&[], &["CAP_MKNOD"], false, without(&["MKNOD"])),
            (
                &["NET_BIND_SERVICE"],
                &["ALL"],
                false,
                set(&["NET_BIND_SERVICE"]),
            ),
            (&[], &["all"], false, vec![]),
            (&["ALL"], &[], false, all_sorted.clone()),
            (&["ALL"], &["SYS_ADMIN"], false, all_but(&["SYS_ADMIN"])),
            (&["ALL"], &["ALL"], false, all_sorted.clone()),
            // A name both added and dropped is kept, as in Docker.
            (&["CHOWN"], &["CHOWN"], false, default.clone()),
            (&[], &["CHOWN"], true, all_sorted.clone()),
            (&[], &[], true, all_sorted.clone()),
        ];
        for (add, drop, privileged, want) in cases {
            let got = resolve(&s(add), &s(drop), privileged).unwrap();
            assert_eq!(
                sorted(&got),
                want,
                "add {add:?} drop {drop:?} privileged {privileged}"
            );
        }
    }

    #[test]
    fn resolve_rejects_unknown_names() {
        let e = resolve(&s(&["NET_ADMN"]), &[], false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--cap-add") && e.contains("\"NET_ADMN\""), "{e}");
        let e = resolve(&[], &s(&["CAP_"]), false).unwrap_err().to_string();
        assert!(e.contains("--cap-drop") && e.contains("\"CAP_\""), "{e}");
        let e = resolve(&[], &s(&["CAP_FOO"]), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--cap-drop") && e.contains("CAP_FOO"), "{e}");
        assert!(resolve(&s(&[""]), &[], false).is_err());
    }

    #[test]
    fn set_basics() {
        let d = CapSet::default();
        assert_eq!(d.len(), DOCKER_DEFAULT.len());
        assert!(d.contains("chown") && d.contains("CAP_KILL") && !d.contains("SYS_ADMIN"));
        assert!(!d.contains("nonsense"));
        assert_eq!(CapSet::all().len(), 41);
        assert_eq!(CapSet::all().mask(), (1 << 41) - 1);
        assert!(CapSet::empty().is_empty());
        assert_eq!(
            names(&resolve(&[], &s(&["ALL"]), false).unwrap()),
            Vec::<String>::new()
        );
        // Kernel order: CHOWN is bit 0, DAC_OVERRIDE bit 1.
        assert_eq!(names(&d)[..2], ["CAP_CHOWN", "CAP_DAC_OVERRIDE"]);
    }

    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    /// The `Cap*` lines of /proc/self/status of `program` run after `pre` in the child.
    fn status_of_child(
        pre: impl FnMut() -> std::io::Result<()> + Send + Sync + 'static,
        program: &[&str],
    ) -> std::process::Output {
        try_child(pre, program).unwrap()
    }

    fn try_child(
        pre: impl FnMut() -> std::io::Result<()> + Send + Sync + 'static,
        program: &[&str],
    ) -> std::io::Result<std::process::Output> {
        let mut cmd = Command::new(program[0]);
        cmd.args(&program[1..]);
        // SAFETY: (test only) the closure makes raw syscalls, no allocation, no locks.
        unsafe { cmd.pre_exec(pre) };
        cmd.output()
    }

    fn field(status: &str, key: &str) -> u64 {
        let line = status
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key} in {status}"));
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
    }

    /// Only an errno crosses from a failed pre_exec to the parent: NoSetpcap becomes a marker.
    fn to_io(e: CapError) -> std::io::Error {
        match e {
            CapError::Syscall { cause, .. } => cause,
            _ => std::io::Error::from_raw_os_error(libc::ENOTRECOVERABLE),
        }
    }

    #[test]
    fn apply_as_root_limits_every_set() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let caps = resolve(&[], &s(&["NET_RAW", "CHOWN"]), false).unwrap();
        let out = status_of_child(
            move || apply(&caps, true).map_err(to_io),
            &["grep", "^Cap", "/proc/self/status"],
        );
        assert!(out.status.success(), "{out:?}");
        let status = String::from_utf8(out.stdout).unwrap();
        let want = caps.mask() & field(&status, "CapBnd"); // the host may lack some
        assert_eq!(field(&status, "CapBnd"), want, "{status}");
        assert_eq!(
            field(&status, "CapBnd") & (1 << 13 | 1),
            0,
            "NET_RAW and CHOWN stay: {status}"
        );
        assert_eq!(field(&status, "CapEff"), want, "{status}");
        assert_eq!(field(&status, "CapPrm"), want, "{status}");
        assert_eq!(field(&status, "CapInh"), 0, "{status}");
        assert_eq!(field(&status, "CapAmb"), 0, "{status}");
    }

    #[test]
    fn dropped_chown_makes_chown_fail() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let path = file.to_str().unwrap().to_string();

        let caps = resolve(&[], &s(&["CHOWN"]), false).unwrap();
        let out = status_of_child(
            move || apply(&caps, true).map_err(to_io),
            &["chown", "1234", &path],
        );
        assert!(!out.status.success(), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("Operation not permitted"), "{err}");

        // The default set keeps CHOWN, so the same command works.
        let caps = CapSet::default();
        let out = status_of_child(
            move || apply(&caps, true).map_err(to_io),
            &["chown", "1234", &path],
        );
        assert!(out.status.success(), "{out:?}");
    }

    #[test]
    fn apply_for_a_non_root_user_limits_only_the_bounding_set() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let caps = CapSet::default();
        let out = status_of_child(
            move || {
                prepare_uid_change().map_err(to_io)?;
                rustix::thread::set_thread_groups(&[])?;
                rustix::thread::set_thread_gid(rustix::process::Gid::from_raw(65534))?;
                rustix::thread::set_thread_uid(rustix::process::Uid::from_raw(65534))?;
                apply(&caps, false).map_err(to_io)
            },
            &["grep", "^Cap", "/proc/self/status"],
        );
        assert!(out.status.success(), "{out:?}");
        let status = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            field(&status, "CapBnd"),
            caps.mask() & field(&status, "CapBnd"),
            "{status}"
        );
        assert_ne!(field(&status, "CapBnd"), 0, "{status}");
        assert_eq!(field(&status, "CapEff"), 0, "{status}");
        assert_eq!(field(&status, "CapPrm"), 0, "{status}");
        assert_eq!(field(&status, "CapInh"), 0, "{status}");
    }

    #[test]
    fn apply_after_setuid_without_keepcaps_says_what_to_do() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let caps = CapSet::default();
        let err = try_child(
            move || {
                rustix::thread::set_thread_uid(rustix::process::Uid::from_raw(65534))?;
                apply(&caps, false).map_err(to_io)
            },
            &["true"],
        )
        .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOTRECOVERABLE), "{err}");
        let msg = CapError::NoSetpcap.to_string();
        assert!(msg.contains("prepare_uid_change"), "{msg}");
    }
}
