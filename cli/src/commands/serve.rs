//! `berth serve`: images as HTTP functions (wasi:http components, WAGI modules, native images
//! as containers), one image at `/...` or several routes from a TOML file. The server is
//! `berth-serve`'s; this reads the flags, pulls what is missing, and reports; `-d` is
//! `serve_detached`'s.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use berth_serve::config::{
    self, ContainerSettings, DEFAULT_LISTEN, ExecutorKind, LogFormat, RouteConfig, RouteDefaults,
    RouteLimits, ServeConfig, ServerLimits,
};
use berth_serve::route::Route;
use clap::{Args, ValueEnum};

use crate::app::GlobalOptions;

/// Arguments of `berth serve`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  berth serve hello-http                          # every path, on 0.0.0.0:8080\n  berth serve --listen 127.0.0.1:0 hello-http     # a free port, printed\n  berth serve -f examples/functions/berth.toml    # several routes and images\n  berth serve --timeout 5s -m 64m -e GREETING=hi wagi-hello\n  berth serve --container-port 8000 seed-app       # a native image, started on demand\n  berth serve -d --name fns -f berth.toml         # in the background: ps, logs, stop\n\nA serve file (TOML):\n  listen = \"127.0.0.1:8080\"\n  [[route]]\n  route = \"/hello/...\"          # exact (/a) or wildcard (/a/...); exact wins, then the longest prefix\n  image = \"hello-http\"\n  executor = { type = \"wasi-http\" }   # or \"wagi\", or \"container\" (below); inferred when left out\n  env = { GREETING = \"hi\" }\n  volumes = [\"/srv/data:/data:ro\"]\n  memory = \"64m\"\n  timeout = \"5s\"\n  [[route]]\n  route = \"/app/...\"\n  image = \"seed-app\"            # a native image: its containers start on demand\n  executor = { type = \"container\", port = 8000, idle_timeout = \"5m\", concurrency = 100, min_instances = 0, max_instances = 1, ready_timeout = \"30s\" }\n\nSIGTERM or Ctrl-C stops accepting and waits for the requests in flight (--grace-period)."
)]
pub struct ServeArgs {
    /// The image to serve at every path (`/...`)
    #[arg(conflicts_with = "file", required_unless_present = "file")]
    pub image: Option<String>,
    /// A serve file (TOML) naming routes and images
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The address to listen on; port 0 picks a free port [default: 0.0.0.0:8080]
    #[arg(long, alias = "addr", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// The route of IMAGE: /path (exact) or /path/... (it and everything below)
    #[arg(long, default_value = "/...", conflicts_with = "file")]
    pub route: String,
    /// How IMAGE answers: wasi-http (a component), wagi (a preview-1 module, as CGI) or container (a native image) [default: from the image]
    #[arg(long, value_enum, conflicts_with = "file")]
    pub executor: Option<ExecutorArg>,
    /// Serve IMAGE as containers whose app listens on PORT (the container executor)
    #[arg(long, value_name = "PORT", conflicts_with = "file", value_parser = clap::value_parser!(u16).range(1..))]
    pub container_port: Option<u16>,
    /// Serve Prometheus metrics at http://ADDR/metrics (port 0 picks a free port)
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Set environment variables for every function (KEY=VALUE, or KEY to take this shell's)
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Give every function a folder: HOST_PATH:PATH[:ro] or VOLUME:PATH[:ro]
    #[arg(short = 'v', long = "volume", value_name = "SRC:PATH[:ro]")]
    pub volumes: Vec<String>,
    /// The most memory one request may use (e.g. 64m); wins over the file's
    #[arg(short = 'm', long, value_parser = config::parse_size)]
    pub memory: Option<u64>,
    /// How long a request may run before its instance is killed (504) [default: 30s]; wins over the file's
    #[arg(long, value_parser = config::parse_duration)]
    pub timeout: Option<Duration>,
    /// Requests run at once; more wait in a queue
    #[arg(long, default_value_t = ServerLimits::default().max_concurrent_requests, value_parser = at_least_one)]
    pub max_concurrent_requests: usize,
    /// Requests that may wait for a slot; past it a request gets 503 at once
    #[arg(long, default_value_t = ServerLimits::default().max_queued_requests)]
    pub max_queued_requests: usize,
    /// The largest request or response body (e.g. 64m)
    #[arg(long, default_value = "64m", value_parser = config::parse_body_size)]
    pub max_body_size: u64,
    /// Connections open at once; past it new ones are closed
    #[arg(long, default_value_t = ServerLimits::default().max_connections)]
    pub max_connections: usize,
    /// How long a client may take to send a request's headers, or stay idle between requests
    #[arg(long, default_value = "10s", value_parser = config::parse_duration)]
    pub header_timeout: Duration,
    /// How long SIGTERM or Ctrl-C waits for the requests in flight
    #[arg(long, default_value = "10s", value_parser = config::parse_duration)]
    pub grace_period: Duration,
    /// The access log's format
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormatArg,
    /// Let functions send HTTP requests out (refused by default: a function would reach what this host reaches)
    #[arg(long)]
    pub allow_outbound_http: bool,
    /// When to pull an image: missing, never, always
    #[arg(long, default_value = "missing")]
    pub pull: String,
    /// Run in the background and print the server's id (`ps`, `logs`, `stop`, `rm` know it)
    #[arg(short, long)]
    pub detach: bool,
    /// The name of a detached server [default: a random one]
    #[arg(long, requires = "detach")]
    pub name: Option<String>,
    /// Internal: this process is the detached server ID
    #[arg(long, hide = true, value_name = "ID")]
    pub managed_as: Option<String>,
}

/// A count of at least one.
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{s:?} is not a number of at least 1")),
    }
}

/// `--executor`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExecutorArg {
    /// A component exporting wasi:http/incoming-handler
    WasiHttp,
    /// A WASI preview-1 module run as a CGI script
    Wagi,
    /// A native image, run as containers started on demand
    Container,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    /// One line of words per request
    Text,
    /// One JSON object per request
    Json,
}

/// Serves until SIGTERM or Ctrl-C. Every failure to start is berth's own (125).
pub fn run(g: &GlobalOptions, a: ServeArgs) -> Result<ExitCode> {
    #[cfg(target_os = "linux")]
    {
        if a.detach {
            super::serve_detached::launch(g, &a).map_err(super::start_failure)?;
            return Ok(ExitCode::SUCCESS);
        }
        if let Some(id) = a.managed_as.clone() {
            return super::serve_detached::run_managed(g, a, &id);
        }
    }
    #[cfg(not(target_os = "linux"))]
    if a.detach || a.managed_as.is_some() {
        return Err(super::start_failure(anyhow::anyhow!(
            "serve -d needs Linux (a detached server's session and log); here servers run in the foreground: drop -d"
        )));
    }
    serve(g, a, None).map_err(super::start_failure)?;
    Ok(ExitCode::SUCCESS)
}

/// Serves; a detached server (`managed`, its id) records its address once it listens.
pub fn serve(g: &GlobalOptions, a: ServeArgs, managed: Option<&str>) -> Result<()> {
    let (file_listen, routes, source) = routes(&a)?;
    let listen = match (a.listen, file_listen) {
        (Some(l), _) | (None, Some(l)) => l,
        (None, None) => DEFAULT_LISTEN.parse().expect("the default address parses"),
    };
    let store = Arc::new(super::open_store(g)?);
    for r in &routes {
        super::pull::image_for(g, &store, &r.image, &a.pull, None)
            .with_context(|| format!("{}: image {}", r.origin, r.image))?;
    }
    let source_name = source.clone();
    let config = ServeConfig {
        listen,
        routes,
        limits: ServerLimits {
            max_concurrent_requests: a.max_concurrent_requests,
            max_queued_requests: a.max_queued_requests,
            max_body_size: a.max_body_size,
            max_connections: a.max_connections.max(1),
            header_timeout: a.header_timeout,
            grace_period: a.grace_period,
        },
        log_format: match a.log_format {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        },
        source,
        allow_outbound_http: a.allow_outbound_http,
        metrics: a.metrics,
        log_level: g.log_level.clone(),
    };
    let recorder = store.clone();
    berth_serve::serve(config, store, |s| {
        if !s.removed.is_empty() {
            eprintln!(
                "berth serve: removed the containers an earlier server of {} left: {}",
                source_name,
                s.removed.join(", ")
            );
        }
        for r in &s.routes {
            let how = if !r.containers.is_empty() {
                format!("containers {}", r.containers.join(", "))
            } else if r.cached {
                "from the compile cache".into()
            } else {
                "compiled".into()
            };
            eprintln!(
                "berth serve: {} -> {} ({}, {}, {how})",
                r.route, r.image, r.image_id, r.kind
            );
        }
        if let Some(m) = s.metrics {
            eprintln!("berth serve: metrics on http://{m}/metrics");
        }
        eprintln!("berth serve: listening on http://{}/", s.addr);
        if let Some(id) = managed
            && let Err(e) =
                berth_serve::managed::update(&recorder, id, |r| r.listen = Some(s.addr.to_string()))
        {
            eprintln!("berth serve: recording the server's address: {e}");
        }
    })?;
    Ok(())
}

/// The routes the flags name (a file's, or IMAGE at `--route`), the file's listen address,
/// and what is served (the file's path or the image).
fn routes(a: &ServeArgs) -> Result<(Option<SocketAddr>, Vec<RouteConfig>, String)> {
    let env = a
        .env
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some(("", _)) => bail!("invalid -e {kv:?}: the variable needs a name before ="),
            Some(_) => Ok(kv.clone()),
            None if kv.is_empty() => bail!("invalid -e \"\": give KEY=VALUE"),
            None => Ok(std::env::var(kv)
                .map(|v| format!("{kv}={v}"))
                .unwrap_or_default()),
        })
        .filter(|r| !matches!(r, Ok(s) if s.is_empty()))
        .collect::<Result<Vec<_>>>()?;
    let defaults = RouteDefaults {
        env,
        volumes: a.volumes.clone(),
        memory: a.memory,
        timeout: a.timeout,
    };
    Ok(match (&a.file, &a.image) {
        (Some(file), _) => {
            let path = file.display().to_string();
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading the serve file {path}"))?;
            let (listen, routes) = config::parse_file(&path, &text, &defaults)?;
            (listen, routes, path)
        }
        (None, Some(image)) => {
            let route =
                Route::parse(&a.route).map_err(|e| anyhow::anyhow!("invalid --route: {e}"))?;
            let r = RouteConfig {
                route,
                image: image.clone(),
                executor: match (a.executor, a.container_port) {
                    (Some(ExecutorArg::WasiHttp), Some(_)) | (Some(ExecutorArg::Wagi), Some(_)) => {
                        bail!(
                            "--container-port is for the container executor: drop --executor or --container-port"
                        )
                    }
                    (_, Some(_)) | (Some(ExecutorArg::Container), None) => {
                        Some(ExecutorKind::Container)
                    }
                    (Some(ExecutorArg::WasiHttp), None) => Some(ExecutorKind::WasiHttp),
                    (Some(ExecutorArg::Wagi), None) => Some(ExecutorKind::Wagi),
                    (None, None) => None,
                },
                env: defaults.env.clone(),
                volumes: defaults.volumes.clone(),
                limits: RouteLimits {
                    memory: a.memory,
                    timeout: a.timeout.unwrap_or(config::DEFAULT_TIMEOUT),
                },
                container: ContainerSettings {
                    port: a.container_port,
                    ..ContainerSettings::default()
                },
                origin: format!("route {}", a.route),
            };
            (None, vec![r], image.clone())
        }
        (None, None) => bail!("give an image to serve, or a serve file with -f"),
    })
}
