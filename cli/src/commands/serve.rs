//! `berth serve`: images as HTTP functions (wasi:http components and WAGI modules), one
//! image at `/...` or several routes from a TOML file. The server is `berth-serve`'s; this
//! reads the flags, pulls what is missing, and reports.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use berth_serve::config::{
    self, DEFAULT_LISTEN, ExecutorKind, LogFormat, RouteConfig, RouteDefaults, RouteLimits,
    ServeConfig, ServerLimits,
};
use berth_serve::route::Route;
use clap::{Args, ValueEnum};

use crate::app::GlobalOptions;

/// Arguments of `berth serve`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  berth serve hello-http                          # every path, on 0.0.0.0:8080\n  berth serve --listen 127.0.0.1:0 hello-http     # a free port, printed\n  berth serve -f examples/functions/berth.toml    # several routes and images\n  berth serve --timeout 5s -m 64m -e GREETING=hi wagi-hello\n\nA serve file (TOML):\n  listen = \"127.0.0.1:8080\"\n  [[route]]\n  route = \"/hello/...\"          # exact (/a) or wildcard (/a/...); exact wins, then the longest prefix\n  image = \"hello-http\"\n  executor = { type = \"wasi-http\" }   # or \"wagi\"; inferred from the image when left out\n  env = { GREETING = \"hi\" }\n  volumes = [\"/srv/data:/data:ro\"]\n  memory = \"64m\"\n  timeout = \"5s\"\n\nSIGTERM or Ctrl-C stops accepting and waits for the requests in flight (--grace-period)."
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
    /// How IMAGE answers: wasi-http (a component) or wagi (a preview-1 module, as CGI) [default: from the image]
    #[arg(long, value_enum, conflicts_with = "file")]
    pub executor: Option<ExecutorArg>,
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
    serve(g, a).map_err(super::start_failure)?;
    Ok(ExitCode::SUCCESS)
}

fn serve(g: &GlobalOptions, a: ServeArgs) -> Result<()> {
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
    let (file_listen, routes, source) = match (&a.file, &a.image) {
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
                executor: a.executor.map(|e| match e {
                    ExecutorArg::WasiHttp => ExecutorKind::WasiHttp,
                    ExecutorArg::Wagi => ExecutorKind::Wagi,
                }),
                env: defaults.env.clone(),
                volumes: defaults.volumes.clone(),
                limits: RouteLimits {
                    memory: a.memory,
                    timeout: a.timeout.unwrap_or(config::DEFAULT_TIMEOUT),
                },
                origin: format!("route {}", a.route),
            };
            (None, vec![r], image.clone())
        }
        (None, None) => bail!("give an image to serve, or a serve file with -f"),
    };
    let listen = match (a.listen, file_listen) {
        (Some(l), _) | (None, Some(l)) => l,
        (None, None) => DEFAULT_LISTEN.parse().expect("the default address parses"),
    };
    let store = super::open_store(g)?;
    for r in &routes {
        super::pull::image_for(g, &store, &r.image, &a.pull, None)
            .with_context(|| format!("{}: image {}", r.origin, r.image))?;
    }
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
    };
    berth_serve::serve(config, Arc::new(store), |s| {
        for r in &s.routes {
            eprintln!(
                "berth serve: {} -> {} ({}, {}, {})",
                r.route,
                r.image,
                r.image_id,
                r.kind,
                if r.cached {
                    "from the compile cache"
                } else {
                    "compiled"
                }
            );
        }
        eprintln!("berth serve: listening on http://{}/", s.addr);
    })?;
    Ok(())
}
