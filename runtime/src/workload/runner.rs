//! Running a workload, the seam every host of a workload goes through: the container monitor
//! holds a container for its whole life (its log, its ports, `stop`), but `berth serve` and a
//! containerd shim need only "run this spec over this root filesystem to its end". A
//! [`Runner`] does that for one backend, with no container record, monitor or store:
//! - the WASI runner (`sandbox::wasi::runner`) runs the guest in this process, with the
//!   folder as the guest's `/` (the same setup as a container's PID 1, `sandbox::wasi::launch`);
//! - the native runner (`sandbox::linux::runner`, Linux) starts the container's init as the
//!   monitor does, with the folder as the lower layer of an overlay, in namespaces and a
//!   cgroup of its own, and waits for it.

use std::path::Path;

use super::{StartError, WorkloadSpec};
use crate::backend::Backend;

/// A workload and the folder that is its root filesystem.
#[derive(Debug, Clone, Copy)]
pub struct Workload<'a> {
    /// Its name: a native run names its cgroup and scratch folder for it (letters, digits,
    /// `_`, `.` and `-`).
    pub id: &'a str,
    /// What runs (`spec.backend` says which runner takes it).
    pub spec: &'a WorkloadSpec,
    /// The folder that is its `/` (an image's layers merged, a bundle's rootfs). A native run
    /// never writes into it (an overlay takes the writes); a WASI guest writes into it unless
    /// `spec.read_only`.
    pub rootfs: &'a Path,
}

/// Runs workloads of one backend to their end, in the foreground, with this process' stdio.
pub trait Runner {
    /// The backend it is.
    fn backend(&self) -> Backend;

    /// Runs `workload` to its end: its exit code (the workload's own, or 128 + a signal), or
    /// why it could not start (with Docker's 125, 126 or 127 as [`StartError::code`]).
    fn run(&self, workload: &Workload<'_>) -> Result<i32, StartError>;
}
