//! `berth history`: the steps that made an image, newest first.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use crate::app::GlobalOptions;
use crate::output::{self, Format};

/// Arguments of `berth history`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  berth history busybox\n  berth history --no-trunc --format json busybox"
)]
pub struct HistoryArgs {
    /// The image: a name or an id
    pub image: String,
    /// Do not shorten the CREATED BY column or ids
    #[arg(long)]
    pub no_trunc: bool,
    /// Only show ids
    #[arg(short, long)]
    pub quiet: bool,
    /// Show sizes and dates in a human readable form (the default; -H=false for raw numbers)
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub human: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Row {
    #[serde(rename = "ID")]
    id: String,
    created_at: String,
    created_since: String,
    created_by: String,
    size: String,
    comment: String,
}

/// Prints the history.
pub fn run(g: &GlobalOptions, a: HistoryArgs) -> Result<ExitCode> {
    let store = super::open_store(g)?;
    let image = store.find_image(&a.image)?;
    let layers = image.layers()?;
    let mut layer_sizes = layers.iter().map(|l| l.size);
    let mut rows = Vec::new();
    let n = image.config.history.len();
    for (i, h) in image.config.history.iter().enumerate() {
        let size = if h.empty_layer {
            0
        } else {
            layer_sizes.next().unwrap_or(0)
        };
        let id = if i + 1 == n {
            if a.no_trunc {
                image.id.to_string()
            } else {
                image.id.short().to_string()
            }
        } else {
            "<missing>".to_string()
        };
        let created = h
            .created
            .as_deref()
            .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
            .map(|t| t.with_timezone(&chrono::Utc));
        let by = h.created_by.clone().unwrap_or_default();
        rows.push(Row {
            id,
            created_at: created.map(|t| t.to_rfc3339()).unwrap_or_default(),
            created_since: if a.human {
                output::ago(created)
            } else {
                created.map(|t| t.to_rfc3339()).unwrap_or_default()
            },
            created_by: if a.no_trunc {
                by
            } else {
                output::truncate(&by, 45)
            },
            size: if a.human {
                output::human_size(size)
            } else {
                size.to_string()
            },
            comment: h.comment.clone().unwrap_or_default(),
        });
    }
    rows.reverse();
    if a.quiet {
        for r in &rows {
            println!("{}", r.id);
        }
        return Ok(ExitCode::SUCCESS);
    }
    output::print_rows(
        a.format,
        &rows,
        "IMAGE\tCREATED\tCREATED BY\tSIZE\tCOMMENT",
        |r| {
            format!(
                "{}\t{}\t{}\t{}\t{}",
                r.id, r.created_since, r.created_by, r.size, r.comment
            )
        },
    )?;
    Ok(ExitCode::SUCCESS)
}
