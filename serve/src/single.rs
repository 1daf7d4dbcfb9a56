//! One wasi:http component served with no store and no routes file: the server of a container
//! whose program is such a component (`berth run`, the containerd shim). It runs inside the
//! container, as the container's PID 1, with the container's files, environment and memory
//! limit, and answers every path (`/...`) until the container is stopped.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use berth_runtime::sandbox::wasi::GuestSpec;
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::access_log::AccessLog;
use crate::config::{
    ContainerSettings, DEFAULT_TIMEOUT, ExecutorKind, LogFormat, RouteConfig, RouteLimits,
    ServerLimits,
};
use crate::executor::GuestSetup;
use crate::executor::wasi_http::{self, WasiHttpFunction};
use crate::function::{Executor, Function};
use crate::guest_output::GuestOutput;
use crate::route::Route;
use crate::run::{EpochTicker, LogWriter, raise_open_files_limit, spawn_accept_loops};
use crate::server::{Server, Slot};

/// Serves `component` on `listen` until the process ends; says why when it cannot start.
/// Outgoing HTTP is refused, as `berth serve` refuses it by default.
pub fn serve_component(
    engine: &Engine,
    component: &Component,
    spec: &GuestSpec,
    listen: SocketAddr,
) -> Result<(), String> {
    raise_open_files_limit();
    let route = RouteConfig {
        route: Route::parse("/...").map_err(|e| e.to_string())?,
        image: spec.name.clone(),
        executor: Some(ExecutorKind::WasiHttp),
        env: Vec::new(),
        volumes: Vec::new(),
        limits: RouteLimits {
            memory: spec.memory,
            timeout: DEFAULT_TIMEOUT,
        },
        container: ContainerSettings::default(),
        origin: "the container".into(),
    };
    let pre = wasi_http::link(engine, component).map_err(|e| format!("{}: {e}", spec.name))?;
    let guest = Arc::new(GuestSetup {
        spec: spec.clone(),
        limits: route.limits,
        output: GuestOutput::new(&route.route.to_string(), "out"),
    });
    let function = Function {
        image_id: None,
        kind: ExecutorKind::WasiHttp,
        cached: false,
        executor: Executor::WasiHttp(WasiHttpFunction::new(engine.clone(), pre, guest, false)),
        _rootfs: None,
    };
    let listener = crate::listener::bind(listen).map_err(|e| {
        format!(
            "listening on {listen}: {e}: set {}=ADDRESS:PORT to serve elsewhere",
            berth_runtime::sandbox::wasi::http::LISTEN_ENV
        )
    })?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let slots = vec![Slot {
        config: route,
        function: RwLock::new(Arc::new(function)),
    }];
    let limits = ServerLimits::default();
    let server = Arc::new(Server::new(
        slots,
        limits,
        AccessLog::new(LogFormat::Text, None),
        local,
    ));
    let _ticker = EpochTicker::start(engine.clone());
    let _log = LogWriter::start();
    // Never told to stop: the container's stop signal ends the process.
    let (_stop, stopping) = tokio::sync::watch::channel(false);
    let loops = spawn_accept_loops(listener, &server, stopping)
        .map_err(|e| format!("starting the server: {e}"))?;
    // Best effort, as the access log: stderr may be a fifo whose reader is gone (`ctr run -d`),
    // and a panic here would end the container.
    let _ = writeln!(
        std::io::stderr(),
        "berth: serving {} on http://{local}",
        spec.name
    );
    for l in loops {
        let _ = l.join();
    }
    Ok(())
}
