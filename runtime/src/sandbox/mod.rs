//! Sandboxes: what isolates a workload. `linux` holds the native backend's kernel pieces
//! (namespaces, rootfs, cgroups, capabilities, seccomp); `wasi` the WebAssembly backend.

#[cfg(target_os = "linux")]
pub mod linux;
pub mod wasi;
