//! Bringing up `lo` in a fresh network namespace.
//!
//! A new network namespace has only a loopback interface, and it starts down: nothing inside,
//! not even 127.0.0.1, is reachable until it is up. The container init calls
//! [`bring_up_loopback`] right after `unshare(CLONE_NEWNET)`, before it execs the workload.

use std::io;
use std::os::fd::AsRawFd;

use socket2::{Domain, Socket, Type};

/// The loopback interface's name, NUL-terminated for `ifreq`.
const LO: &[u8] = b"lo\0";

/// Why loopback could not be brought up.
#[derive(Debug, thiserror::Error)]
pub enum LoopbackError {
    /// No socket to issue the interface ioctls on.
    #[error(
        "bringing up loopback in the container's network namespace: cannot open a socket: \
         {0}; check the process's open-file limit (ulimit -n)"
    )]
    Socket(#[source] io::Error),
    /// SIOCGIFFLAGS failed.
    #[error(
        "bringing up loopback in the container's network namespace: cannot read the flags of \
         lo: {0}; the namespace should have been made with unshare(CLONE_NEWNET)"
    )]
    GetFlags(#[source] io::Error),
    /// SIOCSIFFLAGS failed.
    #[error(
        "bringing up loopback in the container's network namespace: cannot set lo up: {0}; \
         this needs CAP_NET_ADMIN in that namespace (run berth as root or in a user namespace \
         that owns it)"
    )]
    SetFlags(#[source] io::Error),
}

/// Sets `lo` up in the calling thread's network namespace (a no-op when it already is).
///
/// It only makes syscalls and allocates nothing, so it is safe to call in a child between
/// fork and exec.
pub fn bring_up_loopback() -> Result<(), LoopbackError> {
    // Any socket works for interface ioctls; a datagram one needs no connection or address.
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, None).map_err(LoopbackError::Socket)?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value (empty name, no flags).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(LO) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads ifr_name and writes ifr_ifru.ifru_flags of the ifreq we own,
    // which outlives the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(LoopbackError::GetFlags(io::Error::last_os_error()));
    }
    // SAFETY: the kernel just filled ifru_flags, the union member SIOCGIFFLAGS writes.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    let up = libc::IFF_UP as libc::c_short;
    if flags & up != 0 {
        return Ok(());
    }
    req.ifr_ifru.ifru_flags = flags | up;
    // SAFETY: SIOCSIFFLAGS reads ifr_name and ifru_flags from the ifreq we own.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(LoopbackError::SetFlags(io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    /// Runs `ip addr show lo` in a child that first enters a new network namespace and, when
    /// `bring_up` is set, calls bring_up_loopback; returns ip's output.
    fn lo_in_new_netns(bring_up: bool) -> String {
        let mut cmd = Command::new("ip");
        cmd.args(["addr", "show", "lo"]);
        // SAFETY: the closure runs in the forked child before exec and only makes syscalls
        // (unshare, socket, ioctl); neither it nor bring_up_loopback allocates, even on error.
        unsafe {
            cmd.pre_exec(move || {
                rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET)?;
                if bring_up {
                    bring_up_loopback().map_err(|e| match e {
                        LoopbackError::Socket(e)
                        | LoopbackError::GetFlags(e)
                        | LoopbackError::SetFlags(e) => e,
                    })?;
                }
                Ok(())
            });
        }
        // output() waits for the child, so nothing is left running.
        let out = cmd
            .output()
            .expect("running ip addr show lo in a new netns");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn loopback_starts_down_in_a_new_netns() {
        let show = lo_in_new_netns(false);
        assert!(show.contains("<LOOPBACK>"), "{show}");
        assert!(!show.contains("127.0.0.1"), "{show}");
    }

    #[test]
    fn brings_loopback_up_in_a_new_netns() {
        let show = lo_in_new_netns(true);
        assert!(show.contains("<LOOPBACK,UP,LOWER_UP>"), "{show}");
        // The kernel gives lo its addresses once it is up.
        assert!(show.contains("inet 127.0.0.1/8"), "{show}");
    }

    #[test]
    fn is_a_no_op_when_already_up() {
        // The test process's own namespace; bring_up_loopback must not fail or change it.
        bring_up_loopback().unwrap();
        bring_up_loopback().unwrap();
    }
}
