//! Why a workload could not start, with the exit code Docker gives it. One type for every
//! backend and every host (the container monitor, `exec`, the portable path): the init that
//! fails sends it to the monitor as it is, and the CLI maps it to the exit code in one place.

use serde::{Deserialize, Serialize};

/// What kind of start failure it is; each has Docker's exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartFailure {
    /// Berth itself failed (a namespace, a mount, the store): 125.
    Berth,
    /// The program exists but cannot run (permissions, format, a module for another host): 126.
    CannotRun,
    /// The program was not found: 127.
    NotFound,
}

/// A failure before the workload ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct StartError {
    /// Which kind.
    pub kind: StartFailure,
    /// What went wrong, and what to do about it.
    pub message: String,
}

impl StartError {
    /// Berth's own failure (125).
    pub fn berth(message: impl std::fmt::Display) -> StartError {
        StartError::new(StartFailure::Berth, message)
    }

    /// A program that cannot run (126).
    pub fn cannot_run(message: impl std::fmt::Display) -> StartError {
        StartError::new(StartFailure::CannotRun, message)
    }

    /// A program that is not there (127).
    pub fn not_found(message: impl std::fmt::Display) -> StartError {
        StartError::new(StartFailure::NotFound, message)
    }

    fn new(kind: StartFailure, message: impl std::fmt::Display) -> StartError {
        StartError {
            kind,
            message: message.to_string(),
        }
    }

    /// Docker's exit code: 125, 126 or 127.
    pub fn code(&self) -> i32 {
        match self.kind {
            StartFailure::Berth => 125,
            StartFailure::CannotRun => 126,
            StartFailure::NotFound => 127,
        }
    }

    /// The same failure with `context` in front of its message.
    pub fn context(self, context: impl std::fmt::Display) -> StartError {
        StartError {
            kind: self.kind,
            message: format!("{context}: {}", self.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_dockers() {
        assert_eq!(StartError::berth("x").code(), 125);
        assert_eq!(StartError::cannot_run("x").code(), 126);
        assert_eq!(StartError::not_found("x").code(), 127);
    }

    #[test]
    fn survives_the_status_pipe() {
        let e = StartError::not_found("exec: \"nope\": executable file not found in $PATH");
        let back: StartError = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, e);
    }
}
