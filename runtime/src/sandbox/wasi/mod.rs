//! The WASI backend: a program that is a WebAssembly core module (wasm32-wasip1) or component
//! (wasm32-wasip2, `wasi:cli/run`) runs in wasmtime through wasmtime-wasi, with the container's
//! rootfs as the guest's `/` and its volumes as further preopens.
//!
//! On Linux the guest runs in the container's PID 1, inside the same namespaces, cgroup,
//! seccomp filter and dropped privileges as a native workload (`sandbox/linux/init.rs` calls
//! in here instead of exec); elsewhere it runs in the monitor over a private merged folder.

pub mod cache;
pub mod engine;
pub mod guest;
pub mod http;
pub mod launch;
pub mod runner;
pub mod stop;

pub use cache::ModuleCache;
pub use engine::{Program, WasiError};
pub use guest::{GuestSpec, Preopen};

/// What the cgroup allows a WASI container beyond `--memory`: `--memory` bounds the guest's
/// linear memory (the store limiter traps past it, with a message), and the engine, its
/// compiled code and stacks need room of their own, or the kernel's OOM killer would end the
/// container first and silently.
pub const RUNTIME_HEADROOM: u64 = 64 << 20;

/// A container's WASI program whose module digest the monitor found without the container
/// ([`ModuleCache::layer_module`]): PID 1 then maps its compiled artifact without
/// reading the module.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KnownModule {
    /// The program's absolute path in the container.
    pub path: String,
    /// The module's sha256, hex.
    pub sha256: String,
    /// A module or a component.
    pub kind: WasmKind,
}

/// What a WebAssembly binary is, from its first eight bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WasmKind {
    /// A core module: WASI preview 1.
    Module,
    /// A component: WASI preview 2.
    Component,
}

impl WasmKind {
    /// Reads the header: `\0asm`, then version 1 for a module or layer 1 for a component.
    pub fn detect(header: &[u8]) -> Option<WasmKind> {
        if header.len() < 8 || &header[..4] != b"\0asm" {
            return None;
        }
        match header[4..8] {
            [1, 0, 0, 0] => Some(WasmKind::Module),
            [_, _, 1, 0] => Some(WasmKind::Component),
            // An unknown version still says "wasm": compiling it gives the precise error.
            _ => Some(WasmKind::Module),
        }
    }

    /// The image os it makes: `wasip1` or `wasip2`.
    pub fn os(self) -> &'static str {
        match self {
            WasmKind::Module => "wasip1",
            WasmKind::Component => "wasip2",
        }
    }
}

/// Whether a file starts like WebAssembly.
pub fn is_wasm(header: &[u8]) -> bool {
    header.starts_with(b"\0asm")
}

/// The first eight bytes of the regular file at `path` (a store's file, not the container's),
/// opened without blocking (a FIFO an image put there answers `None`, not a hang).
#[cfg(unix)]
pub fn file_header(path: &std::path::Path) -> Option<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    read_header(&mut file).ok()
}

/// Reads a file's first eight bytes (fewer if it is shorter).
pub fn read_header(file: &mut impl std::io::Read) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::with_capacity(8);
    file.take(8).read_to_end(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_modules_and_components() {
        assert_eq!(
            WasmKind::detect(b"\0asm\x01\0\0\0rest"),
            Some(WasmKind::Module)
        );
        assert_eq!(
            WasmKind::detect(b"\0asm\x0d\0\x01\0"),
            Some(WasmKind::Component)
        );
        assert_eq!(WasmKind::detect(b"\x7fELF\x02\x01\x01\0"), None);
        assert_eq!(WasmKind::detect(b"\0asm"), None);
    }
}
