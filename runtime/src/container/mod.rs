//! Containers: their state on disk, their logs, and the monitor process that runs each one.
//!
//! There is no daemon: a container's state is `containers/<id>/state.json`, written by the
//! command that changes it and by the container's monitor (a small process that holds the
//! container's stdio, writes its log, reaps it and records its exit). Any berth command reads
//! the state; a monitor that died is noticed, so a container never shows as a ghost "running".

pub mod create;
mod handshake;
pub mod lifecycle;
pub mod log;
#[cfg(target_os = "linux")]
pub mod monitor;
pub mod portable;
pub mod process;
#[cfg(target_os = "linux")]
pub(crate) mod spawn;
pub mod state;
pub mod store;
#[cfg(target_os = "linux")]
pub mod tty;

pub use state::{Container, Isolation, RunState, Status};

/// The label that marks a build's RUN-step containers; `berth ps` hides them, as BuildKit's.
pub const BUILD_LABEL: &str = "berth.build";
