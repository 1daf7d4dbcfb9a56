//! The pipes between the monitor and a container's `__init`, made for one start: each has one
//! end for `__init` (inheritable, named in its config) and one for the monitor (close-on-exec),
//! and the monitor closes `__init`'s ends once it is spawned.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};

use super::{Attach, MonitorError, start_err};
use crate::container::Container;
use crate::container::spawn::{InitChild, InitStdio};
use crate::container::tty::{RawMode, terminal_size};
use crate::sandbox::linux::init::InitConfig;
use crate::store::Store;

/// One pipe: `__init`'s end (inherited) and the monitor's.
struct Pipe {
    child: OwnedFd,
    ours: OwnedFd,
}

impl Pipe {
    /// A pipe whose read end is `__init`'s.
    fn to_init() -> Result<Pipe, MonitorError> {
        let (read, write) = nix::unistd::pipe().map_err(start_err)?;
        close_on_exec(&write)?;
        Ok(Pipe {
            child: read,
            ours: write,
        })
    }

    /// A pipe whose write end is `__init`'s.
    fn from_init() -> Result<Pipe, MonitorError> {
        let (read, write) = nix::unistd::pipe().map_err(start_err)?;
        close_on_exec(&read)?;
        Ok(Pipe {
            child: write,
            ours: read,
        })
    }
}

/// The control pipes of one start.
pub(super) struct StartPipes {
    /// `__init` writes the container's exit code on it, then exits.
    exit: Pipe,
    /// `__init` makes the namespaces, then waits on it for the rootfs files and the cgroup,
    /// which the monitor makes meanwhile.
    ready: Pipe,
    /// With `--rm`: `__init` removes the container's folder after the end (see
    /// `Monitor::wait`).
    cleanup: Option<Pipe>,
    /// `__init` and PID 1 report the pid, or why the start failed (`sandbox::linux::status`).
    status: Pipe,
    /// When the monitor moves PID 1 into the cgroup (a user namespace's root cannot): PID 1
    /// waits on it before the workload runs.
    go: Option<Pipe>,
}

impl StartPipes {
    /// Makes the pipes and names `__init`'s ends in `config`.
    pub fn new(
        config: &mut InitConfig,
        c: &Container,
        store: &Store,
    ) -> Result<StartPipes, MonitorError> {
        let exit = Pipe::from_init()?;
        let ready = Pipe::to_init()?;
        config.exit_fd = Some(exit.child.as_raw_fd());
        config.ready_fd = Some(ready.child.as_raw_fd());
        let cleanup = if c.auto_remove {
            let p = Pipe::to_init()?;
            config.cleanup_fd = Some(p.child.as_raw_fd());
            config.cleanup_in = Some(store.tmp_dir());
            config.spare_folders = Some(store.containers_dir());
            Some(p)
        } else {
            None
        };
        // The move into the cgroup waits out an RCU grace period (5 to 15 ms here), overlapped
        // with PID 1 building its rootfs.
        let go = if config.cgroup {
            None
        } else {
            Some(Pipe::to_init()?)
        };
        Ok(StartPipes {
            exit,
            ready,
            cleanup,
            status: Pipe::from_init()?,
            go,
        })
    }

    /// `__init`'s end of the status pipe.
    pub fn status_fd(&self) -> i32 {
        self.status.child.as_raw_fd()
    }

    /// `__init`'s end of the go pipe.
    pub fn go_fd(&self) -> Option<i32> {
        self.go.as_ref().map(|p| p.child.as_raw_fd())
    }

    /// Once `__init` runs: closes its ends here, and hands it the cleanup pipe's write end.
    pub fn spawned(self, child: &mut InitChild) -> SpawnedPipes {
        let StartPipes {
            exit,
            ready,
            cleanup,
            status,
            go,
        } = self;
        if let Some(p) = cleanup {
            child.set_cleanup(File::from(p.ours));
        }
        SpawnedPipes {
            exit: File::from(exit.ours),
            ready: Some(File::from(ready.ours)),
            status: File::from(status.ours),
            go: go.map(|p| File::from(p.ours)),
        }
    }
}

/// The monitor's ends, once `__init` runs.
pub(super) struct SpawnedPipes {
    /// Where the exit code comes.
    pub exit: File,
    /// Written once the rootfs files and the cgroup are made; dropped unwritten, it tells
    /// `__init` to give the start up.
    pub ready: Option<File>,
    /// The status messages.
    pub status: File,
    /// Written once PID 1 is in the cgroup.
    pub go: Option<File>,
}

impl SpawnedPipes {
    /// Lets `__init` go on: the rootfs files and the cgroup are made. `__init` may have failed
    /// and gone already: the status pipe then says why.
    pub fn ready(&mut self) {
        if let Some(mut r) = self.ready.take() {
            let _ = r.write_all(b"1");
        }
    }
}

/// The container's stdio: `__init`'s side, and the monitor's ends.
pub(super) struct ContainerStdio {
    /// What `__init` gets as 0, 1 and 2.
    pub init: InitStdio,
    /// The pty's master, with `-t`.
    pub tty_master: Option<OwnedFd>,
    /// The terminal in raw mode, for a foreground `-it`.
    pub raw_mode: Option<RawMode>,
    /// Where the monitor writes the container's stdin (with `-i`, without `-t`).
    pub stdin: Option<File>,
    /// Where the monitor reads its stdout and stderr (without `-t`).
    pub output: Option<(File, File)>,
}

impl ContainerStdio {
    /// A pty with `-t`, else pipes (stdin from /dev/null without `-i`).
    pub fn new(c: &Container, attach: &Attach) -> Result<ContainerStdio, MonitorError> {
        if c.spec.tty {
            let size = terminal_size();
            let pty = nix::pty::openpty(size.as_ref(), None).map_err(start_err)?;
            close_on_exec(&pty.master)?;
            let raw_mode = if matches!(attach, Attach::Foreground) && c.spec.stdin {
                RawMode::enter()
            } else {
                None
            };
            return Ok(ContainerStdio {
                init: InitStdio {
                    stdin: pty.slave.try_clone().map_err(start_err)?,
                    stdout: pty.slave.try_clone().map_err(start_err)?,
                    stderr: pty.slave,
                },
                tty_master: Some(pty.master),
                raw_mode,
                stdin: None,
                output: None,
            });
        }
        let cloexec_pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(start_err);
        let (out_read, out_write) = cloexec_pipe()?;
        let (err_read, err_write) = cloexec_pipe()?;
        let (stdin, ours) = if c.spec.stdin {
            let (in_read, in_write) = cloexec_pipe()?;
            (in_read, Some(File::from(in_write)))
        } else {
            (File::open("/dev/null").map_err(start_err)?.into(), None)
        };
        Ok(ContainerStdio {
            init: InitStdio {
                stdin,
                stdout: out_write,
                stderr: err_write,
            },
            tty_master: None,
            raw_mode: None,
            stdin: ours,
            output: Some((File::from(out_read), File::from(err_read))),
        })
    }
}

/// Keeps `fd` (this process' end of a pipe to `__init`) from being inherited by it.
fn close_on_exec(fd: &OwnedFd) -> Result<(), MonitorError> {
    nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map(drop)
    .map_err(start_err)
}

/// Held while the inheritable pipe ends for one `__init` are open in this process: no other
/// start may spawn its child meanwhile (a build starts parallel stages' RUN steps from
/// threads), or that child would hold them, and this start would wait for it to end.
pub(super) static CHILD_ENDS: std::sync::Mutex<()> = std::sync::Mutex::new(());
