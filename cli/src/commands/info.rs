//! `berth info`: the root, the backends this host can run, cgroups, storage figures.

use std::process::ExitCode;

use anyhow::Result;
use berth_runtime::host;
use clap::Args;
use serde_json::json;

use crate::app::GlobalOptions;
use crate::output::{self, Format};

/// Arguments of `berth info`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  berth info\n  berth info --format json")]
pub struct InfoArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Prints the information.
pub fn run(g: &GlobalOptions, a: InfoArgs) -> Result<ExitCode> {
    let store = super::open_store(g)?;
    let images = store.images()?;
    let blob_dir = store.root().join("blobs/sha256");
    let (mut blobs, mut blob_bytes) = (0u64, 0u64);
    for e in std::fs::read_dir(&blob_dir)?.flatten() {
        blobs += 1;
        blob_bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
    }
    let snapshots = std::fs::read_dir(store.snapshots_dir())?.count();
    // Backends this build of berth has and this host can run; none yet until `berth run`.
    let backends: Vec<&str> = crate::BACKENDS
        .iter()
        .copied()
        .filter(|b| *b != "native" || host::can_run_native())
        .collect();
    let v = json!({
        "Root": store.root().display().to_string(),
        "RunRoot": store.run_root().display().to_string(),
        "Backends": backends,
        "CgroupVersion": host::cgroup_version().to_string(),
        "Overlayfs": host::has_overlayfs(),
        "Images": images.len(),
        "Blobs": blobs,
        "BlobBytes": blob_bytes,
        "Snapshots": snapshots,
        "Version": env!("CARGO_PKG_VERSION"),
    });
    match a.format {
        Format::Json => output::json_line(&v)?,
        Format::Table => {
            println!("Root:            {}", store.root().display());
            println!("Run root:        {}", store.run_root().display());
            println!(
                "Backends:        {}",
                if backends.is_empty() {
                    "none on this host (native needs Linux namespaces and root)".to_string()
                } else {
                    backends.join(", ")
                }
            );
            println!("Cgroup version:  {}", host::cgroup_version());
            println!(
                "Overlayfs:       {}",
                if host::has_overlayfs() { "yes" } else { "no" }
            );
            println!("Images:          {}", images.len());
            println!(
                "Blobs:           {blobs} ({})",
                output::human_size(blob_bytes)
            );
            println!("Snapshots:       {snapshots}");
            println!("Version:         {}", env!("CARGO_PKG_VERSION"));
        }
    }
    Ok(ExitCode::SUCCESS)
}
