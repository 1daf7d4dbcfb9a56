//! What `berth serve` serves: its routes, each an image and an executor, and the limits, from
//! the command line (`berth serve IMAGE`) or a TOML file (`berth serve -f FILE`):
//!
//! ```toml
//! listen = "127.0.0.1:8080"        # optional; the command line's --listen wins
//! timeout = "30s"                  # optional defaults for every route
//! memory = "128m"
//!
//! [[route]]
//! route = "/hello/..."
//! image = "hello-http"
//! executor = { type = "wasi-http" }   # or "wagi"; inferred from the image when absent
//! env = { GREETING = "hi" }
//! volumes = ["/srv/data:/data:ro"]
//! memory = "64m"
//! timeout = "5s"
//!
//! [[route]]
//! route = "/app/..."
//! image = "seed-app"                  # a native image, run as a container
//! executor = { type = "container", port = 8000, idle_timeout = "5m", concurrency = 100,
//!              min_instances = 0, max_instances = 1, ready_timeout = "30s", ready_path = "/" }
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::route::{Route, Router};

/// Where `berth serve` listens unless told: every address, port 8080, as `wasmtime serve`.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";

/// A route's deadline unless told.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a serve file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// It could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// It is not valid: the message names the line.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, and where.
        message: String,
    },
}

/// How a route's image is run for each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExecutorKind {
    /// A component exporting `wasi:http/incoming-handler`.
    WasiHttp,
    /// A WASI preview-1 command module, run as a CGI script (WAGI).
    Wagi,
    /// A native image run as a container, started on demand and proxied to.
    Container,
}

impl std::fmt::Display for ExecutorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ExecutorKind::WasiHttp => "wasi-http",
            ExecutorKind::Wagi => "wagi",
            ExecutorKind::Container => "container",
        })
    }
}

/// A route's per-request limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteLimits {
    /// The most linear memory (and tables) one request's instance may grow to, in bytes.
    pub memory: Option<u64>,
    /// How long one request may run before its instance is killed (504).
    pub timeout: Duration,
}

/// How a container function scales: the settings of `executor = { type = "container", … }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSettings {
    /// The port the app listens on inside its container; `None`: the one port the image
    /// exposes.
    pub port: Option<u16>,
    /// A container with no request in flight for this long (since its last response) is
    /// stopped.
    pub idle_timeout: Duration,
    /// Requests in flight per container; more start another replica, or wait.
    pub concurrency: usize,
    /// Containers kept running even when idle.
    pub min_instances: usize,
    /// The most containers the route runs at once.
    pub max_instances: usize,
    /// How long a starting container may take to accept connections before the requests
    /// held for it get 503.
    pub ready_timeout: Duration,
    /// An HTTP path that must answer (any status below 500) before the container is ready;
    /// `None`: a TCP connect is enough.
    pub ready_path: Option<String>,
}

impl Default for ContainerSettings {
    fn default() -> Self {
        ContainerSettings {
            port: None,
            idle_timeout: Duration::from_secs(300),
            concurrency: 100,
            min_instances: 0,
            max_instances: 1,
            ready_timeout: Duration::from_secs(30),
            ready_path: None,
        }
    }
}

/// The most replicas a route may have: each is a container with its own network namespace.
pub const MAX_INSTANCES: usize = 64;

impl ContainerSettings {
    /// Checks the settings together; the message names the setting and the fix.
    pub fn check(&self) -> Result<(), String> {
        if self.port == Some(0) {
            return Err("port = 0: give the port the app listens on inside its container".into());
        }
        if self.concurrency == 0 {
            return Err("concurrency = 0: a container must take at least one request".into());
        }
        if self.max_instances == 0 || self.max_instances > MAX_INSTANCES {
            return Err(format!(
                "max_instances = {}: give 1 to {MAX_INSTANCES}",
                self.max_instances
            ));
        }
        if self.min_instances > self.max_instances {
            return Err(format!(
                "min_instances = {} is more than max_instances = {}",
                self.min_instances, self.max_instances
            ));
        }
        if let Some(p) = &self.ready_path
            && (!p.starts_with('/') || p.parse::<http::uri::PathAndQuery>().is_err())
        {
            return Err(format!(
                "ready_path = {p:?}: give a path that starts with /"
            ));
        }
        Ok(())
    }
}

/// One route: a path pattern and the image that answers it.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// The pattern.
    pub route: Route,
    /// The image, as the user named it (a tag that may move, or an id).
    pub image: String,
    /// The executor; inferred from the image when `None`.
    pub executor: Option<ExecutorKind>,
    /// `KEY=VALUE` pairs added to the image's environment, later ones winning.
    pub env: Vec<String>,
    /// `-v` values: `HOST:PATH[:ro]` or `VOLUME:PATH[:ro]`.
    pub volumes: Vec<String>,
    /// Its limits.
    pub limits: RouteLimits,
    /// How its containers scale, when it is served by the container executor.
    pub container: ContainerSettings,
    /// Where it was defined, for messages (`route 2 (line 7)`, or `the command line`).
    pub origin: String,
}

/// The server's own limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Requests run at once; more wait in the queue.
    pub max_concurrent_requests: usize,
    /// Requests that may wait for a free slot; past it a request gets 503 at once.
    pub max_queued_requests: usize,
    /// The largest request or response body, in bytes.
    pub max_body_size: u64,
    /// Connections open at once; past it a new one is closed at once.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers (and how long an idle
    /// keep-alive connection stays open).
    pub header_timeout: Duration,
    /// How long SIGTERM or Ctrl-C waits for requests in flight.
    pub grace_period: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_concurrent_requests: 100,
            max_queued_requests: 1000,
            max_body_size: 64 << 20,
            max_connections: 10_000,
            header_timeout: Duration::from_secs(10),
            grace_period: Duration::from_secs(10),
        }
    }
}

/// How the access log is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One line of words per request.
    #[default]
    Text,
    /// One JSON object per request.
    Json,
}

/// Everything a server needs to start.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The address to listen on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// The routes, in the order given.
    pub routes: Vec<RouteConfig>,
    /// The server's limits.
    pub limits: ServerLimits,
    /// The access log's format.
    pub log_format: LogFormat,
    /// Where the routes came from, for `ps`-style listings and messages (an image or a file).
    pub source: String,
    /// Functions may send HTTP requests out (`--allow-outbound-http`).
    pub allow_outbound_http: bool,
    /// Where to serve Prometheus metrics (`--metrics`).
    pub metrics: Option<SocketAddr>,
    /// The log level the monitors of container functions log at.
    pub log_level: String,
}

/// A serve file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    listen: Option<String>,
    timeout: Option<String>,
    memory: Option<String>,
    #[serde(default)]
    route: Vec<toml::Spanned<FileRoute>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRoute {
    route: toml::Spanned<String>,
    image: String,
    executor: Option<toml::Spanned<FileExecutor>>,
    #[serde(default)]
    env: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    volumes: Vec<String>,
    memory: Option<String>,
    timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileExecutor {
    #[serde(rename = "type")]
    kind: ExecutorKind,
    port: Option<u16>,
    idle_timeout: Option<String>,
    concurrency: Option<usize>,
    min_instances: Option<usize>,
    max_instances: Option<usize>,
    ready_timeout: Option<String>,
    ready_path: Option<String>,
}

impl FileExecutor {
    /// The container settings it gives; an error names a setting that only the container
    /// executor takes, given to another.
    fn container_settings(&self) -> Result<ContainerSettings, String> {
        let given = [
            ("port", self.port.is_some()),
            ("idle_timeout", self.idle_timeout.is_some()),
            ("concurrency", self.concurrency.is_some()),
            ("min_instances", self.min_instances.is_some()),
            ("max_instances", self.max_instances.is_some()),
            ("ready_timeout", self.ready_timeout.is_some()),
            ("ready_path", self.ready_path.is_some()),
        ];
        if self.kind != ExecutorKind::Container
            && let Some((name, _)) = given.iter().find(|(_, g)| *g)
        {
            return Err(format!(
                "{name} is a setting of the container executor, not of {}: use executor = {{ type = \"container\", … }} or drop it",
                self.kind
            ));
        }
        let d = ContainerSettings::default();
        let duration = |name: &str, v: &Option<String>, default| match v {
            Some(v) => parse_duration(v).map_err(|e| format!("{name}: {e}")),
            None => Ok(default),
        };
        let s = ContainerSettings {
            port: self.port,
            idle_timeout: duration("idle_timeout", &self.idle_timeout, d.idle_timeout)?,
            concurrency: self.concurrency.unwrap_or(d.concurrency),
            min_instances: self.min_instances.unwrap_or(d.min_instances),
            max_instances: self.max_instances.unwrap_or(d.max_instances),
            ready_timeout: duration("ready_timeout", &self.ready_timeout, d.ready_timeout)?,
            ready_path: self.ready_path.clone(),
        };
        s.check()?;
        Ok(s)
    }
}

/// The defaults a file's routes start from: the command line's flags.
#[derive(Debug, Clone)]
pub struct RouteDefaults {
    /// `-e` values, applied to every route after its own.
    pub env: Vec<String>,
    /// `-v` values, added to every route's.
    pub volumes: Vec<String>,
    /// `--memory`, when given (it wins over the file's).
    pub memory: Option<u64>,
    /// `--timeout`, when given (it wins over the file's).
    pub timeout: Option<Duration>,
}

/// Parses a size as Docker's flags do (`64m`, `1g`, `512k`, bytes).
pub fn parse_size(s: &str) -> Result<u64, String> {
    parse_size::Config::new()
        .with_binary()
        .parse_size(s)
        .map_err(|e| format!("{s:?} is not a size ({e}); write it as 64m, 1g or a number of bytes"))
}

/// The longest duration a setting takes: a day.
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// Parses a duration (`30s`, `1m30s`, `250ms`) of at most a day.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration ({e}); write it as 30s, 2m or 500ms"))?;
    if d > MAX_DURATION {
        return Err(format!("{s:?} is longer than a day, the most it may be"));
    }
    Ok(d)
}

/// Parses a body size cap: a size (`64m`) of at most 4 GiB.
pub fn parse_body_size(s: &str) -> Result<u64, String> {
    let n = parse_size(s)?;
    if n > 4 << 30 {
        return Err(format!(
            "{s:?} is more than 4g, the largest body berth takes"
        ));
    }
    Ok(n)
}

/// The line (1-based) of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

/// Reads the serve file `text` (named `path` in messages), with `defaults` from the command line.
pub fn parse_file(
    path: &str,
    text: &str,
    defaults: &RouteDefaults,
) -> Result<(Option<SocketAddr>, Vec<RouteConfig>), ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        path: path.to_string(),
        message,
    };
    let file: File = toml::from_str(text).map_err(|e| invalid(toml_message(text, &e)))?;
    let listen = file
        .listen
        .as_deref()
        .map(|l| {
            l.parse::<SocketAddr>().map_err(|e| {
                invalid(format!(
                    "listen = {l:?} is not an address ({e}); write it as 127.0.0.1:8080"
                ))
            })
        })
        .transpose()?;
    let file_memory = file
        .memory
        .as_deref()
        .map(|m| parse_size(m).map_err(|e| invalid(format!("memory: {e}"))))
        .transpose()?;
    let file_timeout = file
        .timeout
        .as_deref()
        .map(|t| parse_duration(t).map_err(|e| invalid(format!("timeout: {e}"))))
        .transpose()?;
    if file.route.is_empty() {
        return Err(invalid(
            "it has no [[route]] entries: add one with `route = \"/...\"` and `image = \"NAME\"`"
                .into(),
        ));
    }
    let mut routes = Vec::new();
    let mut lines = Vec::new();
    for r in &file.route {
        let line = line_of(text, r.get_ref().route.span().start);
        let at = |m: String| invalid(format!("line {line}: {m}"));
        let fr = r.get_ref();
        let route = Route::parse(fr.route.get_ref()).map_err(|e| at(e.to_string()))?;
        let memory = match (defaults.memory, &fr.memory) {
            (Some(m), _) => Some(m),
            (None, Some(m)) => Some(parse_size(m).map_err(|e| at(format!("memory: {e}")))?),
            (None, None) => file_memory,
        };
        let timeout = match (defaults.timeout, &fr.timeout) {
            (Some(t), _) => t,
            (None, Some(t)) => parse_duration(t).map_err(|e| at(format!("timeout: {e}")))?,
            (None, None) => file_timeout.unwrap_or(DEFAULT_TIMEOUT),
        };
        let mut env: Vec<String> = fr.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        env.extend(defaults.env.iter().cloned());
        let mut volumes = fr.volumes.clone();
        volumes.extend(defaults.volumes.iter().cloned());
        let container = match &fr.executor {
            Some(e) => e.get_ref().container_settings().map_err(|m| {
                invalid(format!(
                    "line {}: executor: {m}",
                    line_of(text, e.span().start)
                ))
            })?,
            None => ContainerSettings::default(),
        };
        lines.push(line);
        routes.push(RouteConfig {
            route,
            image: fr.image.clone(),
            executor: fr.executor.as_ref().map(|e| e.get_ref().kind),
            env,
            volumes,
            limits: RouteLimits { memory, timeout },
            container,
            origin: format!("route {} (line {line})", fr.route.get_ref()),
        });
    }
    let patterns: Vec<Route> = routes.iter().map(|r| r.route.clone()).collect();
    if let Some((i, j)) = Router::duplicate(&patterns) {
        return Err(invalid(format!(
            "line {}: route {} is the same as the route on line {}: each route may appear once",
            lines[j], routes[j].route, lines[i]
        )));
    }
    Ok((listen, routes))
}

/// toml's message, on one line, with the line number first.
fn toml_message(text: &str, e: &toml::de::Error) -> String {
    let what = e.message().trim().to_string();
    match e.span() {
        Some(span) => format!("line {}: {what}", line_of(text, span.start)),
        None => what,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> RouteDefaults {
        RouteDefaults {
            env: vec!["CLI=1".into()],
            volumes: vec![],
            memory: None,
            timeout: None,
        }
    }

    #[test]
    fn a_file_gives_routes_with_their_settings() {
        let text = r#"
listen = "127.0.0.1:9000"
timeout = "5s"

[[route]]
route = "/hello/..."
image = "hello-http"
env = { A = "b" }

[[route]]
route = "/cgi"
image = "wagi-hello"
executor = { type = "wagi" }
memory = "16m"
timeout = "250ms"
"#;
        let (listen, routes) = parse_file("f.toml", text, &defaults()).unwrap();
        assert_eq!(listen, Some("127.0.0.1:9000".parse().unwrap()));
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[0].route.to_string(), "/hello/...");
        assert_eq!(routes[0].env, ["A=b", "CLI=1"]);
        assert_eq!(routes[0].limits.timeout, Duration::from_secs(5));
        assert_eq!(routes[0].executor, None);
        assert_eq!(routes[1].executor, Some(ExecutorKind::Wagi));
        assert_eq!(routes[1].limits.memory, Some(16 << 20));
        assert_eq!(routes[1].limits.timeout, Duration::from_millis(250));
        assert!(routes[1].origin.contains("line 11"), "{}", routes[1].origin);
    }

    #[test]
    fn a_container_route_takes_its_scaling_settings() {
        let text = r#"
[[route]]
route = "/app/..."
image = "seed-app"
executor = { type = "container", port = 8000, idle_timeout = "2s", max_instances = 3, concurrency = 10, ready_path = "/health" }
"#;
        let (_, routes) = parse_file("f.toml", text, &defaults()).unwrap();
        let c = &routes[0].container;
        assert_eq!(routes[0].executor, Some(ExecutorKind::Container));
        assert_eq!(c.port, Some(8000));
        assert_eq!(c.idle_timeout, Duration::from_secs(2));
        assert_eq!(
            (c.concurrency, c.min_instances, c.max_instances),
            (10, 0, 3)
        );
        assert_eq!(c.ready_timeout, Duration::from_secs(30));
        assert_eq!(c.ready_path.as_deref(), Some("/health"));
    }

    #[test]
    fn errors_name_the_line() {
        let e = |text: &str| {
            parse_file("f.toml", text, &defaults())
                .unwrap_err()
                .to_string()
        };
        let dup = "[[route]]\nroute = \"/a\"\nimage = \"x\"\n\n[[route]]\nroute = \"/a/\"\nimage = \"y\"\n";
        let m = e(dup);
        assert!(m.contains("line 6") && m.contains("line 2"), "{m}");
        let m = e("[[route]]\nroute = \"/a\"\nimage = \"x\"\ncolour = 1\n");
        assert!(m.contains("line 4") && m.contains("colour"), "{m}");
        let m = e("[[route]]\nroute = \"/a\"\nimage = \"x\"\nexecutor = { type = \"cgi\" }\n");
        assert!(m.contains("line 4") && m.contains("cgi"), "{m}");
        let m = e(
            "[[route]]\nroute = \"/a\"\nimage = \"x\"\nexecutor = { type = \"wagi\", port = 80 }\n",
        );
        assert!(
            m.contains("line 4") && m.contains("port is a setting"),
            "{m}"
        );
        let m = e(
            "[[route]]\nroute = \"/a\"\nimage = \"x\"\nexecutor = { type = \"container\", min_instances = 3 }\n",
        );
        assert!(
            m.contains("min_instances = 3 is more than max_instances = 1"),
            "{m}"
        );
        let m = e(
            "[[route]]\nroute = \"/a\"\nimage = \"x\"\nexecutor = { type = \"container\", idle_timeout = \"soon\" }\n",
        );
        assert!(m.contains("idle_timeout") && m.contains("duration"), "{m}");
        let m = e(
            "[[route]]\nroute = \"/a\"\nimage = \"x\"\nexecutor = { type = \"container\", port = 70000 }\n",
        );
        assert!(m.contains("line 4"), "{m}");
        let m = e("[[route]\n");
        assert!(m.contains("line 1"), "{m}");
        let m = e("[[route]]\nroute = \"a\"\nimage = \"x\"\n");
        assert!(
            m.contains("line 2") && m.contains("must start with /"),
            "{m}"
        );
        let m = e("[[route]]\nroute = \"/a\"\nimage = \"x\"\ntimeout = \"soon\"\n");
        assert!(m.contains("line 2") && m.contains("duration"), "{m}");
        assert!(
            e("listen = \"x\"\n").contains("no [[route]]")
                || e("listen = \"x\"\n").contains("not an address")
        );
    }
}
