//! `berth inspect`: an image's config and manifest as JSON.

use std::process::ExitCode;

use anyhow::Result;
use berth_runtime::image::Image;
use clap::Args;
use serde_json::{Value, json};

use crate::app::GlobalOptions;

/// Arguments of `berth inspect`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  berth inspect busybox\n  berth inspect busybox | jq '.[0].Config.Cmd'"
)]
pub struct InspectArgs {
    /// Images: names or ids
    #[arg(required = true, value_name = "NAME|ID")]
    pub targets: Vec<String>,
    /// Output format (only json)
    #[arg(short, long, default_value = "json", value_parser = ["json"])]
    pub format: String,
}

/// The JSON Docker users know from `docker image inspect`, plus the manifest.
pub fn image_json(image: &Image) -> Result<Value> {
    let config = serde_json::to_value(&image.config)?;
    let repo_digests: Vec<String> = image
        .names
        .iter()
        .map(|n| format!("{}@{}", n.familiar_name(), image.digest))
        .collect();
    Ok(json!({
        "Id": image.id.to_string(),
        "RepoTags": image.names.iter().map(|n| n.familiar()).collect::<Vec<_>>(),
        "RepoDigests": repo_digests,
        "Created": image.config.created,
        "Author": image.config.author.clone().unwrap_or_default(),
        "Architecture": image.config.architecture,
        "Os": image.config.os,
        "Variant": image.config.variant,
        "Size": image.size(),
        "Config": config.get("config").cloned().unwrap_or(Value::Null),
        "RootFS": {
            "Type": "layers",
            "Layers": image.config.rootfs.diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        },
        "History": config.get("history").cloned().unwrap_or(json!([])),
        "Descriptor": {
            "mediaType": image.manifest.media_type().as_ref().map(|m| m.to_string()),
            "digest": image.digest.to_string(),
        },
        "Manifest": serde_json::to_value(&image.manifest)?,
    }))
}

/// Prints a JSON array with one object per target; exits 1 if any was not found.
pub fn run(g: &GlobalOptions, a: InspectArgs) -> Result<ExitCode> {
    let store = super::open_store(g)?;
    let mut out = Vec::new();
    let mut failed = false;
    for t in &a.targets {
        match store.find_image(t) {
            Ok(image) => out.push(image_json(&image)?),
            Err(e) => {
                eprintln!("berth: {e}");
                failed = true;
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
