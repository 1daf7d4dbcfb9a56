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
use crate::metrics::Metrics;
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
    // The cause is in the message, not the error's source: `{:#}` would print it twice.
    #[error("listening on {addr}: {cause}{hint}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        cause: std::io::Error,
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
    /// The names of its containers (the container executor's).
    pub containers: Vec<String>,
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
    /// Where the metrics are served, with `--metrics`.
    pub metrics: Option<SocketAddr>,
    /// Containers an earlier server of the same source left, removed at the start.
    pub removed: Vec<String>,
}

/// Serves `config` from `store` until SIGTERM or Ctrl-C, then drains; `started` is called once
/// the server listens. Blocks.
pub fn serve(
    config: ServeConfig,
    store: Arc<Store>,
    started: impl FnOnce(&Started),
) -> Result<(), ServeError> {
    // Dropped last: whatever ends the server, the containers it removes are gone when it returns.
    let _removals = WaitForRemovals;
    raise_open_files_limit();
    let limits = config.limits;
    let requests = u32::try_from(limits.max_concurrent_requests).unwrap_or(u32::MAX);
    // Instances outlive their response briefly, and each route keeps one made ahead.
    let routes = u32::try_from(config.routes.len()).unwrap_or(u32::MAX);
    let components = requests
        .saturating_mul(2)
        .saturating_add(routes.saturating_mul(2))
        .saturating_add(16);
    let (engine, pooling) = new_serving_engine(PoolSize {
        components,
        core_instances: components.saturating_mul(8),
    })
    .map_err(|e| ServeError::Setup(e.to_string()))?;
    let metrics = config.metrics.map(|_| Arc::new(Metrics::new()));
    // The access log counts every request: the metrics live as long as the process.
    let counted: Option<&'static Metrics> = metrics.clone().map(|m| &**Box::leak(Box::new(m)));
    let loader = Loader::new(
        store.clone(),
        engine.clone(),
        limits.max_body_size,
        config.allow_outbound_http,
    )
    .with_metrics(metrics.clone());
    #[cfg(target_os = "linux")]
    let (loader, removed) = {
        use crate::executor::container;
        let owner = container::Owner::this_server(&config.source);
        let removed = container::remove_predecessors(&store, &owner);
        let loader = loader.with_containers(container::Context {
            owner,
            log_level: config.log_level.clone(),
            max_queued: limits.max_queued_requests,
        });
        (loader, removed)
    };
    #[cfg(not(target_os = "linux"))]
    let removed = Vec::new();
    let loader = Arc::new(loader);
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
            image_id: f
                .image_id
                .as_ref()
                .map_or_else(String::new, |d| d.short().to_string()),
            kind: f.kind,
            cached: f.cached,
            containers: container_names(&store, &f),
        });
        slots.push(Slot {
            config: r.clone(),
            function: RwLock::new(Arc::new(f)),
        });
    }
    let listener = crate::listener::bind(config.listen).map_err(|cause| ServeError::Listen {
        addr: config.listen,
        hint: match cause.kind() {
            std::io::ErrorKind::AddrInUse => {
                ": another program listens there: choose another address with --listen (port 0 picks a free one)"
            }
            std::io::ErrorKind::PermissionDenied => ": ports below 1024 need root: choose a higher port with --listen",
            _ => "",
        },
        cause,
    })?;
    let setup = |e: std::io::Error| ServeError::Setup(format!("starting the server: {e}"));
    let local = listener.local_addr().map_err(setup)?;
    let control = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(setup)?;
    let _ticker = EpochTicker::start(engine);
    let _log = LogWriter::start();
    let metrics_listener = match config.metrics {
        Some(addr) => Some(crate::listener::bind(addr).map_err(|cause| ServeError::Listen {
            addr,
            hint: ": the --metrics address is taken or not this host's: choose another (port 0 picks a free one)",
            cause,
        })?),
        None => None,
    };
    let metrics_addr = match &metrics_listener {
        Some(l) => Some(l.local_addr().map_err(setup)?),
        None => None,
    };
    // Caught from now on: a SIGTERM right after the "listening" line drains too.
    let mut signals = {
        let _in = control.enter();
        StopSignals::new().map_err(setup)?
    };
    let server = Arc::new(Server::new(
        slots,
        limits,
        AccessLog::new(config.log_format, counted),
        local,
    ));
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let loops = spawn_accept_loops(listener, &server, stopping).map_err(setup)?;
    started(&Started {
        addr: local,
        routes: served,
        pooling,
        metrics: metrics_addr,
        removed,
    });
    control.block_on(async move {
        let reload = tokio::spawn(crate::reload::watch(server, loader));
        let exporter = match (metrics_listener, metrics) {
            (Some(l), Some(m)) => match tokio::net::TcpListener::from_std(l) {
                Ok(l) => Some(tokio::spawn(crate::metrics::serve(l, m, limits.header_timeout))),
                Err(e) => {
                    eprintln!("berth serve: serving the metrics: {e}");
                    None
                }
            },
            _ => None,
        };
        signals.recv().await;
        reload.abort();
        if let Some(e) = exporter {
            e.abort();
        }
        let _ = stop.send(true);
        eprintln!(
            "berth serve: stopping: no new connections; waiting up to {:?} for the requests in flight",
            limits.grace_period
        );
        let drained = tokio::task::spawn_blocking(move || {
            loops.into_iter().map(|l| l.join().unwrap_or(0)).sum::<usize>()
        });
        tokio::select! {
            cut = drained => match cut.unwrap_or(0) {
                0 => eprintln!("berth serve: stopped"),
                n => eprintln!("berth serve: stopped: the grace period ended with {n} connections open; they were cut"),
            },
            _ = signals.recv() => {
                crate::access_log::flush();
                eprintln!("berth serve: stopped at once (asked twice)");
                // The accept loops and their guests are not waited for.
                std::process::exit(0);
            }
        }
    });
    Ok(())
}

/// The names of a function's containers, when it has some.
fn container_names(store: &Store, f: &crate::function::Function) -> Vec<String> {
    match &f.executor {
        #[cfg(target_os = "linux")]
        crate::function::Executor::Container(c) => c
            .containers()
            .iter()
            .filter_map(|id| store.load_container(id).ok().map(|c| c.name))
            .collect(),
        _ => {
            let _ = store;
            Vec::new()
        }
    }
}

/// Waits, when dropped, for the container removals the server began.
struct WaitForRemovals;

impl Drop for WaitForRemovals {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        crate::executor::container::wait_for_removals();
    }
}

/// The accept loops of `server` on `listener`, one per core, each on a thread of its own;
/// each gives, once `stopping` turns true and it has drained, how many connections it cut.
pub(crate) fn spawn_accept_loops(
    listener: std::net::TcpListener,
    server: &Arc<Server>,
    stopping: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<Vec<std::thread::JoinHandle<usize>>> {
    let open = Arc::new(AtomicUsize::new(0));
    let mut loops = Vec::new();
    for i in 0..std::thread::available_parallelism().map_or(1, |n| n.get()) {
        let listener = listener.try_clone()?;
        let (server, stopping, open) = (server.clone(), stopping.clone(), open.clone());
        let thread = std::thread::Builder::new()
            .name(format!("berth-serve-{i}"))
            .spawn(move || accept_loop(listener, server, stopping, open))?;
        loops.push(thread);
    }
    Ok(loops)
}

/// One core's accept loop, on a single-threaded runtime of its own: a request is read,
/// handled and answered on one thread, with no hand-off between threads; each core's loop
/// takes its share of new connections from the one listening socket. Returns once stopped
/// and drained, or with how many of its connections the grace period cut.
fn accept_loop(
    listener: std::net::TcpListener,
    server: Arc<Server>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
    open: Arc<AtomicUsize>,
) -> usize {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return 0;
    };
    runtime.block_on(async move {
        let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
            return 0;
        };
        let mine = Arc::new(AtomicUsize::new(0));
        let limits = *server.limits();
        let graceful = GracefulShutdown::new();
        loop {
            let (stream, remote) = tokio::select! {
                _ = stopping.wait_for(|s| *s) => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors or the like: say so, back off, serve the others.
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
            let counted = (Counted::new(open.clone()), Counted::new(mine.clone()));
            let watcher = graceful.watcher();
            let server = server.clone();
            tokio::spawn(async move {
                // A client that sends nothing is let go at the header timeout (hyper's own
                // starts only once it knows the protocol).
                let mut first = [0u8; 1];
                if tokio::time::timeout(limits.header_timeout, stream.peek(&mut first))
                    .await
                    .is_err()
                {
                    return;
                }
                // A client's protocol error or timeout ends its connection only.
                let _ = watcher.watch(server.connection(stream, remote)).await;
                drop(counted);
            });
        }
        drop(listener);
        tokio::select! {
            _ = graceful.shutdown() => 0,
            _ = tokio::time::sleep(limits.grace_period) => mine.load(Ordering::Relaxed),
        }
    })
}

/// SIGTERM and Ctrl-C (SIGINT), caught from when this is made.
struct StopSignals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Catches them; in a runtime's context.
    fn new() -> std::io::Result<StopSignals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(StopSignals {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(StopSignals {})
        }
    }

    /// Resolves at the next one.
    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => {}
                _ = self.int.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
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

/// Lowers the calling thread's priority: a housekeeping thread's wake-up then never preempts
/// a core's requests (the scheduler favours the serving thread, which it runs whenever a
/// request is ready); the microseconds it needs it still gets.
fn background_priority() {
    #[cfg(target_os = "linux")]
    // On Linux, `PRIO_PROCESS` with no pid applies to the calling thread alone.
    let _ = rustix::process::setpriority_process(None, 19);
}

/// The server's one epoch ticker: every guest's deadline check and yield hang off it.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    pub(crate) fn start(engine: Engine) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("berth-epoch".into())
            .spawn(move || {
                background_priority();
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

/// Writes the access log's gathered lines every few milliseconds, on a thread of its own: a
/// stderr that blocks (a full pipe) stalls this thread only, never a request or the epochs.
pub(crate) struct LogWriter {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LogWriter {
    pub(crate) fn start() -> LogWriter {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("berth-serve-log".into())
            .spawn(move || {
                background_priority();
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(LOG_EVERY);
                    crate::access_log::flush();
                }
                crate::access_log::flush();
            })
            .ok();
        LogWriter { stop, thread }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How late an access-log line may be.
const LOG_EVERY: Duration = Duration::from_millis(50);

/// Idle keep-alive connections each hold a descriptor: as root, take the hard limit.
pub(crate) fn raise_open_files_limit() {
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
