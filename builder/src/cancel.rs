//! Stopping a build on SIGINT, SIGTERM, SIGHUP or SIGQUIT.
//!
//! A build blocks those signals in every thread, so the runtime's forwarding thread takes them
//! and passes them on to the running RUN step (which stops it, and the build with it). Before
//! this, nothing took a signal when no step ran: while a COPY read a large context, only
//! SIGKILL ended berth. Now every such signal is also noted here, each step and every loop
//! over the context checks it, and the build ends through its ordinary error paths (temp
//! folders removed, nothing named) with [`Interrupted`].

use std::sync::atomic::{AtomicI32, Ordering};

/// The first stopping signal taken, or 0.
static REQUESTED: AtomicI32 = AtomicI32::new(0);

/// The signals that stop a build: Ctrl-C, `kill`, a closed terminal, Ctrl-\.
const STOPPING: [i32; 4] = [
    rustix::process::Signal::INT.as_raw(),
    rustix::process::Signal::TERM.as_raw(),
    rustix::process::Signal::HUP.as_raw(),
    rustix::process::Signal::QUIT.as_raw(),
];

/// A build stopped by a signal (its number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the build was stopped by {}", self.name())]
pub struct Interrupted(pub i32);

impl Interrupted {
    /// The signal's name, e.g. `SIGINT`.
    pub fn name(self) -> String {
        let names = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"];
        STOPPING
            .iter()
            .zip(names)
            .find(|(n, _)| **n == self.0)
            .map_or_else(
                || format!("signal {}", self.0),
                |(_, name)| name.to_string(),
            )
    }

    /// The exit code of a process the signal ended: 128 + its number (130 for SIGINT).
    pub fn exit_code(self) -> u8 {
        u8::try_from(128 + self.0).unwrap_or(u8::MAX)
    }
}

/// Blocks the stopping signals in this thread (every thread started later inherits that) and
/// has the runtime's forwarding thread note them for [`check`].
pub fn watch() {
    let _ = berth_runtime::container::monitor::forwarded_signals().thread_block();
    berth_runtime::container::monitor::watch_forwarded_signals(note);
}

fn note(signal: i32) {
    if STOPPING.contains(&signal) {
        let _ = REQUESTED.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
    }
}

/// Whether a stopping signal came: cheap enough for every file of a context.
pub fn check() -> Result<(), Interrupted> {
    match REQUESTED.load(Ordering::Relaxed) {
        0 => Ok(()),
        signal => Err(Interrupted(signal)),
    }
}
