//! `berth pull`: an image from a registry, and the pull that `run` and `build` do on demand.

use std::process::ExitCode;

use anyhow::{Context, Result};
use berth_runtime::Store;
use berth_runtime::image::Image;
use berth_runtime::reference::ImageRef;
use berth_runtime::registry::pull::{PullOptions, Pulled, list_tags, pull};
use berth_runtime::registry::{Platform, RegistryOptions};
use clap::Args;

use crate::app::GlobalOptions;
use crate::progress::{Bars, Stream};

/// Arguments of `berth pull`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  berth pull busybox\n  berth pull localhost:5000/app:1.0\n  berth pull --platform wasi/wasm registry.example.com/hello@sha256:…\n  berth pull -a localhost:5000/app\n\nLogins come from `berth login` (Docker's config.json). Plain HTTP is used only for\nlocalhost, 127.0.0.0/8 and registries named with --insecure-registry."
)]
pub struct PullArgs {
    /// Print only the image name
    #[arg(short, long)]
    pub quiet: bool,
    /// The platform to pick from a multi-platform image, OS/ARCH[/VARIANT] [default: the host's linux platform, else wasi/wasm]
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// Pull every tag of the repository
    #[arg(short = 'a', long)]
    pub all_tags: bool,
    /// The image: NAME[:TAG|@DIGEST]
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    pub name: String,
}

/// The registry settings from the global flags and the environment.
pub fn registry_options(g: &GlobalOptions) -> RegistryOptions {
    RegistryOptions::from_env(&g.insecure_registries)
}

/// Parses `--platform`.
pub fn parse_platform(p: Option<&str>) -> Result<Option<Platform>> {
    p.map(|p| p.parse::<Platform>().map_err(anyhow::Error::msg))
        .transpose()
}

/// Pulls `name`, printing Docker's lines on `stream` (nothing but errors when `quiet`).
pub fn pull_image(
    g: &GlobalOptions,
    store: &Store,
    name: &ImageRef,
    platform: Option<Platform>,
    stream: Stream,
    quiet: bool,
) -> Result<Pulled> {
    let registry = registry_options(g);
    let bars = Bars::new(stream, quiet);
    let what = name.digest().or(name.tag()).unwrap_or("latest");
    let repo = name.repository();
    bars.line(&format!("{what}: Pulling from {repo}"));
    let opts = PullOptions {
        platform,
        registry: &registry,
        progress: &bars,
    };
    let pulled =
        pull(store, name, &opts).with_context(|| format!("pulling {}", name.familiar()))?;
    bars.line(&format!("Digest: {}", pulled.digest));
    if pulled.up_to_date {
        bars.line(&format!(
            "Status: Image is up to date for {}",
            name.familiar()
        ));
    } else {
        bars.line(&format!(
            "Status: Downloaded newer image for {}",
            name.familiar()
        ));
    }
    Ok(pulled)
}

/// For `run` and `build`: the image named `input`, pulled first when `policy` says so
/// (`always`, or `missing` and the store lacks it). Pull output goes to stderr.
pub fn image_for(
    g: &GlobalOptions,
    store: &Store,
    input: &str,
    policy: &str,
    platform: Option<&str>,
) -> Result<Image> {
    let found = store.find_image(input);
    let pull_it = match (policy, &found) {
        ("never", _) => false,
        ("always", _) => true,
        ("missing", Err(berth_runtime::image::ImageError::NotFound(_))) => true,
        ("missing", _) => false,
        (other, _) => anyhow::bail!("invalid --pull {other:?}: use missing, never or always"),
    };
    // An image id is never pulled.
    let name = match ImageRef::parse(input) {
        Ok(n) if pull_it => n,
        _ => return Ok(found?),
    };
    if found.is_err() {
        eprintln!("Unable to find image '{}' locally", name.familiar());
    }
    if let Err(e) = pull_image(
        g,
        store,
        &name,
        parse_platform(platform)?,
        Stream::Stderr,
        false,
    ) {
        return Err(match found {
            // Both failures matter: it is not here, and it could not be fetched.
            Err(not_here) => anyhow::anyhow!("{not_here}; and {e:#}"),
            Ok(_) => e,
        });
    }
    Ok(store.find_image(&name.to_string())?)
}

/// Pulls the image.
pub fn run(g: &GlobalOptions, a: PullArgs) -> Result<ExitCode> {
    let mut name = ImageRef::parse(&a.name)?;
    let platform = parse_platform(a.platform.as_deref())?;
    let store = super::open_store(g)?;
    let names = if a.all_tags {
        if name.digest().is_some() || a.name.rsplit('/').next().is_some_and(|l| l.contains(':')) {
            anyhow::bail!("--all-tags takes a repository name without a tag or digest");
        }
        let tags = list_tags(&name, &registry_options(g))?;
        if tags.is_empty() {
            anyhow::bail!("{} has no tags", name.familiar_name());
        }
        tags.iter().map(|t| name.with_tag(t)).collect()
    } else {
        if !a.quiet && name.digest().is_none() && !has_tag(&a.name) {
            println!("Using default tag: latest");
        }
        if let Some(d) = name.digest() {
            // Keep the digest only: NAME@DIGEST, as Docker names it.
            name = ImageRef::parse(&format!("{}@{d}", name.name()))?;
        }
        vec![name]
    };
    for n in &names {
        pull_image(g, &store, n, platform.clone(), Stream::Stdout, a.quiet)?;
        println!("{n}");
    }
    Ok(ExitCode::SUCCESS)
}

fn has_tag(input: &str) -> bool {
    let last = input.rsplit('/').next().unwrap_or(input);
    last.contains(':') || input.contains('@')
}
