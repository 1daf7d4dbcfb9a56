//! `--metrics ADDR`: the server's numbers in Prometheus' text format (OpenMetrics), per route:
//! requests by status, their duration, cold starts and how long they took, instances running
//! and requests waiting. Kept with `prometheus-client`; served by a small listener of its own,
//! bounded as the main one is (a header timeout, a cap on connections).

use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A route's label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

/// A route's and a status' labels.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    route: String,
    status: String,
}

/// Histogram buckets from 0.5 ms to about 16 s, doubling.
#[derive(Debug, Clone, Copy)]
struct Buckets;

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(exponential_buckets(0.0005, 2.0, 16))
    }
}

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<StatusLabels, Counter>,
    duration: Family<RouteLabels, Histogram, Buckets>,
    cold_starts: Family<RouteLabels, Counter>,
    cold_start_duration: Family<RouteLabels, Histogram, Buckets>,
    instances: Family<RouteLabels, Gauge>,
    queued: Family<RouteLabels, Gauge>,
}

impl Metrics {
    /// Empty metrics, registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("berth_serve");
        let requests = Family::<StatusLabels, Counter>::default();
        let duration = Family::new_with_constructor(Buckets);
        let cold_starts = Family::<RouteLabels, Counter>::default();
        let cold_start_duration = Family::new_with_constructor(Buckets);
        let instances = Family::<RouteLabels, Gauge>::default();
        let queued = Family::<RouteLabels, Gauge>::default();
        registry.register(
            "requests",
            "Requests answered, by route and status",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "From a request's arrival to its response's end",
            duration.clone(),
        );
        registry.register(
            "cold_starts",
            "Containers started for requests, or to keep min_instances",
            cold_starts.clone(),
        );
        registry.register(
            "cold_start_duration_seconds",
            "From a container's start to its app accepting connections",
            cold_start_duration.clone(),
        );
        registry.register(
            "instances",
            "Containers running or starting (container routes); instances in flight (wasm routes)",
            instances.clone(),
        );
        registry.register(
            "queued_requests",
            "Requests waiting for a container with room",
            queued.clone(),
        );
        Metrics {
            registry,
            requests,
            duration,
            cold_starts,
            cold_start_duration,
            instances,
            queued,
        }
    }

    /// Counts a request of `route` answered with `status` after `took`.
    pub fn request(&self, route: &str, status: u16, took: Duration) {
        self.requests
            .get_or_create(&StatusLabels {
                route: route.to_string(),
                status: status.to_string(),
            })
            .inc();
        self.duration
            .get_or_create(&RouteLabels {
                route: route.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// A wasm route's instance began (`+1`) or ended (`-1`).
    pub fn instance(&self, route: &str, delta: i64) {
        self.instances
            .get_or_create(&RouteLabels {
                route: route.to_string(),
            })
            .inc_by(delta);
    }

    /// The handle of one route.
    pub fn route(self: &Arc<Self>, route: &str) -> RouteMetrics {
        RouteMetrics {
            metrics: self.clone(),
            labels: RouteLabels {
                route: route.to_string(),
            },
        }
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String does not fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// One route's metrics, for its executor.
#[derive(Debug, Clone)]
pub struct RouteMetrics {
    metrics: Arc<Metrics>,
    labels: RouteLabels,
}

impl RouteMetrics {
    /// A container started and became ready after `took`.
    pub fn cold_start(&self, took: Duration) {
        self.metrics.cold_starts.get_or_create(&self.labels).inc();
        self.metrics
            .cold_start_duration
            .get_or_create(&self.labels)
            .observe(took.as_secs_f64());
    }

    /// `n` containers run or start.
    pub fn set_instances(&self, n: usize) {
        self.metrics
            .instances
            .get_or_create(&self.labels)
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// `n` requests wait.
    pub fn set_queued(&self, n: usize) {
        self.metrics
            .queued
            .get_or_create(&self.labels)
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}

/// Connections the metrics listener holds at once; more are closed at once.
const MAX_CONNECTIONS: usize = 64;

/// Serves `metrics` at `GET /metrics` on `listener` until the task is dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    header_timeout: Duration,
) {
    let open = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let metrics = metrics.clone();
                    async move { Ok::<_, std::convert::Infallible>(answer(&req, &metrics)) }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout)
                .max_buf_size(16 * 1024)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
            drop(permit);
        });
    }
}

/// The answer to one request to the metrics listener.
fn answer<B>(req: &http::Request<B>, metrics: &Metrics) -> http::Response<Full<bytes::Bytes>> {
    let (status, kind, body) = match (req.method(), req.uri().path()) {
        (&http::Method::GET | &http::Method::HEAD, "/metrics") => (
            http::StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode(),
        ),
        (_, "/metrics") => (
            http::StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "405 Method Not Allowed: GET /metrics\n".into(),
        ),
        _ => (
            http::StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "404 Not Found: the metrics are at /metrics\n".into(),
        ),
    };
    let mut resp = http::Response::new(Full::new(bytes::Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(kind),
    );
    resp
}
