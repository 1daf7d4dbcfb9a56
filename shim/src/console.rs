//! A task's or exec's terminal (`ctr run -t`, `kubectl exec -it`): a pty whose slave is the
//! process' stdin, stdout and stderr, and whose master the shim copies from containerd's stdin
//! fifo and to its stdout fifo. The one case the shim copies: containerd hands fifos, and a
//! process needs a terminal of its own. The window size follows `ResizePty`; the exit is
//! reported once what the process wrote has been copied out.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// A pty and the threads that copy through its master.
pub struct Console {
    master: Arc<OwnedFd>,
    /// Set when the output copier ends (the slave's last holder closed it).
    drained: Arc<(Mutex<bool>, Condvar)>,
}

impl Console {
    /// A pty copying containerd's `stdin` fifo in and out to its `stdout` fifo (either may be
    /// empty: none); gives it and the slave for the process' three stdio descriptors.
    pub fn open(stdin: &str, stdout: &str) -> Result<(Console, [OwnedFd; 3]), String> {
        let (master, slave) = pty_pair().map_err(|e| format!("making a terminal: {e}"))?;
        let master = Arc::new(master);
        let drained = Arc::new((Mutex::new(false), Condvar::new()));
        let dup = |fd: &OwnedFd| {
            fd.try_clone()
                .map_err(|e| format!("making a terminal: {e}"))
        };
        if !stdin.is_empty() {
            let from = File::from(crate::stdio::open_one(stdin, false)?);
            let to = File::from(dup(&master)?);
            spawn_copy("berth-shim-tty-in", from, to, None)?;
        }
        let out = match stdout {
            "" => None,
            path => Some(File::from(crate::stdio::open_one(path, true)?)),
        };
        let from = File::from(dup(&master)?);
        match out {
            Some(to) => spawn_copy("berth-shim-tty-out", from, to, Some(drained.clone()))?,
            // Nobody reads: the output is still drained, or the process would block on a full
            // terminal.
            None => spawn_copy("berth-shim-tty-out", from, sink()?, Some(drained.clone()))?,
        }
        let stdio = [dup(&slave)?, dup(&slave)?, slave];
        Ok((Console { master, drained }, stdio))
    }

    /// Sets the terminal's size.
    pub fn resize(&self, width: u32, height: u32) {
        let size = nix::pty::Winsize {
            ws_row: u16::try_from(height).unwrap_or(u16::MAX),
            ws_col: u16::try_from(width).unwrap_or(u16::MAX),
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        berth_runtime::container::tty::set_size(&*self.master, &size);
    }

    /// Waits until what the process wrote has been copied out, at most `limit` (a process
    /// that left a child holding the terminal keeps it open).
    pub fn wait_drained(&self, limit: Duration) {
        let (done, cv) = &*self.drained;
        let guard = done.lock().unwrap_or_else(|e| e.into_inner());
        let _ = cv.wait_timeout_while(guard, limit, |d| !*d);
    }
}

/// A pty's master and slave, both close-on-exec from their opening: a process another thread
/// spawns meanwhile inherits neither (a slave held elsewhere would keep the output open).
fn pty_pair() -> nix::Result<(OwnedFd, OwnedFd)> {
    use nix::fcntl::OFlag;
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)?;
    nix::pty::grantpt(&master)?;
    nix::pty::unlockpt(&master)?;
    let name = nix::pty::ptsname_r(&master)?;
    let slave = nix::fcntl::open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    // SAFETY: posix_openpt gave this descriptor, and `master` is given up for it.
    let master = unsafe { OwnedFd::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(master)) };
    Ok((master, slave))
}

fn sink() -> Result<File, String> {
    File::options()
        .write(true)
        .open("/dev/null")
        .map_err(|e| format!("opening /dev/null: {e}"))
}

/// Copies `from` to `to` on a thread of its own until either ends; marks `done` then.
fn spawn_copy(
    name: &str,
    mut from: File,
    mut to: File,
    done: Option<Arc<(Mutex<bool>, Condvar)>>,
) -> Result<(), String> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let mut buf = [0u8; 8192];
            // A pty's master reads EIO once no process holds the slave: the end.
            while let Ok(n @ 1..) = from.read(&mut buf) {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            if let Some(done) = done {
                *done.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
                done.1.notify_all();
            }
        })
        .map(drop)
        .map_err(|e| format!("starting the terminal's copier: {e}"))
}
