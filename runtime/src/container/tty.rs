//! Terminals: raw mode while a container's pty is attached, and window sizes.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

/// This terminal's size, if stdout is one.
pub fn terminal_size() -> Option<nix::pty::Winsize> {
    let mut ws = nix::pty::Winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ fills a winsize.
    let r = unsafe { nix::libc::ioctl(io::stdout().as_raw_fd(), nix::libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_row > 0).then_some(ws)
}

/// The terminal in raw mode while a `-it` container is attached; restored on drop.
pub struct RawMode {
    saved: nix::sys::termios::Termios,
}

impl RawMode {
    /// Puts this process' terminal (stdin) in raw mode, if it is one.
    pub fn enter() -> Option<RawMode> {
        let stdin = io::stdin();
        let saved = nix::sys::termios::tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        nix::sys::termios::cfmakeraw(&mut raw);
        nix::sys::termios::tcsetattr(stdin.as_fd(), nix::sys::termios::SetArg::TCSANOW, &raw)
            .ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            io::stdin().as_fd(),
            nix::sys::termios::SetArg::TCSANOW,
            &self.saved,
        );
    }
}

/// Sets the window size of a pty (its master side).
pub fn set_size(pty: &impl AsRawFd, size: &nix::pty::Winsize) {
    // SAFETY: TIOCSWINSZ with a valid winsize on a pty.
    unsafe { nix::libc::ioctl(pty.as_raw_fd(), nix::libc::TIOCSWINSZ, size) };
}
