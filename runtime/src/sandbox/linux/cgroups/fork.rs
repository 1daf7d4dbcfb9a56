//! Forking a container's PID 1 straight into its v2 cgroup.

use super::CgroupError;

/// Where [`ForkTarget::fork`] puts a child: a cgroup's v2 directory, held open. The default
/// one has none: its `fork` is a plain fork.
#[derive(Debug, Default)]
pub struct ForkTarget {
    /// The v2 directory; `None` on a v1-only host.
    pub(super) dir: Option<std::fs::File>,
    /// In a child forked without `clone3`: it has yet to join the v2 directory.
    pub(super) pending: std::cell::Cell<bool>,
    /// The container (shortened), for errors.
    pub(super) id: String,
}

impl ForkTarget {
    /// Forks, as `fork(2)`, with the child born in the v2 directory (if there is one):
    /// `clone3` with `CLONE_INTO_CGROUP` takes the threadgroup lock only for reading, so no
    /// grace period is waited out (see [`Cgroup::join_v1_self`]). The child inherits the
    /// caller's v1 cgroups. Where the kernel or a seccomp filter refuses (before 5.7), a
    /// plain fork, after which the child must call [`ForkTarget::finish_join`] (a slower
    /// `cgroup.procs` write, the same result).
    ///
    /// # Safety
    ///
    /// As `fork`: in a multi-threaded caller the child may only call async-signal-safe
    /// functions. Also, after `clone3` the child's libc thread descriptor keeps the parent's
    /// thread id (libc's own fork would update it): until it execs, the child must not aim
    /// pthread calls at its main thread by id from another thread (`pthread_kill` of it,
    /// priority-inheriting mutexes). berth's PID 1 either execs or runs wasmtime, which
    /// does neither.
    pub unsafe fn fork(&self) -> Result<nix::unistd::ForkResult, CgroupError> {
        use nix::unistd::{ForkResult, Pid};
        use std::os::fd::AsRawFd;
        let Some(dir) = &self.dir else {
            // SAFETY: the caller upholds fork's contract.
            return unsafe { nix::unistd::fork() }.map_err(|e| self.err("forking", e.into()));
        };
        /// The kernel's `struct clone_args`, up to `cgroup` (its second version).
        #[repr(C)]
        #[derive(Default)]
        struct CloneArgs {
            flags: u64,
            pidfd: u64,
            child_tid: u64,
            parent_tid: u64,
            exit_signal: u64,
            stack: u64,
            stack_size: u64,
            tls: u64,
            set_tid: u64,
            set_tid_size: u64,
            cgroup: u64,
        }
        const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
        let args = CloneArgs {
            flags: CLONE_INTO_CGROUP,
            exit_signal: libc::SIGCHLD as u64,
            cgroup: dir.as_raw_fd() as u64,
            ..Default::default()
        };
        // SAFETY: a clone3 without CLONE_VM or a stack of its own is a fork; `args` outlives
        // the call.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &args as *const CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        };
        match ret {
            0 => Ok(ForkResult::Child),
            pid if pid > 0 => Ok(ForkResult::Parent {
                child: Pid::from_raw(pid as i32),
            }),
            _ => {
                let e = std::io::Error::last_os_error();
                // No clone3 (before 5.3), no CLONE_INTO_CGROUP (before 5.7), or a seccomp
                // filter of an outer container that refuses clone3.
                if !matches!(
                    e.raw_os_error(),
                    Some(libc::ENOSYS | libc::E2BIG | libc::EINVAL | libc::EPERM)
                ) {
                    return Err(self.err("forking into the cgroup", e));
                }
                // SAFETY: the caller upholds fork's contract.
                let forked =
                    unsafe { nix::unistd::fork() }.map_err(|e| self.err("forking", e.into()))?;
                self.pending.set(forked.is_child());
                Ok(forked)
            }
        }
    }

    /// In the child of [`ForkTarget::fork`]: joins the v2 directory if `clone3` could not put
    /// it there.
    pub fn finish_join(&self) -> Result<(), CgroupError> {
        let Some(dir) = self.dir.as_ref().filter(|_| self.pending.get()) else {
            return Ok(());
        };
        let procs = rustix::fs::openat(
            dir,
            "cgroup.procs",
            rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| self.err("opening cgroup.procs", e.into()))?;
        std::io::Write::write_all(
            &mut std::fs::File::from(procs),
            std::process::id().to_string().as_bytes(),
        )
        .map_err(|e| self.err("joining the cgroup", e))?;
        self.pending.set(false);
        Ok(())
    }

    fn err(&self, action: &str, cause: std::io::Error) -> CgroupError {
        CgroupError::Io {
            action: action.to_string(),
            id: self.id.clone(),
            cause,
        }
    }
}
