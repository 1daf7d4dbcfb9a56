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
#[command(
    after_help = "Examples:\n  berth images\n  berth images busybox\n  berth images -q\n  berth images --format json\n  berth images --filter dangling=true"
)]
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
    let id = if no_trunc {
        image.id.to_string()
    } else {
        image.id.short().to_string()
    };
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

/// Whether a row passes the filters: `dangling` looks at the image, `reference` and the
/// positional REPOSITORY[:TAG] at the row's own name, as Docker's do.
fn keep(
    row: &Row,
    dangling: bool,
    filters: &[(String, String)],
    reference: Option<(&ImageRef, bool)>,
) -> bool {
    if let Some((r, explicit_tag)) = reference
        && (row.repository != r.familiar_name()
            || (explicit_tag && Some(row.tag.as_str()) != r.tag()))
    {
        return false;
    }
    filters.iter().all(|(k, v)| match k.as_str() {
        "dangling" => (v == "true") == dangling,
        "reference" => {
            let pat = glob_like(v);
            pat(&format!("{}:{}", row.repository, row.tag)) || pat(&row.repository)
        }
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
        (Some(b'*'), _) => {
            wildmatch(&p[1..], s) || (!s.is_empty() && s[0] != b'/' && wildmatch(p, &s[1..]))
        }
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
    // `busybox` lists every tag of busybox; `busybox:1.36` only that one.
    let explicit_tag = a
        .reference
        .as_deref()
        .is_some_and(|r| r.rsplit('/').next().is_some_and(|last| last.contains(':')));
    let store = super::open_store(g)?;
    let mut all: Vec<Row> = store
        .images()?
        .iter()
        .flat_map(|i| {
            let dangling = i.names.is_empty();
            rows(i, a.no_trunc)
                .into_iter()
                .filter(|r| {
                    keep(
                        r,
                        dangling,
                        &filters,
                        reference.as_ref().map(|r| (r, explicit_tag)),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    if a.quiet {
        let mut seen = std::collections::BTreeSet::new();
        for r in &all {
            if seen.insert(r.id.clone()) {
                println!("{}", r.id);
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    all.sort_by(|x, y| {
        y.created
            .cmp(&x.created)
            .then(x.repository.cmp(&y.repository))
            .then(x.tag.cmp(&y.tag))
    });
    let header = if a.digests {
        "REPOSITORY\tTAG\tDIGEST\tIMAGE ID\tCREATED\tSIZE"
    } else {
        "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE"
    };
    output::print_rows(a.format, &all, header, |r| {
        if a.digests {
            format!(
                "{}\t{}\t{}\t{}\t{}\t{}",
                r.repository, r.tag, r.digest, r.id, r.created_since, r.size
            )
        } else {
            format!(
                "{}\t{}\t{}\t{}\t{}",
                r.repository, r.tag, r.id, r.created_since, r.size
            )
        }
    })?;
    Ok(ExitCode::SUCCESS)
}
