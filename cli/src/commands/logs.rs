//! `berth logs`: a container's output from its json-file log, or a detached server's
//! (`serve -d`).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use berth_runtime::container::Status;
use berth_runtime::container::log::{self, LogDriver, ReadOptions, Record};
use chrono::{DateTime, Utc};
use clap::Args;

use crate::app::GlobalOptions;

/// Arguments of `berth logs`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  berth logs web\n  berth logs -f --tail 10 web\n  berth logs -t --since 10m web"
)]
pub struct LogsArgs {
    /// Follow the output until the container stops
    #[arg(short, long)]
    pub follow: bool,
    /// Number of lines from the end (or "all")
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    /// Only lines since a time (RFC 3339) or a duration ago (10m, 1h30m)
    #[arg(long)]
    pub since: Option<String>,
    /// Only lines before a time (RFC 3339) or a duration ago
    #[arg(long)]
    pub until: Option<String>,
    /// The container (or `serve -d` server): a name or an id
    pub container: String,
}

/// Parses `--since`/`--until`: RFC 3339, a Unix timestamp, or a Go-style duration ago.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(secs) = s.parse::<f64>() {
        return DateTime::from_timestamp(secs as i64, 0).context("timestamp out of range");
    }
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let unit = if c == 'm' && chars.peek() == Some(&'s') {
            chars.next();
            0.001
        } else {
            match c {
                'h' => 3600.0,
                'm' => 60.0,
                's' => 1.0,
                _ => bail!(
                    "invalid time {s:?}: use RFC 3339 (2024-01-02T15:04:05Z) or a duration such as 10m or 1h30m"
                ),
            }
        };
        let n: f64 = num.parse().with_context(|| format!("invalid time {s:?}"))?;
        total += n * unit;
        num.clear();
    }
    if !num.is_empty() {
        bail!("invalid time {s:?}: a duration needs a unit (h, m, s)");
    }
    Ok(Utc::now() - chrono::Duration::milliseconds((total * 1000.0) as i64))
}

/// Writes one record to stdout or stderr, as the container wrote it.
fn print(
    out: &mut impl Write,
    err: &mut impl Write,
    r: &Record,
    timestamps: bool,
) -> std::io::Result<()> {
    let w: &mut dyn Write = if r.stream == "stderr" { err } else { out };
    if timestamps {
        write!(
            w,
            "{} ",
            r.time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
        )?;
    }
    w.write_all(r.log.as_bytes())
}

/// Prints the log.
pub fn run(g: &GlobalOptions, a: LogsArgs) -> Result<ExitCode> {
    use berth_runtime::container::store::ContainerError;
    let store = super::open_store(g)?;
    // A container's log, or a `serve -d` server's (its access log and functions' output).
    let (path, running): (std::path::PathBuf, Box<dyn Fn() -> bool>) = match store
        .find_container(&a.container)
    {
        Ok(c) => {
            if c.log_config.driver == LogDriver::None {
                bail!(
                    "container {} keeps no log: it was created with --log-driver none (create it again without that flag to read its output with `berth logs`)",
                    c.name
                );
            }
            let (store, id) = (super::open_store(g)?, c.id.clone());
            (
                store.container_dir(&c.id).join(log::FILE_NAME),
                Box::new(move || {
                    store
                        .load_container(&id)
                        .is_ok_and(|c| c.state.status == Status::Running)
                }),
            )
        }
        Err(ContainerError::NotFound(n)) => match berth_serve::managed::find(&store, &n) {
            Ok(r) => {
                let (store, id) = (super::open_store(g)?, r.id.clone());
                (
                    berth_serve::managed::log_path(&store, &r.id),
                    Box::new(move || {
                        berth_serve::managed::load(&store, &id).is_ok_and(|r| r.running())
                    }),
                )
            }
            Err(_) => return Err(ContainerError::NotFound(n).into()),
        },
        Err(e) => return Err(e.into()),
    };
    let tail = match a.tail.as_str() {
        "all" | "-1" => None,
        n => Some(
            n.parse()
                .with_context(|| format!("invalid --tail {n:?}: a number or \"all\""))?,
        ),
    };
    let opts = ReadOptions {
        tail,
        since: a.since.as_deref().map(parse_time).transpose()?,
        until: a.until.as_deref().map(parse_time).transpose()?,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut err = std::io::stderr().lock();
    let mut follower = log::read(&path, &opts, |r| {
        print(&mut out, &mut err, &r, a.timestamps)
    })?;
    out.flush()?;
    if a.follow {
        // What comes in after --until is not shown: following ends there.
        let before_until = |r: &Record| opts.until.is_none_or(|u| r.time < u);
        loop {
            let running = running();
            let more = follower
                .poll(|r| {
                    if before_until(&r) {
                        print(&mut out, &mut err, &r, a.timestamps)?;
                    }
                    Ok(())
                })
                .unwrap_or(0);
            out.flush()?;
            if !running && more == 0 {
                break;
            }
            if more == 0 {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
