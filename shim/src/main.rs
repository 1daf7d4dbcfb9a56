//! `containerd-shim-berth-v1`: containerd's runtime `io.containerd.berth.v1`. containerd runs
//! it per task (`start`, then the task API over ttrpc, then `delete`); the task's workload runs
//! through berth's runtime, as `berth run`'s does: a WASI guest when its program is wasm, a
//! native process otherwise.
//!
//! The binary is its own container init: a workload's `__init` and an exec's `__exec` are this
//! binary again (sealed, as berth's are), so it needs no `berth` beside it.

#[cfg(target_os = "linux")]
mod console;
#[cfg(target_os = "linux")]
mod events;
#[cfg(target_os = "linux")]
mod exec;
#[cfg(target_os = "linux")]
mod instance;
#[cfg(target_os = "linux")]
mod life;
#[cfg(target_os = "linux")]
mod service;
#[cfg(target_os = "linux")]
mod state;
#[cfg(target_os = "linux")]
mod stdio;
#[cfg(target_os = "linux")]
mod task;

/// The runtime name containerd knows this shim by.
#[cfg(target_os = "linux")]
const RUNTIME: &str = "io.containerd.berth.v1";

#[cfg(target_os = "linux")]
fn main() {
    // A task whose program is a wasi:http component serves it, as `berth run` does.
    berth_runtime::sandbox::wasi::http::register_server(berth_serve::serve_component);
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("__init") => {
            let fd = |i: usize| args.get(i).and_then(|a| a.parse().ok());
            let (Some(status), Some(monitor)) = (fd(3), fd(4)) else {
                eprintln!("containerd-shim-berth-v1: __init CONFIG STATUS_FD MONITOR [GO_FD]");
                std::process::exit(125);
            };
            berth_runtime::sandbox::linux::init::main(
                std::path::Path::new(&args[2]),
                status,
                monitor,
                fd(5),
            )
        }
        Some("__exec") if args.len() == 3 => {
            berth_runtime::sandbox::linux::nsexec::main(std::path::Path::new(&args[2]))
        }
        _ => containerd_shim::run::<service::Service>(RUNTIME, None),
    }
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!(
        "containerd-shim-berth-v1 runs on Linux only: containerd's Windows shims are another kind"
    );
    std::process::exit(1);
}
