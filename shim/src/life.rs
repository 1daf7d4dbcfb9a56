//! Where a task or an exec is in its life, and waiting for its end. An end is final: a start
//! recorded after it (the exit was reaped first) does not undo it.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, SystemTime};

/// Where a process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Made, waiting for Start.
    Created,
    /// It runs.
    Running,
    /// Ended, with this exit status, at this time.
    Stopped(u32, SystemTime),
}

/// A process' phase, shared by the request threads and the thread that reaps.
pub struct Life {
    phase: Mutex<Phase>,
    changed: Condvar,
}

impl Life {
    /// Created.
    pub fn new() -> Life {
        Life {
            phase: Mutex::new(Phase::Created),
            changed: Condvar::new(),
        }
    }

    /// Where it is now.
    pub fn get(&self) -> Phase {
        *self.phase.lock().unwrap()
    }

    /// It started (unless it ended already).
    pub fn started(&self) {
        let mut phase = self.phase.lock().unwrap();
        if *phase == Phase::Created {
            *phase = Phase::Running;
        }
    }

    /// It ended with `code`.
    pub fn ended(&self, code: i32) {
        *self.phase.lock().unwrap() = Phase::Stopped(code as u32, SystemTime::now());
        self.changed.notify_all();
    }

    /// Waits for its end.
    pub fn wait(&self) -> (u32, SystemTime) {
        let phase = self.phase.lock().unwrap();
        let phase = self
            .changed
            .wait_while(phase, |p| !matches!(p, Phase::Stopped(..)))
            .unwrap();
        match *phase {
            Phase::Stopped(code, at) => (code, at),
            _ => unreachable!("waited for the end"),
        }
    }

    /// Waits up to `limit` for its end; whether it ended.
    pub fn wait_for(&self, limit: Duration) -> bool {
        let phase = self.phase.lock().unwrap();
        let (phase, _) = self
            .changed
            .wait_timeout_while(phase, limit, |p| !matches!(p, Phase::Stopped(..)))
            .unwrap();
        matches!(*phase, Phase::Stopped(..))
    }
}
