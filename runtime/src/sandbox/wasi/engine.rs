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

/// The one configuration: epoch interruption (how `stop` and `kill` end a guest stuck in a
/// loop, and how `serve` enforces a request's deadline) and the component model; wasmtime's
/// own defaults otherwise.
fn config() -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.wasm_component_model(true);
    config
}

/// Makes the engine of `run`, `exec` and `build`.
pub fn new_engine() -> Result<Engine, WasiError> {
    Engine::new(&config()).map_err(|e| WasiError::Engine(format!("{e:#}")))
}

/// How many instances a serving engine's pool holds at once.
#[derive(Debug, Clone, Copy)]
pub struct PoolSize {
    /// Component instances (one per request in flight).
    pub components: u32,
    /// Core instances and linear memories (a component made by Rust's wasm32-wasip2 target
    /// has a few: its own module, the preview-1 adapter and shims).
    pub core_instances: u32,
}

/// Makes the engine of `berth serve`: the same configuration as [`new_engine`] (so both share
/// the compile cache: how instances are allocated is not part of [`compatibility_key`]), with
/// the pooling allocator, which makes an instance per request cheap, when this host has the
/// address space for its reservations (the probe `wasmtime serve` makes); else wasmtime's
/// on-demand allocation. Tells which it got.
pub fn new_serving_engine(pool: PoolSize) -> Result<(Engine, bool), WasiError> {
    let mut config = config();
    if pooling_fits() {
        let mut p = wasmtime::PoolingAllocationConfig::new();
        p.total_component_instances(pool.components)
            .total_core_instances(pool.core_instances)
            .total_memories(pool.core_instances)
            .total_tables(pool.core_instances)
            .max_memories_per_component(pool.core_instances.min(16))
            .max_tables_per_component(pool.core_instances.min(16))
            .max_core_instances_per_component(pool.core_instances.min(32))
            // A slot's first pages are zeroed in place when an instance ends, not given back
            // to the kernel: the next request's instance then takes no page faults on them.
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT);
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(p));
        // A pool too large for this host's address space fails here: allocate on demand.
        if let Ok(engine) = Engine::new(&config) {
            return Ok((engine, true));
        }
    }
    let engine = Engine::new(&self::config()).map_err(|e| WasiError::Engine(format!("{e:#}")))?;
    Ok((engine, false))
}

/// How much of each pooled memory and table stays resident between instances: a small
/// function's whole heap and stack.
const KEEP_RESIDENT: usize = 1 << 20;

/// Whether 2^42 bytes of address space can be reserved: the pooling allocator's default
/// reservations for a thousand memories. Some aarch64 and riscv64 hosts have 39 bits.
fn pooling_fits() -> bool {
    const BITS: u32 = 42;
    let mut config = Config::new();
    config.wasm_memory64(true);
    config.memory_reservation(1 << BITS);
    let Ok(engine) = Engine::new(&config) else {
        return false;
    };
    let mut store = wasmtime::Store::new(&engine, ());
    wasmtime::Memory::new(
        &mut store,
        wasmtime::MemoryType::new64(0, Some(1 << (BITS - 16))),
    )
    .is_ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A module compiled by `run` or `build` is found by `serve`, and the other way round.
    #[test]
    fn serving_and_running_engines_share_the_compile_cache() {
        let run = new_engine().unwrap();
        let (serve, _) = new_serving_engine(PoolSize {
            components: 4,
            core_instances: 16,
        })
        .unwrap();
        assert_eq!(compatibility_key(&run), compatibility_key(&serve));
    }
}
