//! The status channel from a container's init to its monitor: typed messages, one JSON
//! document per line, each sent in a single write so that `__init` and PID 1, which both hold
//! the pipe, never interleave (a write of at most `PIPE_BUF` bytes to a pipe is atomic).
//!
//! The init says the container's pid as soon as it knows it, and why the workload could not
//! start if it could not. A successful start closes every copy of the pipe (the workload's exec
//! closes PID 1's; a WASI guest's PID 1 closes it before the guest runs), so end-of-file after
//! a pid means the workload runs.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};

use serde::{Deserialize, Serialize};

use crate::workload::StartError;

/// The most a message may take: a pipe's atomic write.
const MAX_MESSAGE: usize = 4096;

/// One message from the init.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusMessage {
    /// The container's first process, as the host sees it.
    Pid(i32),
    /// The workload could not start.
    Failed(StartError),
}

impl StatusMessage {
    /// The message as one line, cut to fit one atomic write (a long error loses its tail).
    fn encode(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        if let StatusMessage::Failed(e) = self {
            // Escaping may grow a message up to sixfold: cut until the line fits.
            let mut keep = e.message.len();
            while line.len() >= MAX_MESSAGE && keep > 0 {
                keep = (keep / 2).min(MAX_MESSAGE / 2);
                while !e.message.is_char_boundary(keep) {
                    keep -= 1;
                }
                let short = StatusMessage::Failed(StartError {
                    kind: e.kind,
                    message: format!("{}…", &e.message[..keep]),
                });
                line = serde_json::to_vec(&short).unwrap_or_default();
            }
        }
        line.push(b'\n');
        line
    }
}

/// Sends one message on the status pipe, in one write.
pub fn send(mut pipe: &File, message: &StatusMessage) {
    let _ = pipe.write_all(&message.encode());
}

/// What the monitor learned from the status pipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartReport {
    /// The workload runs, as this pid.
    Running(i32),
    /// It could not start.
    Failed(StartError),
}

/// Reads the status pipe to its end. `on_pid` gets the pid the moment it is known (the monitor
/// moves it into its cgroup then, which lets the workload go on); an error it returns ends the
/// start.
pub fn read(pipe: File, mut on_pid: impl FnMut(i32) -> Result<(), StartError>) -> StartReport {
    let mut pid = None;
    for line in BufReader::new(pipe).lines() {
        match parse(line) {
            Ok(StatusMessage::Pid(p)) => {
                if let Err(e) = on_pid(p) {
                    return StartReport::Failed(e);
                }
                pid = Some(p);
            }
            Ok(StatusMessage::Failed(e)) | Err(e) => return StartReport::Failed(e),
        }
    }
    match pid {
        Some(p) => StartReport::Running(p),
        None => StartReport::Failed(ended_early()),
    }
}

/// One line of the pipe, as a message.
fn parse(line: std::io::Result<String>) -> Result<StatusMessage, StartError> {
    let line = line.map_err(|e| StartError::berth(format!("reading the container's init: {e}")))?;
    serde_json::from_str::<StatusMessage>(&line).map_err(|e| {
        StartError::berth(format!(
            "the container's init sent {line:?}, which is not a status message: {e}"
        ))
    })
}

fn ended_early() -> StartError {
    StartError::berth("the container's init ended before starting the workload")
}

/// The status pipe read in two steps, for a host that creates a container and starts it
/// later (containerd's shim): PID 1's pid once the container is made, then, after the go
/// byte, whether its workload started.
pub struct TwoStep(BufReader<File>);

impl TwoStep {
    /// Reads up to PID 1's pid.
    pub fn pid(pipe: File) -> Result<(TwoStep, i32), StartError> {
        let mut reader = BufReader::new(pipe);
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => Err(ended_early()),
            Ok(_) => match parse(Ok(line.trim_end().to_string()))? {
                StatusMessage::Pid(p) => Ok((TwoStep(reader), p)),
                StatusMessage::Failed(e) => Err(e),
            },
            Err(e) => Err(StartError::berth(format!(
                "reading the container's init: {e}"
            ))),
        }
    }

    /// Reads to the end: the workload started, or why it did not.
    pub fn started(self) -> Result<(), StartError> {
        for line in self.0.lines() {
            match parse(line)? {
                StatusMessage::Pid(_) => {}
                StatusMessage::Failed(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn through_a_pipe(messages: &[StatusMessage]) -> (StartReport, Vec<i32>) {
        let (r, w) = nix::unistd::pipe().unwrap();
        let w = File::from(w);
        for m in messages {
            send(&w, m);
        }
        drop(w);
        let mut seen = Vec::new();
        let report = read(File::from(r), |p| {
            seen.push(p);
            Ok(())
        });
        (report, seen)
    }

    #[test]
    fn a_pid_then_the_end_is_a_start() {
        let (report, seen) = through_a_pipe(&[StatusMessage::Pid(42)]);
        assert_eq!(report, StartReport::Running(42));
        assert_eq!(seen, vec![42]);
    }

    #[test]
    fn a_failure_after_the_pid_wins() {
        let e = StartError::not_found("exec: \"x\": executable file not found in $PATH");
        let (report, _) =
            through_a_pipe(&[StatusMessage::Pid(7), StatusMessage::Failed(e.clone())]);
        assert_eq!(report, StartReport::Failed(e));
    }

    #[test]
    fn nothing_is_a_failure_of_berth() {
        let (report, _) = through_a_pipe(&[]);
        assert!(matches!(report, StartReport::Failed(e) if e.code() == 125));
    }

    #[test]
    fn a_long_error_fits_one_write() {
        let e = StartError::cannot_run("é".repeat(10_000));
        let line = StatusMessage::Failed(e).encode();
        assert!(line.len() < MAX_MESSAGE, "{}", line.len());
        let escaped = StatusMessage::Failed(StartError::cannot_run("\u{1}".repeat(4000))).encode();
        assert!(escaped.len() < MAX_MESSAGE, "{}", escaped.len());
        let (report, _) = through_a_pipe(&[StatusMessage::Failed(StartError::cannot_run(
            "x\ny".repeat(3000),
        ))]);
        assert!(matches!(report, StartReport::Failed(e) if e.code() == 126));
    }
}
