//! WASI images: an image whose entrypoint is a WebAssembly module or component gets the WASI
//! platform in its config (os `wasip1` for a module, `wasip2` for a component, arch `wasm`),
//! whatever `--platform` said, and its entrypoint is compiled into the store's compile cache
//! so the first `berth run` starts without compiling.

use std::path::PathBuf;

use berth_runtime::Store;
use berth_runtime::image::ImageConfig;
use berth_runtime::sandbox::wasi::{self, ModuleCache, WasmKind};

/// Sets the WASI platform on `config` when its entrypoint (or, without one, its command) is
/// wasm in the image's layers, and precompiles it. A compile failure is not the build's: the
/// module is reported at `run`, where it matters; here it is logged.
pub fn mark_wasi_entrypoint(store: &Store, config: &mut ImageConfig, quiet: bool) {
    let Some(rc) = &config.config else { return };
    let program = rc
        .entrypoint
        .as_ref()
        .filter(|e| !e.is_empty())
        .or(rc.cmd.as_ref())
        .and_then(|v| v.first())
        .cloned();
    let Some(program) = program.filter(|p| p.starts_with('/')) else {
        return;
    };
    let Some((snapshot, path)) = find(store, config, &program) else {
        return;
    };
    let Ok(bytes) = std::fs::read(&path) else {
        return;
    };
    let Some(kind) = WasmKind::detect(&bytes) else {
        return;
    };
    config.os = kind.os().into();
    config.architecture = "wasm".into();
    config.variant = None;
    let started = std::time::Instant::now();
    let outcome = wasi::engine::new_engine().and_then(|engine| {
        let cache = ModuleCache::for_store(store.root())?;
        // Remembered now, so even the first run maps the artifact without hashing the module.
        cache.layer_module(&snapshot, &program, &path)?;
        cache.precompile(&engine, &bytes, &program)
    });
    match outcome {
        Ok(wasi::cache::Outcome::Compiled) if !quiet => {
            println!(
                "Precompiled {program} ({}, {:.1}s)",
                match kind {
                    WasmKind::Module => "WASI module",
                    WasmKind::Component => "WASI component",
                },
                started.elapsed().as_secs_f64()
            );
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("not precompiling {program}: {e}"),
    }
}

/// The snapshot holding `program` in the image's layers, and the file.
#[cfg(target_os = "linux")]
fn find(store: &Store, config: &ImageConfig, program: &str) -> Option<(PathBuf, PathBuf)> {
    let top_first = store.snapshots_top_first(&config.rootfs.diff_ids);
    let (layer, file) = berth_runtime::image::snapshot::find_in_layers(&top_first, program)?;
    Some((top_first[layer].clone(), file))
}

#[cfg(not(target_os = "linux"))]
fn find(store: &Store, config: &ImageConfig, program: &str) -> Option<(PathBuf, PathBuf)> {
    let _ = (store, config, program);
    None
}
