//! The container's stdio as the monitor holds it: output copied into the log (and to this
//! process' own stdio or a sink when attached), stdin copied in, and the signals this process
//! receives forwarded to the workloads it runs.

use std::fs::File;
use std::io::{self, Read, Write};
use std::thread::JoinHandle;

use nix::sys::signal::{SigSet, Signal};

use crate::container::log::LogWriter;
use crate::container::tty::terminal_size;

/// Copies one output stream into the log (and, when attached, to `tee`).
pub fn copy_output(
    mut from: impl Read + Send + 'static,
    mut writer: LogWriter,
    mut tee: Option<Box<dyn Write + Send>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if let Some(t) = tee.as_mut() {
                        let _ = t.write_all(&buf[..n]);
                        let _ = t.flush();
                    }
                    let _ = writer.write(&buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // EIO: the pty's last slave closed.
                Err(_) => break,
            }
        }
        let _ = writer.flush();
    })
}

/// Copies this process' stdin to the container until end-of-file.
pub fn copy_stdin(mut to: impl Write) {
    let mut stdin = io::stdin().lock();
    let mut buf = [0u8; 8192];
    loop {
        match stdin.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
                let _ = to.flush();
            }
        }
    }
}

/// The signals an attached monitor forwards to its container.
pub fn forwarded_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
    ] {
        set.add(s);
    }
    set
}

/// Forwards the signals this process receives to the container (and window size changes to
/// its pty).
///
/// One forwarding thread serves the whole process and targets the workloads running now: a
/// build runs a container per RUN step (several at once when stages build in parallel), and
/// a thread per container would leave finished ones taking signals meant for the running
/// steps (and sending them to stale pids).
pub fn forward_signals(pid: i32, pty: Option<File>) {
    FORWARD_TARGETS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((pid, pty));
    start_forwarding();
}

/// Has `hook` told of every signal the forwarding thread takes (by number), before it
/// forwards it, and starts that thread now, with no workload yet. A build uses it to stop on
/// Ctrl-C when no RUN step is running to take the signal; the calling thread must already
/// block [`forwarded_signals`] (the forwarding thread inherits its mask). The first hook stays.
pub fn watch_forwarded_signals(hook: fn(i32)) {
    let _ = SIGNAL_HOOK.set(hook);
    start_forwarding();
}

/// What [`watch_forwarded_signals`] was given.
static SIGNAL_HOOK: std::sync::OnceLock<fn(i32)> = std::sync::OnceLock::new();

/// Starts the one forwarding thread, once.
fn start_forwarding() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        std::thread::spawn(|| {
            let set = forwarded_signals();
            while let Ok(sig) = set.wait() {
                if let Some(hook) = SIGNAL_HOOK.get() {
                    hook(sig as i32);
                }
                let targets = FORWARD_TARGETS.lock().unwrap_or_else(|e| e.into_inner());
                for (pid, pty) in targets.iter() {
                    if sig == Signal::SIGWINCH {
                        if let (Some(pty), Some(size)) = (pty, terminal_size()) {
                            crate::container::tty::set_size(pty, &size);
                        }
                        continue;
                    }
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), sig);
                }
            }
        });
    });
}

/// The workloads [`forward_signals`] forwards to, and their ptys.
static FORWARD_TARGETS: std::sync::Mutex<Vec<(i32, Option<File>)>> =
    std::sync::Mutex::new(Vec::new());

/// Stops forwarding to `pid` once it has exited, so a later signal is never sent to a pid the
/// system may have reused.
pub(super) fn stop_forwarding(pid: i32) {
    FORWARD_TARGETS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(p, _)| *p != pid);
}
