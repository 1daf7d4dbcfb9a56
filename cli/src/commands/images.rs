//! `berth images`: the local images as a table, ids, or JSON lines.

use std::process::ExitCode;

use anyhow::{Result, bail};
use berth_runtime::image::Image;
use berth_runtime::reference::ImageRef;
use clap::Args;
use serde::Serialize;

use crate::app::GlobalOptions;
use crate::output::{self, Format};

/// Arguments of `berth images`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  berth images\n  berth images busybox\n  berth images -q\n  berth images --format json\n  berth images --filter dangling=true")]
pub struct ImagesArgs {
    /// Only images of this repository (and tag)
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
    /// Only show image ids
    #[arg(short, long)]
    pub quiet: bool,
    /// Show all images (berth keeps no intermediate images, so this is the default)
    #[arg(short, long)]
    pub all: bool,
    /// Show full ids
    #[arg(long)]
    pub no_trunc: bool,
    /// Show manifest digests
    #[arg(long)]
    pub digests: bool,
    /// Filter: dangling=true|false, reference=PATTERN (repeatable)
    #[arg(short, long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// One row: an image under one of its names (or `<none>`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Row {
    repository: String,
    tag: String,
    #[serde(rename = "ID")]
    id: String,
    digest: String,
    created_at: String,
    created_since: String,
    size: String,
    #[serde(skip)]
    created: Option<chrono::DateTime<chrono::Utc>>,
}

fn rows(image: &Image, no_trunc: bool) -> Vec<Row> {
    let id = if no_trunc { image.id.to_string() } else { image.id.short().to_string() };
    let mk = |repo: String, tag: String| Row {
        repository: repo,
        tag,
        id: id.clone(),
        digest: image.digest.to_string(),
        created_at: image.created().map(|t| t.to_rfc3339()).unwrap_or_default(),
        created_since: output::ago(image.created()),
        size: output::human_size(image.size()),
        created: image.created(),
    };
    if image.names.is_empty() {
        return vec![mk("<none>".into(), "<none>".into())];
    }
    image
        .names
        .iter()
        .map(|n| mk(n.familiar_name(), n.tag().unwrap_or("<none>").to_string()))
        .collect()
}

/// Whether `image` passes the filters.
fn keep(image: &Image, filters: &[(String, String)], reference: Option<&ImageRef>) -> bool {
    if let Some(r) = reference
        && !image.names.iter().any(|n| n.name() == r.name() && (r.tag() == Some("latest") || n.tag() == r.tag()))
    {
        return false;
    }
    filters.iter().all(|(k, v)| match k.as_str() {
        "dangling" => (v == "true") == image.names.is_empty(),
        "reference" => image.names.iter().any(|n| {
            let pat = glob_like(v);
            pat(&n.familiar()) || pat(&n.familiar_name())
        }),
        _ => true,
    })
}

/// Docker's reference filter matches with path.Match-style wildcards.
fn glob_like(pattern: &str) -> impl Fn(&str) -> bool + '_ {
    move |s: &str| wildmatch(pattern.as_bytes(), s.as_bytes())
}

fn wildmatch(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => wildmatch(&p[1..], s) || (!s.is_empty() && s[0] != b'/' && wildmatch(p, &s[1..])),
        (Some(b'?'), Some(c)) if *c != b'/' => wildmatch(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => wildmatch(&p[1..], &s[1..]),
        _ => false,
    }
}

/// Lists images.
pub fn run(g: &GlobalOptions, a: ImagesArgs) -> Result<ExitCode> {
    let mut filters = Vec::new();
    for f in &a.filters {
        let Some((k, v)) = f.split_once('=') else {
            bail!("bad filter {f:?}: expected KEY=VALUE, e.g. dangling=true or reference=busybox*");
        };
        if !matches!(k, "dangling" | "reference") {
            bail!("unsupported filter {k:?}: berth images filters on dangling and reference");
        }
        filters.push((k.to_string(), v.to_string()));
    }
    let reference = a.reference.as_deref().map(ImageRef::parse).transpose()?;
    let store = super::open_store(g)?;
    let images: Vec<Image> = store
        .images()?
        .into_iter()
        .filter(|i| keep(i, &filters, reference.as_ref()))
        .collect();
    if a.quiet {
        let mut seen = std::collections::BTreeSet::new();
        for i in &images {
            let id = if a.no_trunc { i.id.to_string() } else { i.id.short().to_string() };
            if seen.insert(id.clone()) {
                println!("{id}");
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut all: Vec<Row> = images.iter().flat_map(|i| rows(i, a.no_trunc)).collect();
    if let Some(r) = &reference {
        all.retain(|row| row.repository == r.familiar_name());
    }
    all.sort_by(|x, y| y.created.cmp(&x.created).then(x.repository.cmp(&y.repository)).then(x.tag.cmp(&y.tag)));
    match a.format {
        Format::Json => {
            for r in &all {
                output::json_line(r)?;
            }
        }
        Format::Table => {
            let header = if a.digests {
                "REPOSITORY\tTAG\tDIGEST\tIMAGE ID\tCREATED\tSIZE"
            } else {
                "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE"
            };
            output::print_table(
                header,
                all.iter().map(|r| {
                    if a.digests {
                        format!("{}\t{}\t{}\t{}\t{}\t{}", r.repository, r.tag, r.digest, r.id, r.created_since, r.size)
                    } else {
                        format!("{}\t{}\t{}\t{}\t{}", r.repository, r.tag, r.id, r.created_since, r.size)
                    }
                }),
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
