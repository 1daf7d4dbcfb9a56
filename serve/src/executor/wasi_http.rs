//! The wasi:http executor: a component exporting `wasi:http/incoming-handler`, pre-instantiated
//! once per image and instantiated afresh for every request, through wasmtime-wasi-http's
//! `ProxyHandler` (as `wasmtime serve` does), each instance taking one request. `wasi:cli` is
//! linked too, so components built by Rust's wasm32-wasip2 target (which import it) run unflagged.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

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
    limits: StoreLimits,
    ticket: Option<Arc<Ticket>>,
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
            hooks: Default::default(),
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

/// Whether `component` exports `wasi:http/incoming-handler`, from its type alone.
pub fn is_http_handler(engine: &Engine, component: &Component) -> bool {
    component
        .component_type()
        .exports(engine)
        .any(|(name, _)| name.starts_with("wasi:http/incoming-handler@"))
}

impl WasiHttpFunction {
    /// The function of the pre-instantiated `pre`.
    pub fn new(engine: Engine, pre: ProxyPre<HttpHost>, guest: Arc<GuestSetup>) -> Self {
        WasiHttpFunction {
            handler: ProxyHandler::new(State { engine, pre, guest }),
        }
    }

    /// Answers `request` from a fresh instance, by the ticket's deadline.
    pub async fn handle(
        &self,
        request: http::Request<WasiBody>,
        ticket: Arc<Ticket>,
    ) -> Result<http::Response<WasiBody>, Failure> {
        match self.handler.handle(ticket.clone(), request).await {
            Ok(r) => Ok(r),
            Err(_) if ticket.timed_out() => Err(Failure::Timeout),
            Err(e) if e.is::<ExpirationError>() => Err(Failure::Timeout),
            // The trap itself reaches the worker, not the request: ask the ticket.
            Err(e) => Err(Failure::Guest(match ticket.failure().await {
                Some(why) => why,
                None => guest_error(&e),
            })),
        }
    }
}

struct State {
    engine: Engine,
    pre: ProxyPre<HttpHost>,
    guest: Arc<GuestSetup>,
}

impl HandlerState for State {
    type StoreData = HttpHost;
    type WorkerExpiration = Expiration;
    type WorkerState = OneRequest;

    async fn instantiate(&self) -> wasmtime::Result<Instance<HttpHost, Expiration, OneRequest>> {
        let guest = &self.guest;
        let mut wasi = berth_runtime::sandbox::wasi::guest::builder(&guest.spec)?;
        wasi.stdout(guest.output.clone())
            .stderr(guest.output.clone());
        let host = HttpHost {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            limits: guest.store_limits(),
            ticket: None,
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
                sleep: Box::pin(tokio::time::sleep(Duration::MAX)),
            },
            state: OneRequest,
        })
    }
}

/// An instance takes one request: nothing of one request is left for the next.
struct OneRequest;

impl WorkerState for OneRequest {
    type StoreData = HttpHost;
    type RequestData = Arc<Ticket>;

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
        ticket: Arc<Ticket>,
        _task: wasmtime::component::GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        let until = ticket.deadline + DEADLINE_SLACK;
        store.data_mut().ticket = Some(ticket);
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
    sleep: Pin<Box<tokio::time::Sleep>>,
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
        if me.sleep.deadline() != deadline {
            me.sleep.as_mut().reset(deadline);
        }
        me.sleep.as_mut().poll(cx)
    }
}
