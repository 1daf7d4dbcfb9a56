//! A cold start: the container started under its monitor, as `berth start` does, then probed
//! until its app accepts a connection on its port (or answers its readiness path).

use std::time::{Duration, Instant};

use berth_runtime::container::log::{self, ReadOptions};
use berth_runtime::container::monitor::detached::spawn_detached;
use berth_runtime::store::Store;
use http_body_util::{BodyExt, Empty};

use super::netns::{self, Netns};
use super::pool::ProxyBody;

/// How many of a container's last log lines a failed start reports.
const LOG_LINES: usize = 10;

/// Starts container `id` and waits until its app is ready on `port`, or `ready_timeout` has
/// passed since the start began; gives the app's pid and network namespace, or why not (with
/// the container's last log lines).
pub async fn start_and_wait(
    store: &std::sync::Arc<Store>,
    id: &str,
    log_level: &str,
    port: u16,
    ready_path: Option<&str>,
    ready_timeout: Duration,
) -> Result<(i32, Netns), String> {
    let began = Instant::now();
    let (s, i, level) = (store.clone(), id.to_string(), log_level.to_string());
    let pid = tokio::task::spawn_blocking(move || spawn_detached(&s, &i, &level))
        .await
        .map_err(|e| format!("starting it: {e}"))?
        .map_err(|e| format!("starting it: {e}"))?;
    tracing::debug!(container = id, pid, took = ?began.elapsed(), "started");
    let netns =
        Netns::of_process(pid).map_err(|e| format!("opening its network namespace: {e}"))?;
    let deadline = began + ready_timeout;
    let mut delay = Duration::from_millis(1);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let last = match tokio::time::timeout(left, probe(&netns, port, ready_path)).await {
            Ok(Ok(())) => {
                tracing::debug!(container = id, took = ?began.elapsed(), "ready");
                return Ok((pid, netns));
            }
            Ok(Err(e)) => e,
            Err(_) => "no answer".into(),
        };
        if berth_runtime::container::state::process_start_time(pid).is_none() {
            return Err(format!(
                "its app ended before it was ready on port {port}{}",
                last_lines(store, id)
            ));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "it was not ready on port {port} within ready_timeout ({}; last try: {last}){}",
                humantime::format_duration(ready_timeout),
                last_lines(store, id)
            ));
        }
        tokio::time::sleep(delay.min(deadline.saturating_duration_since(Instant::now()))).await;
        // Apps listen within milliseconds of their start: look often, but not in a spin.
        delay = (delay * 2).min(Duration::from_millis(4));
    }
}

/// One readiness check: a connection to `port`, and with `path` an HTTP GET of it that
/// answers with a status below 500.
async fn probe(netns: &Netns, port: u16, path: Option<&str>) -> Result<(), String> {
    let stream = netns::connect(netns, port)
        .await
        .map_err(|e| format!("connecting to port {port}: {e}"))?;
    let Some(path) = path else {
        return Ok(());
    };
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, ProxyBody>(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let req = http::Request::get(path)
        .header(http::header::HOST, format!("localhost:{port}"))
        .body(
            Empty::<bytes::Bytes>::new()
                .map_err(|e| match e {})
                .boxed_unsync(),
        )
        .map_err(|e| format!("GET {path}: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("GET {path}: {e}"))?;
    if resp.status().is_server_error() {
        return Err(format!("GET {path} answered {}", resp.status()));
    }
    Ok(())
}

/// The container's last log lines, as a suffix for a message.
pub fn last_lines(store: &Store, id: &str) -> String {
    let path = store.container_dir(id).join(log::FILE_NAME);
    let mut lines = Vec::new();
    let opts = ReadOptions {
        tail: Some(LOG_LINES),
        ..ReadOptions::default()
    };
    let _ = log::read(&path, &opts, |r| {
        lines.push(format!("  {}", r.log.trim_end()));
        Ok(())
    });
    if lines.is_empty() {
        "; it logged nothing".into()
    } else {
        format!("; its last log lines:\n{}", lines.join("\n"))
    }
}
