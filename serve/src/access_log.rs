//! The access log: one line per request on stderr, written when its response is done (so it
//! has the bytes sent): client, method, path, status, bytes, duration and route, and the
//! reason when the request failed. Words for people, or JSON (`--log-format json`).
//!
//! Lines are gathered in memory and written by a thread of their own every few milliseconds
//! ([`flush`]): a write to stderr per request would be a system call on every request's
//! path. Past 4 MiB waiting (stderr does not take them), lines are counted and dropped, and
//! the count is written when stderr takes lines again.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Lines not yet written, and how many were dropped.
static PENDING: Mutex<(Vec<u8>, u64)> = Mutex::new((Vec::new(), 0));

/// The most that waits to be written.
const MAX_PENDING: usize = 4 << 20;

/// Writes the lines gathered so far to stderr.
pub fn flush() {
    let (lines, dropped) = {
        let mut p = PENDING.lock().unwrap_or_else(|e| e.into_inner());
        if p.0.is_empty() && p.1 == 0 {
            return;
        }
        (std::mem::take(&mut p.0), std::mem::take(&mut p.1))
    };
    let mut err = std::io::stderr().lock();
    // Best effort: a closed stderr must not fail requests.
    let _ = err.write_all(&lines);
    if dropped > 0 {
        let _ = writeln!(
            err,
            "berth serve: {dropped} access-log lines were dropped: stderr did not take them"
        );
    }
}

use crate::config::LogFormat;

/// Where the access log goes, and how; with `--metrics`, each line is counted there too.
#[derive(Debug, Clone, Copy)]
pub struct AccessLog {
    format: LogFormat,
    metrics: Option<&'static crate::metrics::Metrics>,
}

/// What is known of a request when its response starts.
#[derive(Debug)]
pub struct Entry {
    /// When it came.
    pub start: Instant,
    /// The client.
    pub remote: SocketAddr,
    /// Its method.
    pub method: http::Method,
    /// Its path and query.
    pub target: String,
    /// The status sent.
    pub status: u16,
    /// The route it matched (`-` for none).
    pub route: String,
    /// Why it failed, when it did.
    pub reason: Option<String>,
}

/// A response on its way: logs its request when dropped or finished, and keeps what the
/// request holds (its slot, its function) until then.
pub struct Finished {
    log: AccessLog,
    entry: Option<Entry>,
    _holds: Box<dyn Send>,
}

impl Finished {
    /// A response to `entry`, holding `holds` until it is finished.
    pub fn new(log: AccessLog, entry: Entry, holds: Box<dyn Send>) -> Finished {
        Finished {
            log,
            entry: Some(entry),
            _holds: holds,
        }
    }

    /// The entry, unlogged.
    pub fn into_entry(mut self) -> Option<Entry> {
        self.entry.take()
    }

    /// The body is done: `bytes` were sent, all of it or not (`complete`), `error` says why not.
    pub fn finish(mut self, bytes: u64, complete: bool, error: Option<String>) {
        if let Some(mut e) = self.entry.take() {
            if e.reason.is_none() {
                e.reason = error.or_else(|| {
                    (!complete).then(|| "the client went away before the response was sent".into())
                });
            }
            self.log.write(&e, bytes);
        }
    }
}

impl AccessLog {
    /// A log in `format`, counting requests in `metrics` when given.
    pub fn new(format: LogFormat, metrics: Option<&'static crate::metrics::Metrics>) -> AccessLog {
        AccessLog { format, metrics }
    }

    /// The metrics requests are counted in, if any.
    pub fn metrics(&self) -> Option<&'static crate::metrics::Metrics> {
        self.metrics
    }

    /// Writes the line of `e`.
    pub fn write(&self, e: &Entry, bytes: u64) {
        let took = e.start.elapsed();
        if let Some(m) = self.metrics {
            m.request(&e.route, e.status, took);
        }
        let ms = took.as_secs_f64() * 1000.0;
        let mut line = match self.format {
            LogFormat::Text => {
                let mut s = format!(
                    "{} {} {} {} {} {ms:.3}ms route={}",
                    e.remote, e.method, e.target, e.status, bytes, e.route
                );
                if let Some(r) = &e.reason {
                    s.push_str(&format!(" error={r:?}"));
                }
                s
            }
            LogFormat::Json => serde_json::json!({
                "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "remote": e.remote.to_string(),
                "method": e.method.as_str(),
                "path": e.target,
                "status": e.status,
                "bytes": bytes,
                "duration_ms": (ms * 1000.0).round() / 1000.0,
                "route": e.route,
                "error": e.reason,
            })
            .to_string(),
        };
        line.push('\n');
        let mut p = PENDING.lock().unwrap_or_else(|e| e.into_inner());
        if p.0.len() + line.len() > MAX_PENDING {
            p.1 += 1;
        } else {
            p.0.extend_from_slice(line.as_bytes());
        }
    }
}
