//! `berth import`: a root filesystem (tarball, folder, or standard input) becomes a
//! one-layer image.

use std::fs::File;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use berth_builder::config_edit::ConfigEditor;
use berth_runtime::image::config::{History, ImageConfig, host_platform};
use berth_runtime::image::import::ImportSource;
use berth_runtime::reference::ImageRef;
use clap::Args;

use crate::app::GlobalOptions;

/// Arguments of `berth import`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  berth import rootfs.tar.gz busybox:latest\n  berth import --change 'CMD [\"/bin/sh\"]' ./rootfs mybase\n  tar -C rootfs -c . | berth import - mybase"
)]
pub struct ImportArgs {
    /// Apply a Dockerfile instruction to the image config (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME, WORKDIR, …)
    #[arg(short, long = "change", value_name = "INSTRUCTION")]
    pub changes: Vec<String>,
    /// A comment for the image's history
    #[arg(short, long)]
    pub message: Option<String>,
    /// The image's platform, OS/ARCH (default: this host's)
    #[arg(long)]
    pub platform: Option<String>,
    /// A tarball (plain, gzip or zstd), a folder, or - for standard input
    #[arg(value_name = "FILE|DIR|-")]
    pub source: String,
    /// The name to give the image
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub name: Option<String>,
}

/// Imports the root filesystem.
pub fn run(g: &GlobalOptions, a: ImportArgs) -> Result<ExitCode> {
    let name = a.name.as_deref().map(ImageRef::parse).transpose()?;
    let (os, arch) = match &a.platform {
        Some(p) => {
            let mut parts = p.splitn(3, '/');
            match (parts.next(), parts.next()) {
                (Some(os), Some(arch)) if !os.is_empty() && !arch.is_empty() => {
                    (os.to_string(), arch.to_string())
                }
                _ => bail!("bad --platform {p:?}: expected OS/ARCH, e.g. linux/amd64"),
            }
        }
        None => {
            let (os, arch) = host_platform();
            (os.to_string(), arch.to_string())
        }
    };
    let mut config = ImageConfig {
        os,
        architecture: arch,
        ..ImageConfig::default()
    };
    {
        let mut editor = ConfigEditor::new(&mut config);
        for c in &a.changes {
            editor
                .apply_text(c)
                .with_context(|| format!("--change {c:?}"))?;
        }
    }
    if a.source.starts_with("http://") || a.source.starts_with("https://") {
        bail!(
            "importing from a URL is not supported: download the tarball first, then `berth import FILE`"
        );
    }
    let source = if a.source == "-" {
        if std::io::stdin().is_terminal() {
            bail!("import - reads a tarball from standard input: pipe one in");
        }
        ImportSource::Tar(Box::new(std::io::stdin().lock()) as Box<dyn Read>)
    } else {
        let path = PathBuf::from(&a.source);
        let meta =
            std::fs::metadata(&path).with_context(|| format!("reading {}", path.display()))?;
        if meta.is_dir() {
            ImportSource::Dir(path)
        } else {
            ImportSource::Tar(Box::new(
                File::open(&path).with_context(|| format!("opening {}", path.display()))?,
            ))
        }
    };
    let store = super::open_store(g)?;
    let _content = store.lock_content()?;
    let layer = store
        .import_layer(source)
        .with_context(|| format!("importing {}", a.source))?;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    config.created = Some(now.clone());
    config.rootfs.diff_ids = vec![layer.diff_id.clone()];
    config.history = vec![History {
        created: Some(now),
        created_by: None,
        comment: Some(
            a.message
                .clone()
                .unwrap_or_else(|| format!("Imported from {}", a.source)),
        ),
        ..History::default()
    }];
    let names: Vec<ImageRef> = name.into_iter().collect();
    let image = store.commit_image(&config, &[layer], &names)?;
    println!("{}", image.id);
    Ok(ExitCode::SUCCESS)
}
