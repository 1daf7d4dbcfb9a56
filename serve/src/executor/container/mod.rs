//! The container executor: a native image served as a function. Its containers are made when
//! the function is loaded; the first request starts one (a cold start, held until the app
//! listens), later ones are proxied to the running replicas, idle ones are stopped, and more
//! start under load (`pool`). The server removes its containers when it stops, or when a
//! moved tag replaces the function; ones a killed server left are removed by the next server
//! of the same source, or `berth container prune` (`owner`).

mod netns;
pub mod owner;
mod pool;
mod start;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_runtime::container::create::{CreateOptions, create_container};
use berth_runtime::image::Image;
use berth_runtime::store::Store;
use berth_runtime::workload::{BridgeRequest, NetworkMode};
use http::{HeaderMap, HeaderValue, Request, Response, header};
use hyper::body::Incoming;

pub use owner::Owner;
pub use pool::{Lease, ProxyBody};
use pool::{Made, Pool};

use crate::config::RouteConfig;
use crate::executor::Failure;
use crate::metrics::RouteMetrics;
use crate::route::Route;

/// The header on a response whose request waited for a container to start.
pub const COLD_START_HEADER: &str = "x-berth-cold-start";

/// What every container function of a server shares.
#[derive(Debug, Clone)]
pub struct Context {
    /// The server, as its containers' labels name it.
    pub owner: Owner,
    /// The log level monitors log at.
    pub log_level: String,
    /// How many requests may wait for a route's containers.
    pub max_queued: usize,
}

/// A route's container function.
pub struct ContainerFunction {
    pool: Arc<Pool>,
    store: Arc<Store>,
    route: Route,
}

impl ContainerFunction {
    /// Makes the route's containers (`max_instances` of them, none started) from `image`.
    pub fn create(
        store: &Arc<Store>,
        route: &RouteConfig,
        image: &Image,
        context: &Context,
        metrics: Option<RouteMetrics>,
    ) -> Result<ContainerFunction, String> {
        let settings = route.container.clone();
        let port = match settings.port {
            Some(p) => p,
            None => exposed_port(image)?,
        };
        let opts = create_options(route, context);
        let mut made: Vec<Made> = Vec::new();
        for _ in 0..settings.max_instances {
            // Held from the image's lookup until the container records its image, as `run`.
            let created = store
                .lock_content()
                .map_err(|e| e.to_string())
                .and_then(|_held| {
                    create_container(store, image, &route.image, &opts).map_err(|e| e.to_string())
                });
            match created {
                Ok(c) => made.push(Made {
                    id: c.id,
                    name: c.name,
                }),
                Err(e) => {
                    remove_later(store, made.into_iter().map(|m| m.id).collect());
                    return Err(format!("creating its container: {e}"));
                }
            }
        }
        let pool = Pool::new(
            route.route.to_string(),
            settings,
            port,
            store.clone(),
            context.log_level.clone(),
            made,
            context.max_queued,
            metrics,
        )
        .map_err(|e| format!("starting the route's supervisor: {e}"))?;
        Ok(ContainerFunction {
            pool,
            store: store.clone(),
            route: route.route.clone(),
        })
    }

    /// The names of its containers, made so far.
    pub fn containers(&self) -> Vec<String> {
        self.pool.container_ids()
    }

    /// Proxies `req` (from `remote`) to a replica, starting one when none has room; gives
    /// the response and the lease to hold until it has been sent.
    pub async fn handle(
        &self,
        req: Request<ProxyBody>,
        remote: SocketAddr,
        deadline: Instant,
    ) -> Result<(Response<Incoming>, Lease), Failure> {
        let mut lease = self.pool.acquire(deadline).await?;
        let name = lease.container();
        let upstream = |e: String| Failure::Upstream(format!("container {name}: {e}"));
        let mut sender = match tokio::time::timeout_at(deadline.into(), lease.connection()).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                lease.failed();
                return Err(upstream(format!("connecting to its app: {e}")));
            }
            Err(_) => return Err(Failure::Timeout),
        };
        let req = upstream_request(req, remote, &self.route);
        match tokio::time::timeout_at(deadline.into(), sender.send_request(req)).await {
            Ok(Ok(mut resp)) => {
                strip_hop_by_hop(resp.headers_mut());
                if lease.cold {
                    resp.headers_mut()
                        .insert(COLD_START_HEADER, HeaderValue::from_static("1"));
                }
                lease.keep(sender);
                Ok((resp, lease))
            }
            Ok(Err(e)) => {
                lease.failed();
                Err(upstream(format!("its app did not answer: {e}")))
            }
            Err(_) => Err(Failure::Timeout),
        }
    }
}

impl Drop for ContainerFunction {
    fn drop(&mut self) {
        remove_later(&self.store, self.pool.container_ids());
    }
}

/// The create options of a route's containers: the route's environment, volumes and memory,
/// the default network as `berth run` has it, and the labels that name their server. No
/// `--init` (it costs a cold start a fork): an app that is PID 1 and handles no SIGTERM is
/// stopped after its grace period, as `berth stop` stops it.
fn create_options(route: &RouteConfig, context: &Context) -> CreateOptions {
    let mut labels = std::collections::BTreeMap::new();
    labels.insert(
        owner::SERVER_LABEL.to_string(),
        context.owner.server.clone(),
    );
    labels.insert(
        owner::SOURCE_LABEL.to_string(),
        context.owner.source.clone(),
    );
    labels.insert(owner::ROUTE_LABEL.to_string(), route.route.to_string());
    let mut opts = CreateOptions {
        env: route.env.clone(),
        volumes: route.volumes.clone(),
        network: default_network(),
        bridge: BridgeRequest::default(),
        labels,
        ..CreateOptions::default()
    };
    opts.limits.memory = route.limits.memory;
    opts
}

/// `berth run`'s default network: the bridge as root with nftables, else loopback only.
fn default_network() -> NetworkMode {
    if rustix::process::geteuid().is_root() && berth_runtime::network::firewall::available() {
        NetworkMode::Bridge
    } else {
        NetworkMode::Private
    }
}

/// The one TCP port the image exposes.
fn exposed_port(image: &Image) -> Result<u16, String> {
    match crate::function::exposed_tcp_ports(image).as_slice() {
        [one] => Ok(*one),
        [] => Err("it exposes no TCP port: give the app's port with executor = { type = \"container\", port = N } (or --container-port N)".into()),
        several => Err(format!(
            "it exposes several TCP ports ({several:?}): choose one with executor = {{ type = \"container\", port = N }} (or --container-port N)"
        )),
    }
}

/// The request as a container's app gets it: origin-form, HTTP/1.1, its hop-by-hop headers
/// dropped, and `X-Forwarded-For`/`-Proto`/`-Host` added as proxies do. Under a wildcard
/// route (`/app/...`) the app sees the path below it (`/app/x` is `/x`), as an app mounted
/// under a prefix expects, and the prefix in `X-Forwarded-Prefix`.
fn upstream_request(
    req: Request<ProxyBody>,
    remote: SocketAddr,
    route: &Route,
) -> Request<ProxyBody> {
    let (mut parts, body) = req.into_parts();
    let host = parts.headers.get(header::HOST).cloned().or_else(|| {
        let a = parts.uri.authority()?;
        HeaderValue::from_str(a.as_str()).ok()
    });
    strip_hop_by_hop(&mut parts.headers);
    if let Some(h) = &host {
        parts.headers.insert(header::HOST, h.clone());
        parts.headers.insert("x-forwarded-host", h.clone());
    }
    let forwarded = match parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
    {
        Some(before) => format!("{before}, {}", remote.ip()),
        None => remote.ip().to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&forwarded) {
        parts.headers.insert("x-forwarded-for", v);
    }
    parts
        .headers
        .insert("x-forwarded-proto", HeaderValue::from_static("http"));
    let base = match route {
        Route::Wildcard(base) if !base.is_empty() => Some(base.as_str()),
        _ => None,
    };
    let path = match base {
        Some(_) => match route.path_info(parts.uri.path()) {
            "" => "/".to_string(),
            rest => rest.to_string(),
        },
        None => parts.uri.path().to_string(),
    };
    let target = match parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    if let Some(b) = base
        && let Ok(v) = HeaderValue::from_str(b)
    {
        parts.headers.insert("x-forwarded-prefix", v);
    }
    if let Ok(uri) = target.parse::<http::Uri>() {
        parts.uri = uri;
    }
    parts.version = http::Version::HTTP_11;
    Request::from_parts(parts, body)
}

/// Drops the headers that belong to one connection (RFC 9110 7.6.1), and those its
/// `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    for n in named {
        headers.remove(n.as_str());
    }
    for h in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(h);
    }
}

/// Removals still running: a server waits for them before it exits.
static REMOVALS: Mutex<Vec<std::thread::JoinHandle<()>>> = Mutex::new(Vec::new());

/// Stops (with each one's grace period) and removes containers `ids`, in the background.
fn remove_later(store: &Arc<Store>, ids: Vec<String>) {
    let mut removals = REMOVALS.lock().unwrap_or_else(|e| e.into_inner());
    for id in ids {
        let store = store.clone();
        if let Ok(t) = std::thread::Builder::new()
            .name("berth-serve-rm".into())
            .spawn(move || remove_container(&store, &id))
        {
            removals.push(t);
        }
    }
}

/// Stops and removes one container, saying what failed.
fn remove_container(store: &Store, id: &str) {
    let Ok(c) = store.load_container(id) else {
        return;
    };
    let grace = Duration::from_secs(c.stop_timeout);
    let _ = berth_runtime::container::lifecycle::stop(store, &c, grace);
    let removed = store
        .load_container(id)
        .map_err(|e| e.to_string())
        .and_then(|c| {
            berth_runtime::container::lifecycle::remove(store, &c, true, true)
                .map_err(|e| e.to_string())
        });
    if let Err(e) = removed {
        eprintln!("berth serve: removing container {}: {e}", c.name);
    }
}

/// Waits until every container removal begun so far has ended.
pub fn wait_for_removals() {
    loop {
        let Some(t) = REMOVALS.lock().unwrap_or_else(|e| e.into_inner()).pop() else {
            return;
        };
        let _ = t.join();
    }
}

/// Removes the containers an ended server of the same source left (killed with `kill -9`);
/// gives their names.
pub fn remove_predecessors(store: &Arc<Store>, owner: &Owner) -> Vec<String> {
    let Ok(all) = store.containers() else {
        return Vec::new();
    };
    let left: Vec<_> = all
        .into_iter()
        .filter(|c| owner.left_by_predecessor(c))
        .collect();
    let names = left.iter().map(|c| c.name.clone()).collect();
    remove_later(store, left.into_iter().map(|c| c.id).collect());
    wait_for_removals();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn hop_by_hop_headers_do_not_pass() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn a_request_goes_out_in_origin_form_with_forwarding_headers() {
        let req = Request::get("http://example.test:8080/a/b?c=d")
            .header("x-forwarded-for", "10.0.0.1")
            .body(
                http_body_util::Empty::<bytes::Bytes>::new()
                    .map_err(|e| match e {})
                    .boxed_unsync(),
            )
            .unwrap();
        let all = Route::parse("/...").unwrap();
        let out = upstream_request(req, "127.0.0.1:5000".parse().unwrap(), &all);
        assert_eq!(out.uri().to_string(), "/a/b?c=d");
        assert_eq!(out.headers()[header::HOST], "example.test:8080");
        assert_eq!(out.headers()["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(out.headers()["x-forwarded-proto"], "http");
        assert!(!out.headers().contains_key("x-forwarded-prefix"));
    }

    #[test]
    fn an_app_under_a_wildcard_route_sees_the_path_below_it() {
        let empty = || {
            http_body_util::Empty::<bytes::Bytes>::new()
                .map_err(|e| match e {})
                .boxed_unsync()
        };
        let app = Route::parse("/app/...").unwrap();
        let remote: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let out = upstream_request(
            Request::get("/app/x/y?q=1").body(empty()).unwrap(),
            remote,
            &app,
        );
        assert_eq!(out.uri().to_string(), "/x/y?q=1");
        assert_eq!(out.headers()["x-forwarded-prefix"], "/app");
        let out = upstream_request(Request::get("/app").body(empty()).unwrap(), remote, &app);
        assert_eq!(out.uri().to_string(), "/");
        let exact = Route::parse("/exact").unwrap();
        let out = upstream_request(
            Request::get("/exact").body(empty()).unwrap(),
            remote,
            &exact,
        );
        assert_eq!(out.uri().to_string(), "/exact");
    }
}
