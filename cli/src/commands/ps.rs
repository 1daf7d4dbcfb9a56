//! `berth ps`: containers as a table, ids, or JSON lines.

use std::process::ExitCode;

use anyhow::{Result, bail};
use berth_runtime::container::{Container, Status};
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
    let mut all = store.containers()?;
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
    let shown: Vec<&Container> = all
        .iter()
        .filter(|c| show_all || c.state.status == Status::Running)
        // A build's RUN containers are the builder's business, as BuildKit's are.
        .filter(|c| !c.labels.contains_key(berth_runtime::container::BUILD_LABEL))
        .filter(|c| matches(c, &filters))
        .collect();
    if a.quiet {
        for c in shown {
            println!("{}", if a.no_trunc { &c.id } else { c.short_id() });
        }
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Row> = shown
        .iter()
        .map(|c| {
            let cmd = c.spec.args.join(" ");
            Row {
                id: if a.no_trunc {
                    c.id.clone()
                } else {
                    c.short_id().to_string()
                },
                image: c.image.clone(),
                command: if a.no_trunc {
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
