//! The command line: global options and one subcommand per Docker verb.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::commands;

/// berth builds Dockerfiles into OCI images and runs them, with no daemon.
#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    propagate_version = true,
    max_term_width = 100
)]
#[command(
    after_help = "Examples:\n  berth import rootfs.tar busybox\n  berth images\n  berth save -o busybox.tar busybox\n\nRun 'berth COMMAND --help' for more on a command."
)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: GlobalOptions,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Clone, Args)]
pub struct GlobalOptions {
    /// Where berth keeps images and containers [default: /var/lib/berth as root, else $XDG_DATA_HOME/berth]
    #[arg(long, global = true, env = "BERTH_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Log level: error, warn, info, debug or trace
    #[arg(
        long,
        global = true,
        value_name = "LEVEL",
        default_value = "warn",
        env = "BERTH_LOG_LEVEL"
    )]
    pub log_level: String,
    /// Debug output (the same as --log-level debug)
    #[arg(long, short = 'D', global = true)]
    pub debug: bool,
    /// A registry (HOST[:PORT]) that may use plain HTTP or unverified TLS; repeatable
    #[arg(
        long = "insecure-registry",
        global = true,
        value_name = "HOST[:PORT]",
        env = "BERTH_INSECURE_REGISTRY",
        value_delimiter = ','
    )]
    pub insecure_registries: Vec<String>,
}

/// berth's commands, named and flagged as Docker's.
#[derive(Debug, Subcommand)]
pub enum Command {
    #[cfg(target_os = "linux")]
    /// Build an image from a Dockerfile
    Build(commands::build::BuildArgs),
    #[cfg(target_os = "linux")]
    /// Manage the build cache (builder prune)
    Builder(commands::builder::BuilderArgs),
    /// Create and run a container from an image
    Run(commands::run::RunArgs),
    /// Serve images as HTTP functions (wasi:http components, WAGI modules, containers)
    Serve(commands::serve::ServeArgs),
    /// Create a container without starting it
    Create(commands::create::CreateArgs),
    /// Start containers
    Start(commands::start::StartArgs),
    /// Stop containers (the stop signal, then SIGKILL)
    Stop(commands::stop::StopArgs),
    /// Restart containers
    Restart(commands::stop::StopArgs),
    /// Send a signal to containers
    Kill(commands::stop::KillArgs),
    /// Remove containers
    Rm(commands::stop::RmArgs),
    /// Wait for containers to stop and print their exit codes
    Wait(commands::stop::WaitArgs),
    /// List containers
    Ps(commands::ps::PsArgs),
    /// List a container's published ports
    Port(commands::port::PortArgs),
    /// Freeze every process of containers
    Pause(commands::pause::PauseArgs),
    /// Thaw paused containers
    Unpause(commands::pause::PauseArgs),
    /// Rename a container
    Rename(commands::rename::RenameArgs),
    /// Show a container's output
    Logs(commands::logs::LogsArgs),
    #[cfg(target_os = "linux")]
    /// Run a command in a running container
    Exec(commands::exec::ExecArgs),
    #[cfg(target_os = "linux")]
    /// Show a container's processes
    Top(commands::top::TopArgs),
    #[cfg(target_os = "linux")]
    /// Manage containers (container ls, prune, …)
    Container(commands::container::ContainerArgs),
    /// Manage volumes
    Volume(commands::volume::VolumeArgs),
    #[cfg(target_os = "linux")]
    /// Manage networks (network create, ls, inspect, rm, prune, connect, disconnect)
    Network(commands::network::NetworkArgs),
    #[cfg(target_os = "linux")]
    /// Manage berth itself (system prune, system info)
    System(commands::system::SystemArgs),
    /// Manage images (image ls, rm, inspect, tag, history, import, save, load, prune)
    Image(commands::image::ImageArgs),
    /// List images
    Images(commands::images::ImagesArgs),
    /// Create a tag TARGET that refers to SOURCE
    Tag(commands::tag::TagArgs),
    /// Remove one or more images
    Rmi(commands::rmi::RmiArgs),
    /// Show low-level information on images as JSON
    Inspect(commands::inspect::InspectArgs),
    /// Show the history of an image
    History(commands::history::HistoryArgs),
    #[cfg(target_os = "linux")]
    /// Import a root filesystem tarball or folder as an image
    Import(commands::import::ImportArgs),
    /// Save images to a tar archive (OCI layout, readable by docker load)
    Save(commands::save::SaveArgs),
    /// Load images from a tar archive (berth save, docker save, OCI archives)
    Load(commands::load::LoadArgs),
    /// Download an image from a registry
    Pull(commands::pull::PullArgs),
    /// Upload an image to a registry
    Push(commands::push::PushArgs),
    /// Log in to a registry
    Login(commands::login::LoginArgs),
    /// Log out from a registry
    Logout(commands::login::LogoutArgs),
    /// Show berth's version
    Version(commands::version::VersionArgs),
    /// Show system-wide information
    Info(commands::info::InfoArgs),
    /// Print a shell completion script
    Completion(commands::completion::CompletionArgs),
    #[cfg(target_os = "linux")]
    /// A container's first processes (berth runs this itself)
    #[command(name = "__init", hide = true)]
    InternalInit(commands::internal::InitArgs),
    #[cfg(target_os = "linux")]
    /// The process that holds a detached container (berth runs this itself)
    #[command(name = "__monitor", hide = true)]
    InternalMonitor(commands::internal::MonitorArgs),
    #[cfg(target_os = "linux")]
    /// A command run in a container's namespaces (berth runs this itself)
    #[command(name = "__exec", hide = true)]
    InternalExec(commands::internal::ExecArgs),
    #[cfg(target_os = "linux")]
    /// A user-defined network's DNS server (berth runs this itself)
    #[command(name = "__dns", hide = true)]
    InternalDns(commands::internal::DnsArgs),
    /// The process that holds a detached WASI container without namespaces (berth runs this)
    #[command(name = "__wasi-monitor", hide = true)]
    InternalWasiMonitor(commands::internal_wasi::ContainerArg),
    /// The guest of a detached WASI container without namespaces (berth runs this itself)
    #[command(name = "__wasi-run", hide = true)]
    InternalWasiRun(commands::internal_wasi::ContainerArg),
}

/// Sets up tracing from `--log-level` / `--debug`.
pub fn init_logging(g: &GlobalOptions) {
    init_logging_at(if g.debug {
        "debug"
    } else {
        g.log_level.as_str()
    });
}

/// Logs at `level` (error, warn, info, debug or trace) to stderr.
pub fn init_logging_at(level: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(filter(level))
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
}

/// Logs at `level` into `file`, with times: a process whose stderr is a container's.
pub fn init_logging_into(level: &str, file: std::fs::File) {
    tracing_subscriber::fmt()
        .with_env_filter(filter(level))
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false)
        .with_target(false)
        .init();
}

/// berth's own crates at `level`.
fn filter(level: &str) -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_new(format!(
        "berth={level},berth_runtime={level},berth_builder={level},berth_cli={level}"
    ))
    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"))
}
