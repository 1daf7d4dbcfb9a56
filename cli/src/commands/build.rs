//! `berth build`: a Dockerfile and a context folder into an image, with Docker's flags.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use berth_builder::context::Context;
use berth_builder::dockerfile::MAX_DOCKERFILE_SIZE;
use berth_builder::executor::{BuildError, BuildOptions, build, check_size};
use berth_builder::output::Mode;
use berth_runtime::reference::ImageRef;
use berth_runtime::workload::NetworkMode;
use clap::Args;

use crate::app::GlobalOptions;
use crate::build_progress::TtyDisplay;

/// Arguments of `berth build`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  berth build -t app .\n  berth build -t app:dev -f docker/Dockerfile.dev --build-arg VERSION=2 .\n  berth build --target builder -t app-builder .\n  tar -c . | berth build -t app -\n  berth build -t app - < Dockerfile"
)]
pub struct BuildArgs {
    /// Name and optionally a tag (NAME[:TAG]); repeatable
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
    pub tags: Vec<String>,
    /// The Dockerfile (default: CONTEXT/Dockerfile); `-` reads it from stdin
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<String>,
    /// A build-time variable, KEY=VALUE, or KEY to take it from the environment
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
    pub build_args: Vec<String>,
    /// The stage to build (default: the last)
    #[arg(long)]
    pub target: Option<String>,
    /// Do not use the cache
    #[arg(long)]
    pub no_cache: bool,
    /// Pull base images fresh even when the store has them
    #[arg(long)]
    pub pull: bool,
    /// The platform to build for: the host's (linux/amd64 here) or wasi/wasm
    #[arg(long)]
    pub platform: Option<String>,
    /// The network for RUN: host (the default), default (the bridge, with NAT out) or none
    #[arg(long, default_value = "host")]
    pub network: String,
    /// Metadata for the image, KEY=VALUE; repeatable
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Print only the image id
    #[arg(short, long)]
    pub quiet: bool,
    /// Progress output: tty (a live display on stderr, which must be a terminal), plain (step
    /// lines and RUN output as they come), quiet, or auto (tty on a terminal, else plain)
    #[arg(long, default_value = "auto")]
    pub progress: String,
    /// A secret for RUN --mount=type=secret: id=ID,src=PATH; repeatable
    #[arg(long = "secret", value_name = "id=ID,src=PATH")]
    pub secrets: Vec<String>,
    /// Write the image id to this file
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// The build context: a folder, or `-` for a tar archive (or a lone Dockerfile) on stdin
    #[arg(value_name = "CONTEXT")]
    pub context: String,
}

fn parse_build_args(list: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for a in list {
        match a.split_once('=') {
            Some((k, v)) => {
                out.insert(k.to_string(), v.to_string());
            }
            // As Docker's: `--build-arg K` takes K from the environment, or is ignored.
            None => {
                if let Ok(v) = std::env::var(a) {
                    out.insert(a.clone(), v);
                }
            }
        }
    }
    out
}

fn parse_labels(list: &[String]) -> Result<BTreeMap<String, String>> {
    list.iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ if !l.is_empty() => Ok((l.clone(), String::new())),
            _ => bail!("invalid --label {l:?}: expected KEY=VALUE"),
        })
        .collect()
}

/// A folder removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = berth_runtime::store::remove_tree(&self.0);
    }
}

/// Whether `bytes` hold a tar archive, maybe compressed.
fn looks_like_tar(bytes: &[u8]) -> bool {
    let Ok(mut reader) = berth_runtime::image::layer::decompress(bytes) else {
        return false;
    };
    let mut head = [0u8; 512];
    reader.read_exact(&mut head).is_ok() && &head[257..262] == b"ustar"
}

fn parse_secrets(list: &[String]) -> Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    for spec in list {
        let (mut id, mut src) = (None, None);
        for part in spec.split(',') {
            match part.split_once('=') {
                Some(("id", v)) => id = Some(v.to_string()),
                Some(("src" | "source", v)) => src = Some(PathBuf::from(v)),
                Some(("type", "file")) => {}
                _ => bail!("invalid --secret {spec:?}: expected id=ID,src=PATH"),
            }
        }
        let (Some(id), Some(src)) = (id, src) else {
            bail!("invalid --secret {spec:?}: expected id=ID,src=PATH");
        };
        if !src.is_file() {
            bail!("--secret {spec:?}: {} is not a file", src.display());
        }
        out.insert(id, std::fs::canonicalize(&src)?);
    }
    Ok(out)
}

/// Base images missing from the store (or all with --pull) come from their registry;
/// the pull's progress goes to stderr, with the live display hidden meanwhile.
fn pull_hook(
    g: &GlobalOptions,
    store: &berth_runtime::Store,
    display: Option<Arc<TtyDisplay>>,
) -> berth_builder::executor::PullHook {
    let g = g.clone();
    let store = store.clone();
    berth_builder::executor::PullHook(Box::new(move |name| {
        let pull = || {
            super::pull::image_for(&g, &store, name, "always", None).map_err(|e| format!("{e:#}"))
        };
        match &display {
            Some(d) => d.suspend(pull),
            None => pull(),
        }
    }))
}

/// The live display when `--progress` asks for it (tty) or allows it (auto, with stderr a
/// terminal, as BuildKit decides); `-q` wins over both.
fn tty_display(a: &BuildArgs) -> Result<Option<Arc<TtyDisplay>>> {
    let terminal = std::io::stderr().is_terminal();
    match a.progress.as_str() {
        _ if a.quiet => Ok(None),
        // As BuildKit's: a forced tty display with no terminal is an error, not a silent
        // fallback that would hide what was asked.
        "tty" if !terminal => bail!(
            "--progress tty needs a terminal, and stderr is not one; use --progress plain (or auto, which chooses)"
        ),
        "tty" | "auto" if terminal => Ok(Some(Arc::new(TtyDisplay::new()))),
        "auto" | "plain" | "quiet" => Ok(None),
        other => bail!("invalid --progress {other:?}: use auto, plain, tty or quiet"),
    }
}

/// Builds the image.
pub fn run(g: &GlobalOptions, a: BuildArgs) -> Result<ExitCode> {
    let platform = a
        .platform
        .as_deref()
        .map(berth_runtime::image::config::parse_build_platform)
        .transpose()
        .map_err(|e| anyhow::anyhow!("invalid --platform: {e}"))?;
    let display = tty_display(&a)?;
    let network = match a.network.as_str() {
        "host" => NetworkMode::Host,
        "default" | "bridge" => NetworkMode::Bridge,
        "none" => NetworkMode::None,
        other => bail!("invalid --network {other:?}: use host, default or none"),
    };
    let tags = a
        .tags
        .iter()
        .map(|t| ImageRef::parse(t).with_context(|| format!("invalid -t {t:?}")))
        .collect::<Result<Vec<_>>>()?;
    let store = super::open_store(g)?;
    // `-`: a tar context on stdin (or a lone Dockerfile, with an empty context), unpacked
    // into the store's tmp/ for the build and removed after it.
    let stdin_context = if a.context == "-" {
        if a.file.as_deref() == Some("-") {
            bail!("-f - and a context on stdin (-) cannot both read stdin");
        }
        let dir = store.temp_path("context");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let guard = TempDir(dir.clone());
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading the build context from stdin")?;
        if looks_like_tar(&bytes) {
            berth_builder::context::unpack_tar(&bytes[..], &dir)?;
        } else {
            std::fs::write(dir.join("Dockerfile"), &bytes)
                .context("writing the Dockerfile from stdin")?;
        }
        Some(guard)
    } else {
        None
    };
    let context_dir = match &stdin_context {
        Some(t) => t.0.clone(),
        None => PathBuf::from(&a.context),
    };
    let (dockerfile, name, ignore_file) =
        read_dockerfile(a.file.as_deref(), &context_dir, stdin_context.is_some())?;
    let context = Context::open(&context_dir, ignore_file.as_deref().map(Path::new))?;
    let opts = BuildOptions {
        dockerfile,
        dockerfile_name: name,
        context,
        tags,
        build_args: parse_build_args(&a.build_args),
        target: a.target.clone(),
        no_cache: a.no_cache,
        labels: parse_labels(&a.labels)?,
        network,
        progress: match display.clone() {
            Some(d) => Mode::Live(d),
            None if a.quiet || a.progress == "quiet" => Mode::Quiet,
            None => Mode::Plain,
        },
        secrets: parse_secrets(&a.secrets)?,
        platform,
        pull: Some(pull_hook(g, &store, display.clone())),
        pull_always: a.pull,
    };
    let built = build(&store, &opts);
    if let Some(d) = &display {
        d.clear();
    }
    let image = match built {
        // Ended by a signal: the exit code says which, as if the signal had ended berth.
        Err(BuildError::Interrupted(signal)) => {
            eprintln!("berth: {}", BuildError::Interrupted(signal));
            return Ok(ExitCode::from(signal.exit_code()));
        }
        built => built?,
    };
    let id = image.id.to_string();
    if let Some(path) = &a.iidfile {
        std::fs::write(path, &id).with_context(|| format!("writing {}", path.display()))?;
    }
    if matches!(opts.progress, Mode::Quiet) {
        println!("{id}");
    } else {
        println!("Successfully built {}", image.id.short());
        for t in &opts.tags {
            println!("Successfully tagged {}", t.familiar());
        }
        println!("{id}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The Dockerfile's text, its name for messages, and its own `.dockerignore` if it has one:
/// from `-f -` (stdin), `-f FILE` (inside a context given on stdin), or the context's
/// `Dockerfile`. One over the size limit is refused before it is read.
fn read_dockerfile(
    file: Option<&str>,
    context_dir: &Path,
    context_on_stdin: bool,
) -> Result<(String, String, Option<PathBuf>)> {
    Ok(match file {
        Some("-") => {
            // Read no further than the limit: past it the build refuses the file anyway.
            let mut text = String::new();
            std::io::stdin()
                .take(MAX_DOCKERFILE_SIZE as u64 + 1)
                .read_to_string(&mut text)
                .context("reading the Dockerfile from stdin")?;
            check_size("Dockerfile (stdin)", text.len())?;
            (text, "Dockerfile".to_string(), None)
        }
        other => {
            let path = match other {
                // With a context on stdin, -f names a file inside it.
                Some(f) if context_on_stdin => context_dir.join(f),
                Some(f) => PathBuf::from(f),
                None => context_dir.join("Dockerfile"),
            };
            let name = path
                .strip_prefix(context_dir)
                .unwrap_or(&path)
                .display()
                .to_string();
            // A huge file is refused before it is read.
            if let Ok(m) = std::fs::metadata(&path) {
                check_size(&name, usize::try_from(m.len()).unwrap_or(usize::MAX))?;
            }
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "reading the Dockerfile {}; give its path with -f",
                    path.display()
                )
            })?;
            let ignore = PathBuf::from(format!("{}.dockerignore", path.display()));
            (text, name, ignore.is_file().then_some(ignore))
        }
    })
}
