//! The start guard: what a start has made so far (the container's `__init`, its cgroup, the
//! terminal's raw mode, the forwarding of signals to its pid), undone in one place when the
//! start fails, whichever step failed. A start that succeeds disarms it and hands the parts to
//! the [`super::Monitor`].

use chrono::Utc;

use super::MonitorError;
use super::stdio::stop_forwarding;
use crate::container::Status;
use crate::container::spawn::InitChild;
use crate::container::tty::RawMode;
use crate::sandbox::linux::cgroups::Cgroup;
use crate::store::Store;

/// How a failed start is recorded in the container's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Recorded {
    /// Only the error: nothing ran (the rootfs or the cgroup could not be made).
    Error,
    /// The workload could not start: the container exited with the error's code.
    Exited(i32),
    /// It started, but could not be served (its ports): it is back to created.
    Created,
}

/// Undoes a start unless disarmed.
pub(super) struct StartGuard<'a> {
    store: &'a Store,
    id: &'a str,
    /// `__init`, once spawned.
    pub child: Option<InitChild>,
    /// The container's cgroup, once made.
    pub cgroup: Option<Cgroup>,
    /// The terminal's raw mode, restored when the guard goes.
    pub raw_mode: Option<RawMode>,
    /// The pid signals are forwarded to, once they are.
    pub forwarding: Option<i32>,
    /// The container's first process, once it runs: killed first, so that `__init` reaps it
    /// and ends (with `--rm`, doing its own cleanup) rather than being killed itself.
    pub pid: Option<i32>,
}

impl<'a> StartGuard<'a> {
    /// A guard for the start of container `id`.
    pub fn new(store: &'a Store, id: &'a str) -> StartGuard<'a> {
        StartGuard {
            store,
            id,
            child: None,
            cgroup: None,
            raw_mode: None,
            forwarding: None,
            pid: None,
        }
    }

    /// The start failed with `e`: records it as `recorded` says, and returns it (the guard's
    /// drop then undoes the start).
    pub fn fail(self, e: MonitorError, recorded: Recorded) -> MonitorError {
        // The workload goes first: the state must not say it ran while it still does.
        let mut this = self;
        this.undo();
        let message = e.to_string();
        let saved = this.store.update_container(this.id, |c| {
            c.state.error = Some(message.clone());
            match recorded {
                Recorded::Error => {}
                Recorded::Exited(code) => {
                    c.state.status = Status::Exited;
                    c.state.exit_code = Some(code);
                    c.state.finished_at = Some(Utc::now());
                }
                Recorded::Created => c.state.status = Status::Created,
            }
        });
        match saved {
            Ok(_) => e,
            Err(store_error) => store_error.into(),
        }
    }

    /// Takes the parts out: the start succeeded, nothing is undone.
    pub fn disarm(mut self) -> (InitChild, Option<Cgroup>, Option<RawMode>) {
        self.forwarding = None;
        self.pid = None;
        let child = self.child.take().expect("a started container has its init");
        (child, self.cgroup.take(), self.raw_mode.take())
    }

    /// Stops forwarding, ends `__init` (and with it PID 1), removes the cgroup, restores the
    /// terminal.
    fn undo(&mut self) {
        if let Some(pid) = self.forwarding.take() {
            stop_forwarding(pid);
        }
        if let Some(mut child) = self.child.take() {
            match self.pid.take() {
                Some(pid) => {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                None => child.kill(),
            }
            let _ = child.wait();
        }
        if let Some(cg) = self.cgroup.take() {
            let _ = cg.remove();
        }
        drop(self.raw_mode.take());
    }
}

impl Drop for StartGuard<'_> {
    fn drop(&mut self) {
        self.undo();
    }
}
