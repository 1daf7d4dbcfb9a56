//! Running a compiled program as a WASI guest: its args, env and working directory, stdio
//! inherited from the container's, `/` and the volumes as preopened folders, memory held to
//! `--memory` through a store limiter, and an epoch deadline that `stop` and `kill` trip.
//!
//! A component's exit code: preview 2's `wasi:cli/exit.exit` carries only success or failure,
//! so Rust's std and wasi-libc report any non-zero `exit(n)` as 1 (as `wasmtime run` does).
//! Only `wasi:cli/exit.exit-with-code` (WASI 0.2.12, linked here) gives the guest's own code.

use std::path::PathBuf;

use wasmtime::component::{Linker as ComponentLinker, ResourceTable};
use wasmtime::{Engine, Linker, ResourceLimiter, Store, Trap};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::bindings::sync::Command;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::engine::{Program, WasiError};
use super::stop;

/// A host folder the guest sees at `guest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preopen {
    /// The host folder (inside a container on Linux: a path of its rootfs).
    pub host: PathBuf,
    /// Where the guest sees it: `/`, or a volume's destination.
    pub guest: String,
    /// Writes are refused.
    pub read_only: bool,
}

/// What a guest runs with.
#[derive(Debug, Clone, Default)]
pub struct GuestSpec {
    /// The program as the user named it (messages only).
    pub name: String,
    /// argv, the program first.
    pub args: Vec<String>,
    /// `KEY=VALUE` entries.
    pub env: Vec<String>,
    /// The working directory, absolute.
    pub cwd: String,
    /// `/` first, then the volumes.
    pub preopens: Vec<Preopen>,
    /// `--memory`: the most linear memory the guest may hold, in bytes.
    pub memory: Option<u64>,
    /// Give the guest network access (inside the container's network namespace on Linux).
    pub network: bool,
}

/// Holds linear memories to `--memory` and remembers a refusal, so the exit explains it.
struct MemoryLimiter {
    limit: Option<usize>,
    exceeded: Option<usize>,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if let Some(limit) = self.limit
            && desired > limit
        {
            self.exceeded = Some(desired);
            // An error (not `false`) traps at once: the guest cannot carry on half-fed.
            wasmtime::bail!("memory limit exceeded");
        }
        Ok(maximum.is_none_or(|m| desired <= m))
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(maximum.is_none_or(|m| desired <= m))
    }
}

/// A core module's store state.
struct P1State {
    wasi: WasiP1Ctx,
    limiter: MemoryLimiter,
}

/// A component's store state.
struct P2State {
    ctx: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
}

impl WasiView for P2State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

fn setup(e: impl std::fmt::Display) -> WasiError {
    WasiError::Setup(e.to_string())
}

/// The WASI context for `spec`, with the container's stdio.
fn context(spec: &GuestSpec) -> Result<WasiCtxBuilder, WasiError> {
    // The guest is alone in its process: a file operation (or a sleep) may block this thread
    // (as in `wasmtime run`) rather than go to a thread of tokio's blocking pool and back,
    // which cost a few tens of microseconds (and two wakeups) per call. `stop` is unchanged: a
    // guest blocked in a host call is past an epoch check either way, and is killed after the
    // stop timeout.
    let mut b = builder(spec, true)?;
    b.inherit_stdio();
    Ok(b)
}

/// The WASI context for `spec` without stdio (the caller gives it: `serve` gives a request's
/// body and a log): args, environment, working directory, preopens, network. `blocking` lets
/// file operations and sleeps block the calling thread; a host that runs many guests on one
/// thread (`serve`) must not.
pub fn builder(spec: &GuestSpec, blocking: bool) -> Result<WasiCtxBuilder, WasiError> {
    let mut b = WasiCtxBuilder::new();
    b.args(&spec.args);
    b.allow_blocking_current_thread(blocking);
    for kv in &spec.env {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        b.env(k, v);
    }
    // wasi-libc starts relative paths from PWD (preview 1) or the initial cwd (preview 2).
    if !spec.env.iter().any(|kv| kv.starts_with("PWD=")) {
        b.env("PWD", &spec.cwd);
    }
    b.initial_cwd(&spec.cwd);
    for p in &spec.preopens {
        let perms = if p.read_only {
            FsPerms::ReadOnly
        } else {
            FsPerms::ReadWrite
        };
        b.preopened_dir(&p.host, &p.guest, perms).map_err(|e| {
            setup(format!(
                "giving the guest {} (from {}): {e:#}",
                p.guest,
                p.host.display()
            ))
        })?;
    }
    if spec.network {
        b.inherit_network().allow_ip_name_lookup(true);
    }
    Ok(b)
}

/// Runs `program` to its end and gives the container's exit code: the guest's own, 137 when it
/// outgrew `--memory`, 128 + the signal when `stop`/`kill` ended it, 134 for a trap (as
/// `wasmtime run` reports one). Setup failures are errors; what the guest does is a code.
pub fn run(engine: &Engine, program: &Program, spec: &GuestSpec) -> Result<i32, WasiError> {
    let limiter = MemoryLimiter {
        limit: spec.memory.map(|m| m.min(usize::MAX as u64) as usize),
        exceeded: None,
    };
    let mut builder = context(spec)?;
    let (result, exceeded) = match program {
        Program::Module(module) => {
            let mut linker: Linker<P1State> = Linker::new(engine);
            wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s| &mut s.wasi).map_err(setup)?;
            let mut store = Store::new(
                engine,
                P1State {
                    wasi: builder.build_p1(),
                    limiter,
                },
            );
            store.limiter(|s| &mut s.limiter);
            store.set_epoch_deadline(1);
            store.epoch_deadline_trap();
            let r = linker
                .instantiate(&mut store, module)
                .and_then(|i| {
                    i.get_typed_func::<(), ()>(&mut store, "_start")
                        .map_err(|e| e.context("the module has no WASI _start export (a command)"))
                })
                .and_then(|f| f.call(&mut store, ()));
            (r, store.data().limiter.exceeded)
        }
        Program::Component(component) if super::http::is_served(engine, component) => {
            super::http::serve(engine, component, spec).map_err(WasiError::Setup)?;
            return Ok(0);
        }
        Program::Component(component) => {
            let mut linker: ComponentLinker<P2State> = ComponentLinker::new(engine);
            // Links `wasi:cli/exit.exit-with-code` too: stable since WASI 0.2.12, which
            // wasmtime-wasi 48 implements, so no LinkOptions feature is needed for it.
            wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(setup)?;
            let mut store = Store::new(
                engine,
                P2State {
                    ctx: builder.build(),
                    table: ResourceTable::new(),
                    limiter,
                },
            );
            store.limiter(|s| &mut s.limiter);
            store.set_epoch_deadline(1);
            store.epoch_deadline_trap();
            let r = Command::instantiate(&mut store, component, &linker)
                .and_then(|c| c.wasi_cli_run().call_run(&mut store))
                .and_then(|r| r.map_err(|()| I32Exit(1).into()));
            (r, store.data().limiter.exceeded)
        }
    };
    Ok(exit_code(&spec.name, result, exceeded, spec.memory))
}

/// Maps the guest's end to Docker's exit code, saying why on stderr when it did not exit by
/// itself.
fn exit_code(
    name: &str,
    result: wasmtime::Result<()>,
    exceeded: Option<usize>,
    limit: Option<u64>,
) -> i32 {
    let e = match result {
        Ok(()) => return 0,
        Err(e) => e,
    };
    if let Some(exit) = e.downcast_ref::<I32Exit>() {
        return exit.0;
    }
    if let Some(sig) = stop::stopped_by() {
        return 128 + sig;
    }
    if let Some(wanted) = exceeded {
        eprintln!(
            "berth: {name} was stopped: it asked for {} MiB of memory, more than --memory {} MiB allows",
            wanted >> 20,
            limit.unwrap_or(0) >> 20
        );
        return 137;
    }
    if matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
        eprintln!("berth: {name} was interrupted");
        return 130;
    }
    if is_link_error(&e) {
        eprintln!("berth: {name} cannot run: {e:#}");
        return 126;
    }
    eprintln!("berth: {name} trapped: {e:?}");
    134
}

/// Whether instantiation failed on imports (a module for another host, e.g. not WASI).
fn is_link_error(e: &wasmtime::Error) -> bool {
    let s = format!("{e:#}");
    s.contains("unknown import")
        || s.contains("no WASI _start")
        || s.contains("incompatible import")
}
