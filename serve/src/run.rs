//! Starting and stopping a server: the serving engine and its epoch ticker, the routes'
//! functions, the listener, the accept loop, and the drain on SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use berth_runtime::sandbox::wasi::engine::{PoolSize, new_serving_engine};
use berth_runtime::store::Store;
use hyper_util::server::graceful::GracefulShutdown;
use wasmtime::Engine;

use crate::access_log::AccessLog;
use crate::config::{ExecutorKind, ServeConfig};
use crate::function::{LoadError, Loader};
use crate::server::{Server, Slot};

/// How often the engine's epoch ticks: how late past its deadline a busy guest is stopped, and
/// how long it runs before giving its thread to others.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Why a server could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A route's image could not be served.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A route's image is not in the store.
    #[error("{origin}: {message}")]
    Image {
        /// The route.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// The listen address could not be bound.
    #[error("listening on {addr}: {source}{hint}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
        /// What to do.
        hint: &'static str,
    },
    /// The engine or the async runtime could not be made.
    #[error("{0}")]
    Setup(String),
}

/// A route as served, for the start-up message.
#[derive(Debug, Clone)]
pub struct ServedRoute {
    /// The route.
    pub route: String,
    /// The image as named.
    pub image: String,
    /// Its id.
    pub image_id: String,
    /// The executor.
    pub kind: ExecutorKind,
    /// Whether its program came from the compile cache.
    pub cached: bool,
}

/// What a started server tells its caller.
#[derive(Debug, Clone)]
pub struct Started {
    /// The bound address (the port chosen when 0 was asked).
    pub addr: SocketAddr,
    /// The routes.
    pub routes: Vec<ServedRoute>,
    /// Whether instances come from the pooling allocator.
    pub pooling: bool,
}

/// Serves `config` from `store` until SIGTERM or Ctrl-C, then drains; `started` is called once
/// the server listens. Blocks.
pub fn serve(
    config: ServeConfig,
    store: Arc<Store>,
    started: impl FnOnce(&Started),
) -> Result<(), ServeError> {
    raise_open_files_limit();
    let limits = config.limits;
    let requests = u32::try_from(limits.max_concurrent_requests).unwrap_or(u32::MAX);
    // Instances outlive their request's response briefly (post-return), hence twice.
    let components = requests.saturating_mul(2).saturating_add(16);
    let (engine, pooling) = new_serving_engine(PoolSize {
        components,
        core_instances: components.saturating_mul(8),
    })
    .map_err(|e| ServeError::Setup(e.to_string()))?;
    let loader = Arc::new(Loader::new(
        store.clone(),
        engine.clone(),
        limits.max_body_size,
    ));
    let mut slots = Vec::new();
    let mut served = Vec::new();
    for r in &config.routes {
        let image = store.find_image(&r.image).map_err(|e| ServeError::Image {
            origin: r.origin.clone(),
            message: format!("{e}"),
        })?;
        let f = loader.load(r, &image)?;
        served.push(ServedRoute {
            route: r.route.to_string(),
            image: r.image.clone(),
            image_id: f.image_id.short().to_string(),
            kind: f.kind,
            cached: f.cached,
        });
        slots.push(Slot {
            config: r.clone(),
            function: RwLock::new(Arc::new(f)),
        });
    }
    let listener = std::net::TcpListener::bind(config.listen).map_err(|source| ServeError::Listen {
        addr: config.listen,
        hint: match source.kind() {
            std::io::ErrorKind::AddrInUse => {
                ": another program listens there: choose another address with --listen (port 0 picks a free one)"
            }
            std::io::ErrorKind::PermissionDenied => ": ports below 1024 need root: choose a higher port with --listen",
            _ => "",
        },
        source,
    })?;
    let setup = |e: std::io::Error| ServeError::Setup(format!("starting the server: {e}"));
    listener.set_nonblocking(true).map_err(setup)?;
    let local = listener.local_addr().map_err(setup)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("berth-serve")
        .build()
        .map_err(setup)?;
    let _ticker = EpochTicker::start(engine);
    started(&Started {
        addr: local,
        routes: served,
        pooling,
    });
    let server = Arc::new(Server::new(
        slots,
        limits,
        AccessLog::new(config.log_format),
        local,
    ));
    runtime.block_on(accept_loop(listener, server, loader))
}

/// Accepts connections until asked to stop, then lets the requests in flight finish (up to
/// the grace period).
async fn accept_loop(
    listener: std::net::TcpListener,
    server: Arc<Server>,
    loader: Arc<Loader>,
) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::from_std(listener)
        .map_err(|e| ServeError::Setup(format!("starting the server: {e}")))?;
    let limits = *server.limits();
    let graceful = GracefulShutdown::new();
    let open = Arc::new(AtomicUsize::new(0));
    let reload = tokio::spawn(crate::reload::watch(server.clone(), loader));
    let mut stop = std::pin::pin!(stop_requested());
    loop {
        let (stream, remote) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors or the like: say so, back off, keep serving the others.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        if open.load(Ordering::Relaxed) >= limits.max_connections {
            drop(stream);
            continue;
        }
        let counted = Counted::new(open.clone());
        let conn = graceful.watch(server.connection(stream, remote));
        tokio::spawn(async move {
            // A client's protocol error or timeout ends its connection only.
            let _ = conn.await;
            drop(counted);
        });
    }
    drop(listener);
    reload.abort();
    eprintln!(
        "berth serve: stopping: no new connections; waiting up to {:?} for the requests in flight",
        limits.grace_period
    );
    tokio::select! {
        _ = graceful.shutdown() => eprintln!("berth serve: stopped"),
        _ = tokio::time::sleep(limits.grace_period) => eprintln!(
            "berth serve: stopped: the grace period ended with {} connections open; they were cut",
            open.load(Ordering::Relaxed)
        ),
        _ = stop_requested() => eprintln!("berth serve: stopped at once (asked twice)"),
    }
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
async fn stop_requested() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// One open connection, counted while it lives.
struct Counted(Arc<AtomicUsize>);

impl Counted {
    fn new(count: Arc<AtomicUsize>) -> Counted {
        count.fetch_add(1, Ordering::Relaxed);
        Counted(count)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The server's one epoch ticker: every guest's deadline check and yield hang off it.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("berth-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .ok();
        EpochTicker { stop, thread }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Idle keep-alive connections each hold a descriptor: as root, take the hard limit.
fn raise_open_files_limit() {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let mut l = getrlimit(Resource::Nofile);
        if l.current < l.maximum {
            l.current = l.maximum;
            let _ = setrlimit(Resource::Nofile, l);
        }
    }
}
