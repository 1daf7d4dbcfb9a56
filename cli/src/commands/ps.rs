//! `berth ps`: containers as a table, ids, or JSON lines.

use std::process::ExitCode;

use anyhow::{Result, bail};
use berth_runtime::container::store::Remains;
use berth_runtime::container::{Container, Status};
use berth_serve::managed::ServerRecord;
use clap::Args;
use serde::Serialize;

use crate::app::GlobalOptions;
use crate::output::{self, Format};

/// Arguments of `berth ps`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  berth ps\n  berth ps -a\n  berth ps -q --filter status=exited\n  berth ps --format json"
)]
pub struct PsArgs {
    /// Show all containers (default: running ones)
    #[arg(short, long)]
    pub all: bool,
    /// Only show ids
    #[arg(short, long)]
    pub quiet: bool,
    /// Show the latest created container
    #[arg(short, long)]
    pub latest: bool,
    /// Show the last N created containers
    #[arg(short = 'n', long = "last")]
    pub last: Option<usize>,
    /// Do not truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Filter: status=, name=, id=, ancestor=, label= (repeatable)
    #[arg(short, long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Row {
    #[serde(rename = "ID")]
    id: String,
    image: String,
    command: String,
    created_at: String,
    running_for: String,
    status: String,
    state: String,
    ports: String,
    names: String,
    labels: String,
}

fn matches(c: &Container, filters: &[(String, String)]) -> bool {
    filters.iter().all(|(k, v)| match k.as_str() {
        "status" if c.is_paused() => v == "paused",
        "status" => c.state.status.to_string() == *v,
        "name" => c.name.contains(v.as_str()),
        "id" => c.id.starts_with(v.as_str()),
        "ancestor" => {
            c.image == *v
                || c.image_id.to_string() == *v
                || c.image_id.hex().starts_with(v.as_str())
        }
        "label" => match v.split_once('=') {
            Some((k, val)) => c.labels.get(k).is_some_and(|x| x == val),
            None => c.labels.contains_key(v.as_str()),
        },
        "exited" => c.state.exit_code.map(|e| e.to_string()).as_deref() == Some(v.as_str()),
        _ => true,
    })
}

/// A row of the listing: a container, what is left of one whose state file is damaged, or a
/// server run with `serve -d`.
enum Listed<'a> {
    Live(&'a Container),
    Dead(&'a Remains),
    Server(&'a ServerRecord),
}

impl Listed<'_> {
    fn created(&self) -> chrono::DateTime<chrono::Utc> {
        match self {
            Listed::Live(c) => c.created,
            Listed::Dead(r) => r.created,
            Listed::Server(r) => r.created,
        }
    }

    fn id(&self) -> &str {
        match self {
            Listed::Live(c) => &c.id,
            Listed::Dead(r) => &r.id,
            Listed::Server(r) => &r.id,
        }
    }
}

/// Whether a damaged container passes the filters: only what is known of it can match.
fn matches_dead(r: &Remains, filters: &[(String, String)]) -> bool {
    filters.iter().all(|(k, v)| match k.as_str() {
        "status" => v == "dead",
        "name" => r.name.as_deref().is_some_and(|n| n.contains(v.as_str())),
        "id" => r.id.starts_with(v.as_str()),
        "ancestor" => r.image.as_deref() == Some(v.as_str()),
        _ => false,
    })
}

fn live_row(c: &Container, no_trunc: bool) -> Row {
    let cmd = c.spec.args.join(" ");
    Row {
        id: if no_trunc {
            c.id.clone()
        } else {
            c.short_id().to_string()
        },
        image: c.image.clone(),
        command: if no_trunc {
            format!("\"{cmd}\"")
        } else {
            format!("\"{}\"", output::truncate(&cmd, 20))
        },
        created_at: c.created.to_rfc3339(),
        running_for: output::ago(Some(c.created)),
        status: c.status_text(output::ago),
        state: c.state.status.to_string(),
        ports: c.ports.join(", "),
        names: c.name.clone(),
        labels: c
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// Whether a server passes the filters: its state, name, id and source can match.
fn matches_server(r: &ServerRecord, filters: &[(String, String)]) -> bool {
    filters.iter().all(|(k, v)| match k.as_str() {
        "status" => server_state(r) == v,
        "name" => r.name.contains(v.as_str()),
        "id" => r.id.starts_with(v.as_str()),
        "ancestor" => r.source == *v,
        "exited" => r.exit_code.map(|e| e.to_string()).as_deref() == Some(v.as_str()),
        _ => false,
    })
}

/// A server's state, in a container's words.
fn server_state(r: &ServerRecord) -> &'static str {
    if r.running() {
        "running"
    } else if r.pid.is_none() {
        "created"
    } else {
        "exited"
    }
}

/// The row of a server: its source as the image, `berth serve` as the command, its address
/// as the ports.
fn server_row(r: &ServerRecord, no_trunc: bool) -> Row {
    Row {
        id: if no_trunc {
            r.id.clone()
        } else {
            r.short_id().to_string()
        },
        image: r.source.clone(),
        command: "\"berth serve\"".into(),
        created_at: r.created.to_rfc3339(),
        running_for: output::ago(Some(r.created)),
        status: r.status_text(output::ago),
        state: server_state(r).into(),
        ports: r.listen.clone().unwrap_or_default(),
        names: r.name.clone(),
        labels: String::new(),
    }
}

/// Docker's row for a dead container; the status says why, and how to remove it.
fn dead_row(r: &Remains, no_trunc: bool) -> Row {
    Row {
        id: if no_trunc {
            r.id.clone()
        } else {
            r.short_id().to_string()
        },
        image: r.image.clone().unwrap_or_default(),
        command: String::new(),
        created_at: r.created.to_rfc3339(),
        running_for: output::ago(Some(r.created)),
        status: "Dead (corrupt state file)".into(),
        state: "dead".into(),
        ports: String::new(),
        names: r.name.clone().unwrap_or_default(),
        labels: String::new(),
    }
}

/// Lists containers.
pub fn run(g: &GlobalOptions, a: PsArgs) -> Result<ExitCode> {
    let mut filters = Vec::new();
    for f in &a.filters {
        let Some((k, v)) = f.split_once('=') else {
            bail!("bad filter {f:?}: expected KEY=VALUE, e.g. status=exited");
        };
        if !matches!(
            k,
            "status" | "name" | "id" | "ancestor" | "label" | "exited"
        ) {
            bail!(
                "unsupported filter {k:?}: berth ps filters on status, name, id, ancestor, label and exited"
            );
        }
        filters.push((k.to_string(), v.to_string()));
    }
    let store = super::open_store(g)?;
    let live = store.containers()?;
    // Containers whose state file is damaged are listed as Docker lists its dead ones, so
    // they can be found and removed (`berth rm -f`).
    let dead = store.damaged_containers();
    let servers = berth_serve::managed::list(&store);
    let mut all: Vec<Listed> = live
        .iter()
        .map(Listed::Live)
        .chain(dead.iter().map(Listed::Dead))
        .chain(servers.iter().map(Listed::Server))
        .collect();
    all.sort_by_key(|l| std::cmp::Reverse(l.created()));
    let show_all = a.all
        || a.latest
        || a.last.is_some()
        || filters.iter().any(|(k, _)| k == "status" || k == "exited");
    if a.latest {
        all.truncate(1);
    }
    if let Some(n) = a.last {
        all.truncate(n);
    }
    let shown: Vec<&Listed> = all
        .iter()
        .filter(|l| match l {
            Listed::Live(c) => {
                (show_all || c.state.status == Status::Running)
                    // A build's RUN containers are the builder's business, as BuildKit's are.
                    && !c.labels.contains_key(berth_runtime::container::BUILD_LABEL)
                    && matches(c, &filters)
            }
            Listed::Dead(r) => show_all && matches_dead(r, &filters),
            Listed::Server(r) => (show_all || r.running()) && matches_server(r, &filters),
        })
        .collect();
    if a.quiet {
        for l in shown {
            println!("{}", if a.no_trunc { l.id() } else { &l.id()[..12] });
        }
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Row> = shown
        .iter()
        .map(|l| match l {
            Listed::Live(c) => live_row(c, a.no_trunc),
            Listed::Dead(r) => dead_row(r, a.no_trunc),
            Listed::Server(r) => server_row(r, a.no_trunc),
        })
        .collect();
    output::print_rows(
        a.format,
        &rows,
        "CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tPORTS\tNAMES",
        |r| {
            format!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                r.id, r.image, r.command, r.running_for, r.status, r.ports, r.names
            )
        },
    )?;
    Ok(ExitCode::SUCCESS)
}
