//! The HTTP server: accepts connections (HTTP/1.1 with keep-alive, HTTP/2 cleartext), finds
//! each request's route, gives it a slot (at most `--max-concurrent-requests` run; a bounded
//! queue waits; past it, 503 at once), and hands it to the route's executor. Hostile clients
//! are bounded: headers must come within the header timeout and fit hyper's buffer (431
//! otherwise), connections past `max_connections` are closed at once.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::access_log::{AccessLog, Entry, Finished};
#[cfg(target_os = "linux")]
use crate::body::BoxError;
use crate::body::{CappedRequest, ResponseBody};
use crate::config::{RouteConfig, ServerLimits};
use crate::executor::cgi::{self, CgiRequest};
#[cfg(target_os = "linux")]
use crate::executor::container::ContainerFunction;
use crate::executor::{Failure, Ticket};
use crate::function::{Executor, Function};
use crate::route::Router;

/// A deadline past any a request can have, for a timeout too large to add to a time.
const FAR: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 24 * 3600);

/// How long a response's head waits for its body's first bytes, to leave with them.
const READ_AHEAD: std::time::Duration = std::time::Duration::from_millis(5);

/// A route and the function that answers it now.
pub struct Slot {
    /// The route as configured.
    pub config: RouteConfig,
    /// The function; replaced when the route's tag moves.
    pub function: RwLock<Arc<Function>>,
}

/// Everything a request needs.
pub struct Server {
    /// The routes, in the order given.
    pub slots: Vec<Slot>,
    router: Router,
    limits: ServerLimits,
    log: AccessLog,
    running: Arc<Semaphore>,
    queued: AtomicUsize,
    local: SocketAddr,
}

impl Server {
    /// A server of `slots`, listening at `local`.
    pub fn new(
        slots: Vec<Slot>,
        limits: ServerLimits,
        log: AccessLog,
        local: SocketAddr,
    ) -> Server {
        let routes: Vec<_> = slots.iter().map(|s| s.config.route.clone()).collect();
        Server {
            router: Router::new(&routes),
            slots,
            running: Arc::new(Semaphore::new(limits.max_concurrent_requests)),
            queued: AtomicUsize::new(0),
            limits,
            log,
            local,
        }
    }

    /// The server's limits.
    pub fn limits(&self) -> &ServerLimits {
        &self.limits
    }

    /// Serves one connection until it closes.
    pub fn connection(
        self: &Arc<Self>,
        stream: tokio::net::TcpStream,
        remote: SocketAddr,
    ) -> impl hyper_util::server::graceful::GracefulConnection + use<> {
        let _ = stream.set_nodelay(true);
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .keep_alive(true)
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_timeout)
            .max_buf_size(256 * 1024);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(256 * 1024)
            .max_concurrent_streams(256)
            .keep_alive_interval(self.limits.header_timeout)
            .keep_alive_timeout(self.limits.header_timeout);
        let server = self.clone();
        let service = hyper::service::service_fn(move |req| {
            let server = server.clone();
            async move { Ok::<_, Infallible>(server.handle(req, remote).await) }
        });
        builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned()
    }

    /// Answers one request; failures are responses, never errors.
    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        remote: SocketAddr,
    ) -> Response<ResponseBody> {
        let start = Instant::now();
        let target = req
            .uri()
            .path_and_query()
            .map_or_else(|| req.uri().path().to_string(), |p| p.as_str().to_string());
        let mut entry = Entry {
            start,
            remote,
            method: req.method().clone(),
            target,
            status: 0,
            route: "-".into(),
            reason: None,
        };
        let Some(index) = self.router.find(req.uri().path()) else {
            return self.fail(
                entry,
                StatusCode::NOT_FOUND,
                "no route matches this path".into(),
            );
        };
        let slot = &self.slots[index];
        entry.route = slot.config.route.to_string();
        let function = slot
            .function
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let cap = self.limits.max_body_size;
        if content_length(&req).is_some_and(|n| n > cap) {
            let f = Failure::RequestTooLarge(cap);
            return self.fail(entry, f.status(), f.reason());
        }
        let deadline = start
            .checked_add(slot.config.limits.timeout)
            .unwrap_or(start + FAR);
        match &function.executor {
            Executor::WasiHttp(f) => {
                let permit = match self.admit(deadline).await {
                    Ok(p) => p,
                    Err(f) => return self.fail(entry, f.status(), f.reason()),
                };
                let ticket = Ticket::new(deadline);
                let exceeded = Arc::new(std::sync::atomic::AtomicBool::new(false));
                let mut req =
                    req.map(|b| CappedRequest::new(b, cap, exceeded.clone()).boxed_unsync());
                self.give_host(&mut req);
                // The slot goes with the instance, and is freed when the instance ends.
                match f.handle(req, ticket.clone(), permit).await {
                    Ok(_) | Err(_) if exceeded.load(Ordering::Relaxed) => {
                        let f = Failure::RequestTooLarge(cap);
                        self.fail(entry, f.status(), f.reason())
                    }
                    Ok(resp) => {
                        let (parts, body) = resp.into_parts();
                        let length = header_length(&parts.headers);
                        entry.status = parts.status.as_u16();
                        let holds = Box::new((
                            function.clone(),
                            f.after_response(),
                            Instance::counted(self.log.metrics(), &entry.route),
                        ));
                        let done = Finished::new(self.log, entry, holds);
                        let mut body = ResponseBody::new(body, cap, done)
                            .expecting(length)
                            .watching(ticket);
                        match body.read_ahead(READ_AHEAD).await {
                            Ok(()) => Response::from_parts(parts, body),
                            // Nothing is sent yet: the failure can still be a 500.
                            Err(why) => match body.take_entry() {
                                Some(entry) => {
                                    self.fail(entry, StatusCode::INTERNAL_SERVER_ERROR, why)
                                }
                                None => Response::from_parts(parts, body),
                            },
                        }
                    }
                    Err(f) => self.fail(entry, f.status(), f.reason()),
                }
            }
            #[cfg(target_os = "linux")]
            Executor::Container(f) => self.proxy(f, &function, req, entry, deadline).await,
            Executor::Wagi(f) => {
                let route = &slot.config.route;
                let (parts, body) = req.into_parts();
                // The body is read before a slot is taken, and by the deadline.
                let read = Limited::new(body, usize::try_from(cap).unwrap_or(usize::MAX)).collect();
                let body = match tokio::time::timeout_at(deadline.into(), read).await {
                    Ok(Ok(b)) => b.to_bytes(),
                    Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                        let f = Failure::RequestTooLarge(cap);
                        return self.fail(entry, f.status(), f.reason());
                    }
                    Ok(Err(e)) => {
                        return self.fail(
                            entry,
                            StatusCode::BAD_REQUEST,
                            format!("reading the request body: {e}"),
                        );
                    }
                    Err(_) => {
                        return self.fail(
                            entry,
                            StatusCode::REQUEST_TIMEOUT,
                            "the request body did not arrive before the request's deadline (--timeout)".into(),
                        );
                    }
                };
                let permit = match self.admit(deadline).await {
                    Ok(p) => p,
                    Err(f) => return self.fail(entry, f.status(), f.reason()),
                };
                let query = parts.uri.query().unwrap_or("");
                let protocol = format!("{:?}", parts.version);
                let env = cgi::environment(&CgiRequest {
                    method: parts.method.as_str(),
                    path: parts.uri.path(),
                    query,
                    authority: authority(&parts.headers, &parts.uri),
                    headers: &parts.headers,
                    route,
                    remote,
                    local: self.local,
                    protocol: &protocol,
                    content_length: Some(body.len() as u64),
                });
                let args = cgi::arguments(parts.uri.path(), query);
                let instance = Instance::counted(self.log.metrics(), &entry.route);
                let ran = f.handle(env, args, body, Ticket::new(deadline)).await;
                drop(instance);
                // The module has ended: its slot is free whatever the client does next.
                drop(permit);
                match ran {
                    Ok(out) => {
                        entry.status = out.head.status.as_u16();
                        let body: Bytes = out.stdout.slice(out.head.body_start..);
                        let mut resp = Response::new(ResponseBody::full(
                            body,
                            Finished::new(self.log, entry, Box::new(function.clone())),
                        ));
                        *resp.status_mut() = out.head.status;
                        *resp.headers_mut() = out.head.headers;
                        resp
                    }
                    Err(f) => self.fail(entry, f.status(), f.reason()),
                }
            }
        }
    }

    /// Proxies a request to the route's containers.
    #[cfg(target_os = "linux")]
    async fn proxy(
        &self,
        f: &ContainerFunction,
        function: &Arc<Function>,
        req: Request<Incoming>,
        mut entry: Entry,
        deadline: Instant,
    ) -> Response<ResponseBody> {
        let cap = self.limits.max_body_size;
        let exceeded = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let req = req.map(|b| {
            CappedRequest::new(b, cap, exceeded.clone())
                .map_err(BoxError::from)
                .boxed_unsync()
        });
        match f.handle(req, entry.remote, deadline).await {
            Err(_) if exceeded.load(Ordering::Relaxed) => {
                let f = Failure::RequestTooLarge(cap);
                self.fail(entry, f.status(), f.reason())
            }
            Ok((resp, lease)) => {
                let (parts, body) = resp.into_parts();
                let length = header_length(&parts.headers);
                entry.status = parts.status.as_u16();
                let done = Finished::new(self.log, entry, Box::new((function.clone(), lease)));
                Response::from_parts(parts, ResponseBody::new(body, cap, done).expecting(length))
            }
            Err(f) => self.fail(entry, f.status(), f.reason()),
        }
    }

    /// Gives a request without a Host header (HTTP/1.0) one: wasi:http needs an authority.
    fn give_host<B>(&self, req: &mut Request<B>) {
        if req.headers().contains_key(http::header::HOST) {
            return;
        }
        let host = req
            .uri()
            .authority()
            .map_or_else(|| self.local.to_string(), |a| a.to_string());
        if let Ok(v) = http::HeaderValue::from_str(&host) {
            req.headers_mut().insert(http::header::HOST, v);
        }
    }

    /// A slot to run in, waited for until `deadline` in a queue of bounded length.
    async fn admit(&self, deadline: Instant) -> Result<OwnedSemaphorePermit, Failure> {
        if let Ok(p) = self.running.clone().try_acquire_owned() {
            return Ok(p);
        }
        /// A place in the queue, given back however the wait ends (a client that goes away
        /// drops the request, and this, mid-wait).
        struct Queued<'a>(&'a AtomicUsize);
        impl Drop for Queued<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let place = Queued(&self.queued);
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.limits.max_queued_requests {
            return Err(Failure::Busy(
                "every request slot is taken and the wait queue is full (--max-concurrent-requests)",
            ));
        }
        let waited =
            tokio::time::timeout_at(deadline.into(), self.running.clone().acquire_owned()).await;
        drop(place);
        match waited {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(_)) => Err(Failure::Busy("the server is stopping")),
            Err(_) => Err(Failure::Busy(
                "no request slot came free before the request's deadline (--max-concurrent-requests)",
            )),
        }
    }

    /// A failure's response, logged with its reason.
    fn fail(&self, mut entry: Entry, status: StatusCode, reason: String) -> Response<ResponseBody> {
        entry.status = status.as_u16();
        let text = format!(
            "{} {}\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        );
        entry.reason = Some(reason);
        let done = Finished::new(self.log, entry, Box::new(()));
        let mut resp = Response::new(ResponseBody::full(text, done));
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        resp
    }
}

/// A wasm instance in flight, counted in the metrics while it lives.
struct Instance {
    metrics: Option<&'static crate::metrics::Metrics>,
    route: String,
}

impl Instance {
    fn counted(metrics: Option<&'static crate::metrics::Metrics>, route: &str) -> Instance {
        let route = match metrics {
            Some(m) => {
                m.instance(route, 1);
                route.to_string()
            }
            None => String::new(),
        };
        Instance { metrics, route }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(m) = self.metrics {
            m.instance(&self.route, -1);
        }
    }
}

/// The request's authority: its Host header, else its URI's (HTTP/2).
fn authority<'a>(headers: &'a http::HeaderMap, uri: &'a http::Uri) -> Option<&'a str> {
    headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
}

/// The request's Content-Length, when it has a valid one.
fn content_length<B>(req: &Request<B>) -> Option<u64> {
    header_length(req.headers())
}

/// A message's Content-Length, when it has a valid one.
fn header_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}
