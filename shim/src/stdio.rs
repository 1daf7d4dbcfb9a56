//! A task's stdio: the fifos containerd made (its readers are open by the time a task is
//! created), or /dev/null where it gave none. They go to the workload as they are: the shim
//! copies nothing, so its death loses no output.

use std::fs::{File, OpenOptions};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;

/// Opens containerd's `stdin`, `stdout` and `stderr` paths for a workload.
pub fn open(stdin: &str, stdout: &str, stderr: &str) -> Result<[OwnedFd; 3], String> {
    Ok([
        open_one(stdin, false)?,
        open_one(stdout, true)?,
        open_one(stderr, true)?,
    ])
}

pub(crate) fn open_one(path: &str, write: bool) -> Result<OwnedFd, String> {
    if path.is_empty() {
        return File::options()
            .read(true)
            .write(true)
            .open("/dev/null")
            .map(OwnedFd::from)
            .map_err(|e| format!("opening /dev/null: {e}"));
    }
    if path.contains("://") {
        return Err(format!(
            "stdio {path:?}: only fifo paths are supported (no file:// or binary:// log URIs)"
        ));
    }
    let file = if write {
        // A fifo with no reader refuses a non-blocking writer (ENXIO): the reader went away, or
        // has not come yet; read-write opens it whatever the case, and never blocks.
        OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(path)
            .or_else(|_| OpenOptions::new().read(true).write(true).open(path))
    } else {
        // Not blocking until a writer comes (ctr gives stdin only when it has one).
        OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(path)
    }
    .map_err(|e| format!("opening the task's stdio {path}: {e}"))?;
    let fd = OwnedFd::from(file);
    let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFL)
        .map_err(|e| format!("reading the flags of {path}: {e}"))?;
    let mut flags = nix::fcntl::OFlag::from_bits_truncate(flags);
    flags.remove(nix::fcntl::OFlag::O_NONBLOCK);
    nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(flags))
        .map_err(|e| format!("making {path} blocking: {e}"))?;
    Ok(fd)
}
