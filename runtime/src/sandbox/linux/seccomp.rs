//! The default seccomp filter of a native container, in the spirit of Docker's profile: every
//! syscall is allowed except those that reach past the container (the kernel, time, mounts,
//! namespaces, keyrings, other processes' memory policy…), which fail with EPERM unless the
//! container holds the capability that Docker ties them to (`--cap-add SYS_ADMIN` allows
//! mount, unshare, setns…). A few are refused whatever the capabilities, as in Docker
//! (kexec, swapon, keyctl, pivot_root, userfaultfd, io_uring…).
//!
//! Compile with [`default_profile`] in the parent or before any fork, then in the container's
//! init call [`set_no_new_privs`] and [`install`] last, right before execve. The filter is
//! written for the architecture berth is built for (x86_64 or aarch64): syscalls of another
//! ABI (32-bit x86 through `int 0x80`) kill the process, and on x86_64 the x32 ABI answers
//! ENOSYS, so neither can sidestep the rules.

use std::collections::BTreeMap;

use rustix::thread::CapabilitySet as Bits;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch, sock_filter,
};

use super::capabilities::CapSet;

/// A compiled filter, ready to install: one or more BPF programs.
#[derive(Debug, Clone)]
pub struct Filter {
    programs: Vec<BpfProgram>,
}

impl Filter {
    /// How many BPF instructions the filter has, over all its programs.
    pub fn len(&self) -> usize {
        self.programs.iter().map(Vec::len).sum()
    }

    /// Whether the filter has no instruction (never true for [`default_profile`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A filter of `programs`, installed in turn (the kernel answers with the most
    /// restrictive of their answers).
    pub(crate) fn of(programs: Vec<BpfProgram>) -> Filter {
        Filter { programs }
    }

    /// How many programs it has.
    pub fn programs(&self) -> usize {
        self.programs.len()
    }
}

/// What can go wrong with seccomp.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// berth has no syscall table for this architecture.
    #[error(
        "berth has no default seccomp profile for the {0} architecture: run with --security-opt seccomp=unconfined"
    )]
    UnsupportedArch(String),
    /// seccompiler refused the rules.
    #[error("compiling the seccomp profile: {0}")]
    Compile(String),
    /// PR_SET_NO_NEW_PRIVS failed.
    #[error("setting no_new_privs: {0}")]
    NoNewPrivs(std::io::Error),
    /// The kernel refused the filter.
    #[error("installing the seccomp filter: {cause}{hint}")]
    Install {
        /// The kernel's answer.
        cause: std::io::Error,
        /// What to do about it, if known.
        hint: &'static str,
    },
}

/// A syscall the profile refuses with EPERM, unless the container holds one of `unless`.
struct Restricted {
    name: &'static str,
    nr: i64,
    unless: Bits,
}

/// A syscall number as seccompiler takes it (c_long is i64 only on 64-bit targets).
#[allow(clippy::unnecessary_cast)]
fn nr(n: libc::c_long) -> i64 {
    n as i64
}

macro_rules! restricted {
    ($unless:expr => $($sys:ident),+ $(,)?) => {
        [$(Restricted {
            name: stringify!($sys),
            nr: nr(libc::$sys),
            unless: $unless,
        }),+]
    };
}

const NEVER: Bits = Bits::empty();

/// The profile's unconditional rules for the syscalls both architectures have.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn restricted() -> Vec<Restricted> {
    let mut v = Vec::with_capacity(80);
    // Refused even with every capability, as in Docker: they act on the whole machine, or
    // (io_uring, blocked by Docker since 2023) carry too much kernel attack surface.
    v.extend(restricted!(NEVER =>
        SYS_kexec_load, SYS_swapon, SYS_swapoff, SYS_keyctl, SYS_add_key,
        SYS_request_key, SYS_userfaultfd, SYS_move_pages, SYS_nfsservctl, SYS_pivot_root,
        SYS_io_uring_setup, SYS_io_uring_enter, SYS_io_uring_register, SYS_name_to_handle_at,
    ));
    v.extend(restricted!(Bits::SYS_ADMIN =>
        SYS_mount, SYS_umount2, SYS_unshare, SYS_setns, SYS_fsopen, SYS_fsconfig, SYS_fsmount,
        SYS_fspick, SYS_move_mount, SYS_open_tree, SYS_mount_setattr, SYS_lookup_dcookie,
        SYS_quotactl, SYS_quotactl_fd, SYS_fanotify_init, SYS_sethostname, SYS_setdomainname,
    ));
    v.extend(restricted!(Bits::SYS_ADMIN.union(Bits::BPF) => SYS_bpf));
    v.extend(restricted!(Bits::SYS_ADMIN.union(Bits::PERFMON) => SYS_perf_event_open));
    v.extend(restricted!(Bits::SYS_ADMIN.union(Bits::SYSLOG) => SYS_syslog));
    v.extend(restricted!(Bits::DAC_READ_SEARCH => SYS_open_by_handle_at));
    v.extend(restricted!(Bits::SYS_MODULE => SYS_init_module, SYS_finit_module, SYS_delete_module));
    v.extend(restricted!(Bits::SYS_BOOT => SYS_reboot));
    v.extend(restricted!(Bits::SYS_CHROOT => SYS_chroot));
    v.extend(restricted!(Bits::SYS_PACCT => SYS_acct));
    v.extend(restricted!(Bits::SYS_PTRACE => SYS_kcmp, SYS_pidfd_getfd, SYS_process_madvise));
    v.extend(restricted!(Bits::SYS_TIME =>
        SYS_settimeofday, SYS_clock_settime, SYS_clock_adjtime, SYS_adjtimex,
    ));
    v.extend(restricted!(Bits::SYS_TTY_CONFIG => SYS_vhangup));
    v.extend(restricted!(Bits::SYS_NICE =>
        SYS_get_mempolicy, SYS_mbind, SYS_set_mempolicy, SYS_set_mempolicy_home_node,
    ));
    #[cfg(target_arch = "x86_64")]
    {
        // Obsolete or unimplemented x86_64 syscalls: nothing legitimate calls them.
        v.extend(restricted!(NEVER =>
            SYS_uselib, SYS_ustat, SYS_sysfs, SYS__sysctl, SYS_afs_syscall, SYS_tuxcall,
            SYS_security, SYS_vserver, SYS_getpmsg, SYS_putpmsg,
        ));
        v.extend(restricted!(Bits::SYS_RAWIO => SYS_iopl, SYS_ioperm));
        v.extend(restricted!(NEVER => SYS_kexec_file_load));
    }
    // libc for aarch64-musl lacks the constant; the number is asm-generic's.
    #[cfg(target_arch = "aarch64")]
    v.push(Restricted {
        name: "SYS_kexec_file_load",
        nr: 294,
        unless: NEVER,
    });
    v
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn restricted() -> Vec<Restricted> {
    Vec::new()
}

/// Every CLONE_NEW* flag clone(2) accepts (CLONE_NEWTIME only works through clone3/unshare).
const CLONE_NAMESPACES: [u64; 7] = [
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
];

/// The personality(2) values Docker allows: PER_LINUX, PER_LINUX32, UNAME26 with each, and
/// the query 0xffffffff.
const PERSONALITIES: [u64; 5] = [0, 0x0008, 0x20000, 0x20008, 0xffff_ffff];

/// x32 syscalls are x86_64 numbers with this bit set.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// The names of the syscalls the default profile refuses outright to a container with `caps`
/// (clone with namespace flags, clone3, personality and vsock sockets are refused by argument
/// and are not listed).
pub fn refused(caps: &CapSet) -> Vec<&'static str> {
    restricted()
        .into_iter()
        .filter(|r| (r.unless & caps.bits()).is_empty())
        .map(|r| r.name.trim_start_matches("SYS_"))
        .collect()
}

fn cond(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, SeccompError> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value)
        .map_err(|e| SeccompError::Compile(e.to_string()))
}

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, SeccompError> {
    SeccompRule::new(conditions).map_err(|e| SeccompError::Compile(e.to_string()))
}

/// The default profile for a container holding `caps`, compiled for this architecture.
pub fn default_profile(caps: &CapSet) -> Result<Filter, SeccompError> {
    let arch_name = std::env::consts::ARCH;
    let arch = TargetArch::try_from(arch_name)
        .ok()
        .filter(|_| cfg!(any(target_arch = "x86_64", target_arch = "aarch64")))
        .ok_or_else(|| SeccompError::UnsupportedArch(arch_name.to_string()))?;
    let sys_admin = caps.bits().contains(Bits::SYS_ADMIN);

    // The syscalls refused outright go in a program of their own that finds a number by
    // binary search; seccompiler's programs test one number after another. The kernel runs a
    // new filter once for every syscall number when it is installed (to learn which numbers it
    // always allows): the linear one of 400 instructions took a quarter of a millisecond of
    // each container's start.
    let eperm = deny_list_program(arch, &denied(caps), sys_admin)?;

    // What is refused by argument, through seccompiler.
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    if !sys_admin {
        // clone creating a namespace; plain clone (fork, threads) stays allowed.
        let by_flag = CLONE_NAMESPACES
            .iter()
            .map(|&f| rule(vec![cond(0, SeccompCmpOp::MaskedEq(f), f)?]))
            .collect::<Result<_, _>>()?;
        rules.insert(nr(libc::SYS_clone), by_flag);
    }
    // personality: anything but Docker's allowed values (e.g. ADDR_NO_RANDOMIZE) is refused.
    let others = PERSONALITIES
        .iter()
        .map(|&p| cond(0, SeccompCmpOp::Ne, p))
        .collect::<Result<_, _>>()?;
    rules.insert(nr(libc::SYS_personality), vec![rule(others)?]);
    // AF_VSOCK reaches the hypervisor's host side; Docker refuses it.
    rules.insert(
        nr(libc::SYS_socket),
        vec![rule(vec![cond(
            0,
            SeccompCmpOp::Eq,
            libc::AF_VSOCK as u64,
        )?])?],
    );

    let by_argument = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .and_then(BpfProgram::try_from)
    .map_err(|e| SeccompError::Compile(e.to_string()))?;

    // Two programs (each install has a cost of its own): the kernel answers with the most
    // restrictive of their answers, and no syscall gets two different errnos.
    Ok(Filter {
        programs: vec![eperm, by_argument],
    })
}

/// The numbers of the syscalls refused outright to a container with `caps`, sorted.
fn denied(caps: &CapSet) -> Vec<u32> {
    let mut denied: Vec<u32> = restricted()
        .into_iter()
        .filter(|r| (r.unless & caps.bits()).is_empty())
        .map(|r| r.nr as u32)
        .collect();
    denied.sort_unstable();
    denied.dedup();
    denied
}

/// seccomp_data's fields, as a filter loads them.
const ARCH_OFFSET: u32 = 4;
const NR_OFFSET: u32 = 0;

fn stmt(code: u32, k: u32) -> sock_filter {
    sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// The audit architecture of `arch` (linux/audit.h: EM_* | __AUDIT_ARCH_64BIT |
/// __AUDIT_ARCH_LE), and whether it has an x32 ABI beside.
fn audit_arch(arch: TargetArch) -> (u32, bool) {
    const LE64: u32 = 0x8000_0000 | 0x4000_0000;
    match arch {
        TargetArch::x86_64 => (62 | LE64, true),
        TargetArch::aarch64 => (183 | LE64, false),
        TargetArch::riscv64 => (243 | LE64, false),
    }
}

/// A program that refuses the syscalls `denied` (sorted, no duplicates) with EPERM and
/// allows every other, except what must answer ENOSYS: clone3 without `sys_admin` (its flags
/// sit in memory a filter cannot read, so glibc falls back to clone, which the argument rules
/// check) and on x86_64 the whole x32 ABI, whose numbers the rules do not cover. Another
/// architecture's syscalls kill the process, as in seccompiler's programs. The numbers are
/// found by a binary search: a few jumps for any syscall.
fn deny_list_program(
    arch: TargetArch,
    denied: &[u32],
    sys_admin: bool,
) -> Result<BpfProgram, SeccompError> {
    use libc::{BPF_ABS, BPF_JEQ, BPF_JGE, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W};
    let (audit_arch, x32) = audit_arch(arch);
    let mut p = vec![
        stmt(BPF_LD | BPF_W | BPF_ABS, ARCH_OFFSET),
        jump(BPF_JMP | BPF_JEQ | BPF_K, audit_arch, 1, 0),
        stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_KILL_PROCESS),
        stmt(BPF_LD | BPF_W | BPF_ABS, NR_OFFSET),
    ];
    let enosys = || {
        stmt(
            BPF_RET | BPF_K,
            libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
        )
    };
    // Each: a match falls through to the ENOSYS return, anything else skips it.
    if x32 {
        p.push(jump(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, 0, 1));
        p.push(enosys());
    }
    if !sys_admin {
        p.push(jump(
            BPF_JMP | BPF_JEQ | BPF_K,
            libc::SYS_clone3 as u32,
            0,
            1,
        ));
        p.push(enosys());
    }
    p.extend(search(denied)?);
    Ok(p)
}

/// On x86_64, a program that answers the whole x32 ABI with ENOSYS and allows every other
/// syscall (another architecture's kill the process): seccompiler's programs match syscall
/// numbers without the x32 bit, so `nr | 0x40000000` would pass a rule that refuses `nr`.
/// `None` where there is no x32 ABI.
pub(crate) fn x32_guard(arch: TargetArch) -> Option<BpfProgram> {
    use libc::{BPF_ABS, BPF_JEQ, BPF_JGE, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W};
    let (audit_arch, x32) = audit_arch(arch);
    x32.then(|| {
        vec![
            stmt(BPF_LD | BPF_W | BPF_ABS, ARCH_OFFSET),
            jump(BPF_JMP | BPF_JEQ | BPF_K, audit_arch, 1, 0),
            stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_KILL_PROCESS),
            stmt(BPF_LD | BPF_W | BPF_ABS, NR_OFFSET),
            jump(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, 0, 1),
            stmt(
                BPF_RET | BPF_K,
                libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
            ),
            stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_ALLOW),
        ]
    })
}

/// The binary search of [`deny_list_program`] over `denied`, the syscall number loaded: a
/// "≥ middle" jump splits it in two until a few numbers are left, which are compared one by
/// one. Every jump is forward (as BPF wants) and each part ends in its own returns, so no
/// jump spans more than half the program.
fn search(denied: &[u32]) -> Result<Vec<sock_filter>, SeccompError> {
    use libc::{BPF_JEQ, BPF_JGE, BPF_JMP, BPF_K, BPF_RET, SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO};
    /// How many numbers are compared one by one.
    const LEAF: usize = 4;
    let allow = stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    let eperm = stmt(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | libc::EPERM as u32);
    if denied.len() <= LEAF {
        // Each number jumps over the ones after it and the allow, to the EPERM.
        let n = denied.len();
        let mut p: Vec<sock_filter> = denied
            .iter()
            .enumerate()
            .map(|(i, &k)| jump(BPF_JMP | BPF_JEQ | BPF_K, k, (n - i) as u8, 0))
            .collect();
        p.push(allow);
        p.push(eperm);
        return Ok(p);
    }
    let middle = denied.len() / 2;
    let below = search(&denied[..middle])?;
    let from_middle = search(&denied[middle..])?;
    let over = u8::try_from(below.len()).map_err(|_| {
        SeccompError::Compile(format!(
            "the refused syscalls' search needs a jump over {} instructions (BPF's limit is 255)",
            below.len()
        ))
    })?;
    let mut p = vec![jump(BPF_JMP | BPF_JGE | BPF_K, denied[middle], over, 0)];
    p.extend(below);
    p.extend(from_middle);
    Ok(p)
}

/// Sets no_new_privs: execve can no longer grant privileges (setuid bits, file
/// capabilities), and an unprivileged process may install a seccomp filter.
pub fn set_no_new_privs() -> Result<(), SeccompError> {
    rustix::thread::set_no_new_privs(true).map_err(|e| SeccompError::NoNewPrivs(e.into()))
}

/// Installs the filter on every thread of this process. Needs no_new_privs
/// ([`set_no_new_privs`]) or CAP_SYS_ADMIN; call it last, right before execve, as it applies
/// to the caller too. Does not allocate, so it may run between fork and exec.
pub fn install(filter: &Filter) -> Result<(), SeccompError> {
    for program in &filter.programs {
        let prog = libc::sock_fprog {
            len: program.len() as u16,
            // seccompiler's sock_filter is the kernel's struct filter, #[repr(C)].
            filter: program.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `prog` points at a live, well-formed BPF program; the kernel copies it.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                libc::SECCOMP_FILTER_FLAG_TSYNC,
                &prog as *const libc::sock_fprog,
            )
        };
        if rc != 0 {
            // With TSYNC a positive result is the id of a thread that could not be synced.
            let (cause, hint) = if rc > 0 {
                (
                    std::io::Error::other(format!("thread {rc} has a diverging filter")),
                    "",
                )
            } else {
                let cause = std::io::Error::last_os_error();
                let hint = match cause.raw_os_error() {
                    Some(libc::EACCES) => {
                        " (it needs no_new_privs or CAP_SYS_ADMIN: call seccomp::set_no_new_privs first)"
                    }
                    Some(libc::EINVAL) => " (is seccomp enabled in this kernel?)",
                    _ => "",
                };
                (cause, hint)
            };
            return Err(SeccompError::Install { cause, hint });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::linux::capabilities::resolve;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Output};

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn sys_admin() -> CapSet {
        resolve(&s(&["SYS_ADMIN"]), &[], false).unwrap()
    }

    /// What `program` answers for syscall `nr` of architecture `arch`: the few BPF
    /// instructions the deny list uses, run as the kernel would.
    fn answer(program: &[sock_filter], arch: u32, nr: u32) -> u32 {
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = &program[pc];
            let code = u32::from(i.code);
            pc += 1;
            match code {
                c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => {
                    acc = if i.k == ARCH_OFFSET { arch } else { nr };
                }
                c if c == libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K => {
                    pc += usize::from(if acc == i.k { i.jt } else { i.jf });
                }
                c if c == libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K => {
                    pc += usize::from(if acc >= i.k { i.jt } else { i.jf });
                }
                c if c == libc::BPF_RET | libc::BPF_K => return i.k,
                other => panic!("unexpected instruction {other:#x}"),
            }
        }
    }

    #[test]
    fn the_deny_list_refuses_exactly_its_numbers() {
        let arch = TargetArch::try_from(std::env::consts::ARCH).unwrap();
        let (audit, _) = audit_arch(arch);
        let eperm = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
        for caps in [CapSet::default(), sys_admin()] {
            let denied = denied(&caps);
            let sys_admin = caps.bits().contains(Bits::SYS_ADMIN);
            let program = deny_list_program(arch, &denied, sys_admin).unwrap();
            // Far shorter than one comparison per number.
            assert!(program.len() < 4 * denied.len(), "{}", program.len());
            let enosys = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
            let (_, x32) = audit_arch(arch);
            for nr in (0..1024).chain([X32_SYSCALL_BIT, X32_SYSCALL_BIT | 165, u32::MAX]) {
                let clone3 = nr == libc::SYS_clone3 as u32 && !sys_admin;
                let want = if (x32 && nr >= X32_SYSCALL_BIT) || clone3 {
                    enosys
                } else if denied.contains(&nr) {
                    eperm
                } else {
                    libc::SECCOMP_RET_ALLOW
                };
                assert_eq!(answer(&program, audit, nr), want, "syscall {nr}");
            }
            assert_eq!(
                answer(&program, 0x4000_0003, 1),
                libc::SECCOMP_RET_KILL_PROCESS
            );
        }
        // Any length, odd or even, down to none.
        for n in 0..40u32 {
            let denied: Vec<u32> = (0..n).map(|i| 3 * i + 1).collect();
            let program = deny_list_program(arch, &denied, true).unwrap();
            for nr in 0..130 {
                let refused = answer(&program, audit, nr) == eperm;
                assert_eq!(refused, denied.contains(&nr), "{n} numbers, syscall {nr}");
            }
        }
    }

    #[test]
    fn profile_compiles_and_lists_what_it_refuses() {
        let default = CapSet::default();
        let f = default_profile(&default).unwrap();
        assert!(!f.is_empty());
        let refused_default = refused(&default);
        for name in [
            "mount",
            "umount2",
            "unshare",
            "setns",
            "kexec_load",
            "bpf",
            "reboot",
            "keyctl",
            "io_uring_setup",
            "perf_event_open",
            "clock_settime",
            "init_module",
            "mbind",
            "kcmp",
        ] {
            assert!(refused_default.contains(&name), "{name} is allowed");
        }
        for name in ["chroot", "ptrace", "process_vm_readv", "read", "clone"] {
            assert!(!refused_default.contains(&name), "{name} is refused");
        }
        let with_admin = refused(&sys_admin());
        for name in [
            "mount",
            "umount2",
            "unshare",
            "setns",
            "bpf",
            "perf_event_open",
            "syslog",
        ] {
            assert!(
                !with_admin.contains(&name),
                "{name} still refused with SYS_ADMIN"
            );
        }
        for name in [
            "pivot_root",
            "kexec_load",
            "keyctl",
            "reboot",
            "io_uring_setup",
        ] {
            assert!(with_admin.contains(&name), "{name} allowed by SYS_ADMIN");
        }
        let time = resolve(&s(&["SYS_TIME"]), &[], false).unwrap();
        assert!(!refused(&time).contains(&"clock_settime"));
        let no_chroot = resolve(&[], &s(&["SYS_CHROOT"]), false).unwrap();
        assert!(refused(&no_chroot).contains(&"chroot"));
    }

    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    /// Runs `program` with the filter for `caps` installed between fork and exec.
    fn run_filtered(caps: &CapSet, program: &[&str]) -> Output {
        let filter = default_profile(caps).unwrap();
        let mut cmd = Command::new(program[0]);
        cmd.args(&program[1..]);
        // SAFETY: (test only) prctl and seccomp syscalls, no allocation, no locks.
        unsafe {
            cmd.pre_exec(move || {
                set_no_new_privs().map_err(|_| std::io::Error::last_os_error())?;
                install(&filter).map_err(|_| std::io::Error::from_raw_os_error(libc::EPROTO))
            })
        };
        cmd.output().unwrap()
    }

    fn stderr(o: &Output) -> String {
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    #[test]
    fn normal_programs_still_work() {
        let caps = CapSet::default();
        let o = run_filtered(&caps, &["true"]);
        assert!(o.status.success(), "{o:?}");
        let o = run_filtered(&caps, &["ls", "/"]);
        assert!(o.status.success() && !o.stdout.is_empty(), "{o:?}");
        // A shell forks (clone without namespace flags) and pipes.
        let o = run_filtered(&caps, &["sh", "-c", "echo hi | cat; (exit 3); echo $?"]);
        assert_eq!(String::from_utf8_lossy(&o.stdout), "hi\n3\n", "{o:?}");
    }

    #[test]
    fn unshare_is_refused_without_sys_admin() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let o = run_filtered(&CapSet::default(), &["unshare", "-U", "true"]);
        assert!(!o.status.success(), "{o:?}");
        assert!(
            stderr(&o).contains("Operation not permitted"),
            "{}",
            stderr(&o)
        );
        let o = run_filtered(&sys_admin(), &["unshare", "-U", "true"]);
        assert!(o.status.success(), "{o:?}");
    }

    #[test]
    fn mount_is_refused() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().to_str().unwrap().to_string();
        let o = run_filtered(&CapSet::default(), &["mount", "-t", "tmpfs", "x", &target]);
        if o.status.success() {
            let _ = Command::new("umount").arg(&target).status();
            panic!("mount succeeded under the filter");
        }
        let err = stderr(&o).to_lowercase();
        assert!(
            err.contains("operation not permitted") || err.contains("permission denied"),
            "{err}"
        );
    }

    /// Forks; the child installs the filter, runs `f` and exits with its result.
    fn in_filtered_child(caps: &CapSet, f: fn() -> i32) -> i32 {
        let filter = default_profile(caps).unwrap();
        // SAFETY: (test only) the child makes raw syscalls only, then _exit.
        unsafe {
            let pid = libc::fork();
            assert!(pid >= 0);
            if pid == 0 {
                let code = if set_no_new_privs().is_err() || install(&filter).is_err() {
                    100
                } else {
                    f()
                };
                libc::_exit(code);
            }
            let mut status = 0;
            assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
            assert!(libc::WIFEXITED(status), "child status {status:#x}");
            libc::WEXITSTATUS(status)
        }
    }

    fn errno() -> i32 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
    }

    /// 0 when the raw syscall failed with `want`; its errno (or 99 if it worked) otherwise.
    fn expect_errno(rc: i64, want: i32) -> i32 {
        if rc == -1 && errno() == want {
            0
        } else if rc == -1 {
            errno()
        } else {
            99
        }
    }

    #[test]
    fn arguments_and_abis_are_checked() {
        let caps = CapSet::default();
        // clone with CLONE_NEWUTS: EPERM.
        // SAFETY: (test only) raw syscalls in the filtered child, which then exits.
        let code = in_filtered_child(&caps, || unsafe {
            let rc = libc::syscall(
                libc::SYS_clone,
                libc::CLONE_NEWUTS | libc::SIGCHLD,
                0,
                0,
                0,
                0,
            );
            if rc == 0 {
                libc::_exit(98);
            }
            expect_errno(rc, libc::EPERM)
        });
        assert_eq!(code, 0, "clone(CLONE_NEWUTS)");
        // Plain clone (fork): allowed.
        // SAFETY: (test only) raw syscalls in the filtered child, which then exits.
        let code = in_filtered_child(&caps, || unsafe {
            let rc = libc::syscall(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0);
            if rc == 0 {
                libc::_exit(0);
            }
            if rc < 0 {
                return errno();
            }
            let mut st = 0;
            libc::waitpid(rc as i32, &mut st, 0);
            0
        });
        assert_eq!(code, 0, "plain clone");
        // clone3: ENOSYS, so glibc falls back to clone.
        // SAFETY: (test only) raw syscalls in the filtered child, which then exits.
        let code = in_filtered_child(&caps, || unsafe {
            expect_errno(libc::syscall(libc::SYS_clone3, 0, 0), libc::ENOSYS)
        });
        assert_eq!(code, 0, "clone3");
        // personality: the query works, ADDR_NO_RANDOMIZE does not.
        // SAFETY: (test only) raw syscalls in the filtered child, which then exits.
        let code = in_filtered_child(&caps, || unsafe {
            if libc::syscall(libc::SYS_personality, 0xffff_ffffu64) == -1 {
                return 97;
            }
            expect_errno(libc::syscall(libc::SYS_personality, 0x0040000), libc::EPERM)
        });
        assert_eq!(code, 0, "personality");
        // AF_VSOCK sockets: EPERM; AF_UNIX works.
        // SAFETY: (test only) raw syscalls in the filtered child, which then exits.
        let code = in_filtered_child(&caps, || unsafe {
            if libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) < 0 {
                return 97;
            }
            expect_errno(
                libc::syscall(libc::SYS_socket, libc::AF_VSOCK, libc::SOCK_STREAM, 0),
                libc::EPERM,
            )
        });
        assert_eq!(code, 0, "socket(AF_VSOCK)");
        // setns and unshare: EPERM before any capability check.
        // SAFETY: (test only) raw syscalls in the filtered child, which then exits.
        let code = in_filtered_child(&caps, || unsafe {
            expect_errno(
                libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUTS),
                libc::EPERM,
            )
        });
        assert_eq!(code, 0, "unshare");
        #[cfg(target_arch = "x86_64")]
        {
            // getpid through the x32 ABI: ENOSYS, whether or not the kernel has x32.
            // SAFETY: (test only) raw syscalls in the filtered child, which then exits.
            let code = in_filtered_child(&caps, || unsafe {
                expect_errno(libc::syscall(0x4000_0000 | libc::SYS_getpid), libc::ENOSYS)
            });
            assert_eq!(code, 0, "x32 getpid");
        }
    }

    #[test]
    fn sys_admin_lifts_the_namespace_rules() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        // SAFETY: (test only) raw syscalls in the filtered child, which then exits.
        let code = in_filtered_child(&sys_admin(), || unsafe {
            if libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUTS) == -1 {
                return errno();
            }
            let rc = libc::syscall(
                libc::SYS_clone,
                libc::CLONE_NEWUTS | libc::SIGCHLD,
                0,
                0,
                0,
                0,
            );
            if rc == 0 {
                libc::_exit(0);
            }
            if rc < 0 {
                return errno();
            }
            // clone3 reaches the kernel: EFAULT for the null argument, not ENOSYS.
            let rc = libc::syscall(libc::SYS_clone3, 0, 64);
            if rc == -1 && errno() == libc::ENOSYS {
                return 96;
            }
            0
        });
        assert_eq!(code, 0);
    }

    #[test]
    fn install_without_no_new_privs_or_sys_admin_explains() {
        let filter = default_profile(&CapSet::default()).unwrap();
        // SAFETY: (test only) the child makes raw syscalls only, then _exit.
        unsafe {
            let pid = libc::fork();
            assert!(pid >= 0);
            if pid == 0 {
                let mut sets = rustix::thread::capabilities(None).unwrap();
                sets.effective = Bits::empty();
                if rustix::thread::set_capabilities(None, sets).is_err() {
                    libc::_exit(97);
                }
                let code = match install(&filter) {
                    Err(SeccompError::Install { cause, hint })
                        if cause.raw_os_error() == Some(libc::EACCES)
                            && hint.contains("set_no_new_privs") =>
                    {
                        0
                    }
                    Err(_) => 1,
                    Ok(()) => 2,
                };
                libc::_exit(code);
            }
            let mut status = 0;
            assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
            assert_eq!(libc::WEXITSTATUS(status), 0, "status {status:#x}");
        }
    }
}
