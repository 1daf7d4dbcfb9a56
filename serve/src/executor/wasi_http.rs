//! The wasi:http executor: a component exporting `wasi:http/incoming-handler`, pre-instantiated
//! once per image and instantiated afresh for every request, through wasmtime-wasi-http's
//! `ProxyHandler` (as `wasmtime serve` does), each instance taking one request. `wasi:cli` is
//! linked too, so components built by Rust's wasm32-wasip2 target (which import it) run unflagged.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::OwnedSemaphorePermit;

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store, StoreContextMut, StoreLimits};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::handler::{
    ExpirationError, HandlerState, Instance, ProxyHandler, ProxyPre, ShouldAccept,
    WorkerExpiration, WorkerState, WorkerStatus,
};
use wasmtime_wasi_http::{WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::{Failure, GuestSetup, Ticket, enforce_deadline, guest_error};

/// How long past a request's deadline the handler gives up on an instance the epoch check did
/// not reach (a guest blocked in a host call): the second line of defence `ProxyHandler` asks for.
const DEADLINE_SLACK: Duration = Duration::from_millis(500);

/// A store's data: the request's WASI and wasi:http state, its limits and its deadline.
pub struct HttpHost {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    outbound: Outbound,
    limits: StoreLimits,
    ticket: Option<Arc<Ticket>>,
    /// The request's slot on the server, freed with the instance.
    slot: Option<OwnedSemaphorePermit>,
}

/// Whether a function may make outgoing HTTP requests (`--allow-outbound-http`). Refused by
/// default, as Spin does: a function could otherwise reach whatever this host reaches (its
/// loopback services, the network's metadata endpoints) on a client's behalf.
#[derive(Debug, Clone, Copy)]
struct Outbound {
    allowed: bool,
}

impl wasmtime_wasi_http::WasiHttpHooks for Outbound {
    fn is_supported_scheme(&mut self, scheme: &http::uri::Scheme) -> bool {
        self.allowed && (*scheme == http::uri::Scheme::HTTP || *scheme == http::uri::Scheme::HTTPS)
    }
}

impl WasiView for HttpHost {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HttpHost {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

/// A route's wasi:http function.
pub struct WasiHttpFunction {
    handler: ProxyHandler<State>,
}

/// Why a component cannot be served as wasi:http.
pub fn link(engine: &Engine, component: &Component) -> Result<ProxyPre<HttpHost>, String> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| format!("{e:#}"))?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
        .map_err(|e| format!("{e:#}"))?;
    let pre = linker.instantiate_pre(component).map_err(|e| {
        format!("it imports what berth does not give (berth gives wasi:cli, wasi:io, wasi:clocks, wasi:random, wasi:filesystem, wasi:sockets and wasi:http): {e:#}")
    })?;
    wasmtime_wasi_http::p2::bindings::ProxyPre::new(pre)
        .map(ProxyPre::P2)
        .map_err(|e| format!("it does not export wasi:http/incoming-handler@0.2 (is it a wasi:http proxy component?): {e:#}"))
}

impl WasiHttpFunction {
    /// The function of the pre-instantiated `pre`.
    pub fn new(
        engine: Engine,
        pre: ProxyPre<HttpHost>,
        guest: Arc<GuestSetup>,
        allow_outbound: bool,
    ) -> Self {
        let maker = Arc::new(Maker {
            engine,
            pre,
            guest,
            outbound: Outbound {
                allowed: allow_outbound,
            },
            ready: std::sync::Mutex::new(None),
            making: std::sync::atomic::AtomicBool::new(false),
        });
        WasiHttpFunction {
            handler: ProxyHandler::new(State { maker }),
        }
    }

    /// Held until a response is sent: then the next request's instance is made, between
    /// requests rather than on one's way.
    pub fn after_response(&self) -> MakeAhead {
        MakeAhead(self.handler.state().maker.clone())
    }

    /// Answers `request` from a fresh instance, by the ticket's deadline; `slot` is held
    /// until the instance ends.
    pub async fn handle(
        &self,
        request: http::Request<WasiBody>,
        ticket: Arc<Ticket>,
        slot: OwnedSemaphorePermit,
    ) -> Result<http::Response<WasiBody>, Failure> {
        match self.handler.handle((ticket.clone(), slot), request).await {
            Ok(r) => Ok(r),
            Err(_) if ticket.timed_out() || Instant::now() >= ticket.deadline => {
                Err(Failure::Timeout)
            }
            Err(e) if e.is::<ExpirationError>() => Err(Failure::Timeout),
            // The trap itself reaches the worker, not the request: ask the ticket.
            Err(e) => Err(Failure::Guest(match ticket.failure().await {
                Some(why) => why,
                None => guest_error(&e),
            })),
        }
    }
}

/// Makes a function's next instance when dropped (see [`WasiHttpFunction::after_response`]).
pub struct MakeAhead(Arc<Maker>);

impl Drop for MakeAhead {
    fn drop(&mut self) {
        self.0.make_ahead();
    }
}

/// The handler's state: makes the instances, keeping one made ahead.
struct State {
    maker: Arc<Maker>,
}

/// Makes instances of a function. One is kept ready: a request takes it, and the next is made
/// once the response is sent, so instantiation (the store, the WASI context, the pooled
/// memory) is off the request's path whenever the server has a moment between requests. Each
/// instance still serves one request only.
struct Maker {
    engine: Engine,
    pre: ProxyPre<HttpHost>,
    guest: Arc<GuestSetup>,
    outbound: Outbound,
    ready: std::sync::Mutex<Option<Ready>>,
    making: std::sync::atomic::AtomicBool,
}

type Ready = Instance<HttpHost, Expiration, OneRequest>;

impl Maker {
    /// A fresh instance, made within the route's timeout (a component whose start never
    /// ends must not hold a core).
    async fn make(&self) -> wasmtime::Result<Ready> {
        match tokio::time::timeout(self.guest.limits.timeout, self.instantiate()).await {
            Ok(r) => r,
            Err(_) => Err(wasmtime::format_err!(
                "instantiating the component took longer than the route's timeout"
            )),
        }
    }

    async fn instantiate(&self) -> wasmtime::Result<Ready> {
        let guest = &self.guest;
        let mut wasi = berth_runtime::sandbox::wasi::guest::builder(&guest.spec, false)?;
        wasi.stdout(guest.output.clone())
            .stderr(guest.output.clone());
        let host = HttpHost {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            outbound: self.outbound,
            limits: guest.store_limits(),
            ticket: None,
            slot: None,
        };
        let mut store = Store::new(&self.engine, host);
        store.limiter(|h| &mut h.limits);
        enforce_deadline(&mut store, |h| h.ticket.as_ref());
        let proxy = self.pre.instantiate_async(&mut store).await?;
        Ok(Instance {
            store,
            proxy,
            view: WasiHttpView::http,
            expiration: Expiration {
                timeout: guest.limits.timeout + DEADLINE_SLACK,
                sleep: None,
            },
            state: OneRequest,
        })
    }

    /// The instance made ahead, or a new one; then the next is made in the background.
    async fn take(self: &Arc<Self>) -> wasmtime::Result<Ready> {
        let ready = self.ready.lock().unwrap_or_else(|e| e.into_inner()).take();
        match ready {
            Some(r) => Ok(r),
            None => self.make().await,
        }
    }

    /// Starts making the next instance unless one is ready or being made.
    fn make_ahead(self: &Arc<Self>) {
        use std::sync::atomic::Ordering;
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self
            .ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
            || self.making.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let me = self.clone();
        runtime.spawn(async move {
            // A failure here is found again, and reported, by the request that makes its own.
            if let Ok(r) = me.make().await {
                *me.ready.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
            }
            me.making.store(false, Ordering::Release);
        });
    }
}

impl HandlerState for State {
    type StoreData = HttpHost;
    type WorkerExpiration = Expiration;
    type WorkerState = OneRequest;

    async fn instantiate(&self) -> wasmtime::Result<Ready> {
        self.maker.take().await
    }
}

/// An instance takes one request: nothing of one request is left for the next.
struct OneRequest;

impl WorkerState for OneRequest {
    type StoreData = HttpHost;
    type RequestData = (Arc<Ticket>, OwnedSemaphorePermit);

    fn should_accept_request(&self, _concurrent: usize, total: usize) -> ShouldAccept {
        if total >= 1 {
            ShouldAccept::Never
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        mut store: StoreContextMut<'_, HttpHost>,
        (ticket, slot): (Arc<Ticket>, OwnedSemaphorePermit),
        _task: wasmtime::component::GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        let until = ticket.deadline + DEADLINE_SLACK;
        // An instance made ahead had its epoch deadline set then: count from now.
        store.set_epoch_deadline(1);
        let host = store.data_mut();
        host.ticket = Some(ticket);
        host.slot = Some(slot);
        Box::pin(tokio::time::sleep_until(until.into()))
    }

    fn drop(&self, store: Store<HttpHost>, result: wasmtime::Result<()>) {
        // A failure is the request's: its ticket tells the request why.
        if let Some(t) = &store.data().ticket {
            t.end(result.err().map(|e| guest_error(&e)));
        }
        drop(store);
    }
}

/// Ends an instance that outlives its request's deadline (see [`DEADLINE_SLACK`]), or sits idle.
struct Expiration {
    timeout: Duration,
    /// Made at the first poll, in the runtime that runs the instance (one made ahead may be
    /// made in another core's).
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl WorkerExpiration for Expiration {
    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        let me = self.get_mut();
        let wait = match status {
            WorkerStatus::Idle => Duration::from_secs(1),
            WorkerStatus::Requests | WorkerStatus::PostReturn => me.timeout,
        };
        let Some(deadline) = start.checked_add(wait) else {
            return Poll::Pending;
        };
        let deadline = tokio::time::Instant::from(deadline);
        let sleep = me
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.deadline() != deadline {
            sleep.as_mut().reset(deadline);
        }
        sleep.as_mut().poll(cx)
    }
}
