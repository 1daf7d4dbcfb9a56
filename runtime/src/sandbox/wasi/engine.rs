//! The wasmtime engine every WASI workload and every precompile uses. One configuration, so
//! an artifact compiled by `berth build` loads in `berth run` (the compatibility key below
//! names the configuration in the compile cache).

use std::hash::Hasher;

use sha2::{Digest as _, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, Module};

use super::WasmKind;

/// Why a WASI workload could not run.
#[derive(Debug, thiserror::Error)]
pub enum WasiError {
    /// The engine could not be made.
    #[error("starting the wasm engine: {0}")]
    Engine(String),
    /// The program is not valid WebAssembly, or not WASI.
    #[error("{name} is not a valid WebAssembly module: {message}")]
    Invalid {
        /// The program, as the user named it.
        name: String,
        /// wasmtime's reason.
        message: String,
    },
    /// The guest could not be set up (imports, preopens, instantiation).
    #[error("{0}")]
    Setup(String),
    /// A file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl From<WasiError> for crate::workload::StartError {
    /// Berth's own failures (the engine, a file) are 125; a program that is not valid or not
    /// WASI cannot run: 126.
    fn from(e: WasiError) -> Self {
        use crate::workload::StartError;
        match e {
            WasiError::Engine(_) | WasiError::Io { .. } => StartError::berth(e),
            WasiError::Invalid { .. } | WasiError::Setup(_) => StartError::cannot_run(e),
        }
    }
}

/// A compiled program, ready to instantiate.
#[derive(Clone)]
pub enum Program {
    /// A core module (WASI preview 1).
    Module(Module),
    /// A component (WASI preview 2).
    Component(Component),
}

impl Program {
    /// Which kind it is.
    pub fn kind(&self) -> WasmKind {
        match self {
            Program::Module(_) => WasmKind::Module,
            Program::Component(_) => WasmKind::Component,
        }
    }
}

/// Makes the engine: epoch interruption (how `stop` and `kill` end a guest stuck in a loop)
/// and the component model; wasmtime's own defaults otherwise.
pub fn new_engine() -> Result<Engine, WasiError> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.wasm_component_model(true);
    Engine::new(&config).map_err(|e| WasiError::Engine(format!("{e:#}")))
}

/// The engine's compatibility key: artifacts compiled under another wasmtime version or
/// configuration have another key, so the cache never offers them.
pub fn compatibility_key(engine: &Engine) -> String {
    /// Feeds `Hash` into sha256, so the key is stable across Rust versions (unlike
    /// `DefaultHasher`).
    struct ShaHasher(Sha256);
    impl Hasher for ShaHasher {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut h = ShaHasher(Sha256::new());
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut h);
    hex::encode(&h.0.finalize()[..8])
}

/// Compiles `wasm` (named `name` in errors) for `engine`.
pub fn compile(engine: &Engine, wasm: &[u8], name: &str) -> Result<Program, WasiError> {
    let invalid = |e: wasmtime::Error| WasiError::Invalid {
        name: name.to_string(),
        message: format!("{e:#}"),
    };
    match WasmKind::detect(wasm) {
        Some(WasmKind::Component) => Component::new(engine, wasm)
            .map(Program::Component)
            .map_err(invalid),
        Some(WasmKind::Module) => Module::new(engine, wasm)
            .map(Program::Module)
            .map_err(invalid),
        None => Err(WasiError::Invalid {
            name: name.to_string(),
            message: "it does not start with the WebAssembly magic bytes (\\0asm)".into(),
        }),
    }
}
