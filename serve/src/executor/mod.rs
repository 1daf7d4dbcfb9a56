//! Executors: how a route's image answers a request. Each request gets a fresh instance in a
//! store of its own (its memory, files and environment are its own), held to the route's
//! memory limit and deadline; what goes wrong is this request's failure, never the server's.

pub mod cgi;
#[cfg(target_os = "linux")]
pub mod container;
pub mod wagi;
pub mod wasi_http;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use berth_runtime::sandbox::wasi::GuestSpec;
use http::StatusCode;
use wasmtime::{Store, StoreLimits, StoreLimitsBuilder, Trap, UpdateDeadline};

use crate::config::RouteLimits;
use crate::guest_output::GuestOutput;

/// What every request of a route starts from: the guest's files, environment and limits.
#[derive(Debug)]
pub struct GuestSetup {
    /// Args, env, working directory, preopens (the image's rootfs read-only at `/`, volumes).
    pub spec: GuestSpec,
    /// The route's limits.
    pub limits: RouteLimits,
    /// Where the guest's stdout and stderr go.
    pub output: GuestOutput,
}

impl GuestSetup {
    /// The store limits of one request: its memory cap, and a trap (not a quiet failure) when
    /// the guest asks for more, so the request ends at once.
    pub fn store_limits(&self) -> StoreLimits {
        let mut b = StoreLimitsBuilder::new().trap_on_grow_failure(true);
        if let Some(m) = self.limits.memory {
            b = b.memory_size(usize::try_from(m).unwrap_or(usize::MAX));
        }
        b.build()
    }
}

/// One request's deadline, whether the guest was killed for passing it, and why its instance
/// failed (known only when the instance is gone, after the request learned it failed).
#[derive(Debug)]
pub struct Ticket {
    /// When the request came.
    pub started: Instant,
    /// When the request's instance is killed.
    pub deadline: Instant,
    timed_out: AtomicBool,
    failure: std::sync::Mutex<Option<String>>,
    ended: tokio::sync::Notify,
}

impl Ticket {
    /// A ticket for a request that must finish by `deadline`.
    pub fn new(deadline: Instant) -> Arc<Ticket> {
        Arc::new(Ticket {
            started: Instant::now(),
            deadline,
            timed_out: AtomicBool::new(false),
            failure: std::sync::Mutex::new(None),
            ended: tokio::sync::Notify::new(),
        })
    }

    /// The instance ended, failing for `why` if it did.
    pub fn end(&self, why: Option<String>) {
        if let Some(why) = why {
            *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
        }
        self.ended.notify_one();
    }

    /// Why the instance failed, if it has ended and did.
    pub fn recorded_failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Why the instance failed, waiting a little for its end to be reported.
    pub async fn failure(&self) -> Option<String> {
        let _ = tokio::time::timeout(std::time::Duration::from_millis(250), self.ended.notified())
            .await;
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether the guest ran past the deadline.
    pub fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::Relaxed)
    }

    fn time_out(&self) {
        self.timed_out.store(true, Ordering::Relaxed);
    }
}

/// How long a request's guest runs before an epoch tick makes it yield its thread: most
/// requests end sooner and are never interrupted, a busy guest shares the thread after this.
const RUN_BEFORE_YIELDING: std::time::Duration = std::time::Duration::from_millis(20);

/// Makes a store's guest yield at the epoch ticks of the server's one ticker once it has run
/// a while (so one busy guest never holds a thread from the others) and traps it once
/// `ticket(data)` is past its deadline.
pub fn enforce_deadline<T: Send + 'static>(
    store: &mut Store<T>,
    ticket: fn(&T) -> Option<&Arc<Ticket>>,
) {
    store.epoch_deadline_callback(move |ctx| {
        let Some(t) = ticket(ctx.data()) else {
            // Not yet a request's (being made): nothing to wait for, let others run.
            return Ok(UpdateDeadline::Yield(1));
        };
        let now = Instant::now();
        if now >= t.deadline {
            t.time_out();
            return Err(Trap::Interrupt.into());
        }
        if now.duration_since(t.started) < RUN_BEFORE_YIELDING {
            return Ok(UpdateDeadline::Continue(1));
        }
        Ok(UpdateDeadline::Yield(1))
    });
    store.set_epoch_deadline(1);
}

/// How a request failed, and the status the client gets for it.
#[derive(Debug)]
pub enum Failure {
    /// Past the route's deadline: 504.
    Timeout,
    /// The guest trapped, ran out of memory, or broke the protocol: 500, the reason logged.
    Guest(String),
    /// The request body is larger than the cap: 413.
    RequestTooLarge(u64),
    /// The response body is larger than the cap: 500.
    ResponseTooLarge(u64),
    /// No slot freed up in time, or the queue is full: 503.
    Busy(&'static str),
    /// No container became ready to take the request: 503, with why.
    Unavailable(String),
    /// The container's app failed the request (it died, or broke the connection): 502.
    Upstream(String),
}

impl Failure {
    /// The status the client gets.
    pub fn status(&self) -> StatusCode {
        match self {
            Failure::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Failure::Guest(_) | Failure::ResponseTooLarge(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Failure::RequestTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Failure::Busy(_) | Failure::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Failure::Upstream(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// Why, for the log.
    pub fn reason(&self) -> String {
        match self {
            Failure::Timeout => {
                "the request ran past its deadline (--timeout): its instance was killed".into()
            }
            Failure::Guest(why) => why.clone(),
            Failure::RequestTooLarge(n) => {
                format!("the request body is larger than --max-body-size ({n} bytes)")
            }
            Failure::ResponseTooLarge(n) => {
                format!("the response body is larger than --max-body-size ({n} bytes)")
            }
            Failure::Busy(why) => (*why).to_string(),
            Failure::Unavailable(why) | Failure::Upstream(why) => why.clone(),
        }
    }
}

/// The reason of a guest's failure, on one line: wasmtime's messages down the chain (a trap's
/// kind, a limit), without the backtrace.
pub fn guest_error(e: &wasmtime::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let c = cause.to_string();
        let first = c.lines().next().unwrap_or_default().trim().to_string();
        if first.is_empty() || first.contains("backtrace") || parts.contains(&first) {
            continue;
        }
        parts.push(first);
    }
    if let Some(trap) = e.downcast_ref::<Trap>() {
        let t = format!("wasm trap: {trap}");
        if !parts.iter().any(|p| p.contains(&trap.to_string())) {
            parts.push(t);
        }
    }
    if parts.is_empty() {
        "the guest failed".into()
    } else {
        parts.join(": ")
    }
}
