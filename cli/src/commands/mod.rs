//! One module per command; each has its clap arguments and a `run`.

#[cfg(target_os = "linux")]
pub mod build;
#[cfg(target_os = "linux")]
pub mod builder;
pub mod completion;
#[cfg(target_os = "linux")]
pub mod container;
pub mod container_flags;
pub mod create;
#[cfg(target_os = "linux")]
pub mod exec;
pub mod history;
pub mod image;
pub mod images;
#[cfg(target_os = "linux")]
pub mod import;
pub mod info;
pub mod inspect;
#[cfg(target_os = "linux")]
pub mod internal;
pub mod internal_wasi;
pub mod load;
pub mod login;
pub mod logs;
#[cfg(target_os = "linux")]
pub mod network;
pub mod pause;
pub mod port;
pub mod ps;
pub mod pull;
pub mod push;
pub mod rename;
pub mod rmi;
pub mod run;
pub mod save;
pub mod serve;
#[cfg(target_os = "linux")]
pub mod serve_detached;
pub mod start;
pub mod stop;
#[cfg(target_os = "linux")]
pub mod system;
pub mod tag;
#[cfg(target_os = "linux")]
pub mod top;
pub mod version;
pub mod volume;

use std::process::ExitCode;

use anyhow::{Context, Result};
use berth_runtime::Store;
use berth_runtime::workload::StartError;

use crate::app::{Cli, Command, GlobalOptions};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let g = &cli.global;
    match cli.command {
        #[cfg(target_os = "linux")]
        Command::Build(a) => build::run(g, a),
        #[cfg(target_os = "linux")]
        Command::Builder(a) => builder::run(g, a),
        Command::Image(a) => image::run(g, a),
        Command::Images(a) => images::run(g, a),
        Command::Tag(a) => tag::run(g, a),
        Command::Rmi(a) => rmi::run(g, a),
        Command::Inspect(a) => inspect::run(g, a),
        Command::History(a) => history::run(g, a),
        #[cfg(target_os = "linux")]
        Command::Import(a) => import::run(g, a),
        Command::Save(a) => save::run(g, a),
        Command::Load(a) => load::run(g, a),
        Command::Pull(a) => pull::run(g, a),
        Command::Push(a) => push::run(g, a),
        Command::Login(a) => login::login(g, a),
        Command::Logout(a) => login::logout(g, a),
        Command::Version(a) => version::run(g, a),
        Command::Info(a) => info::run(g, a),
        Command::Completion(a) => completion::run(a),
        Command::Run(a) => run::run(g, a),
        Command::Serve(a) => serve::run(g, a),
        Command::Create(a) => create::run(g, a),
        Command::Start(a) => start::run(g, a),
        Command::Stop(a) => stop::stop(g, a),
        Command::Restart(a) => stop::restart(g, a),
        Command::Kill(a) => stop::kill(g, a),
        Command::Rm(a) => stop::rm(g, a),
        Command::Wait(a) => stop::wait(g, a),
        Command::Ps(a) => ps::run(g, a),
        Command::Port(a) => port::run(g, a),
        Command::Pause(a) => pause::pause(g, a),
        Command::Unpause(a) => pause::unpause(g, a),
        Command::Rename(a) => rename::run(g, a),
        Command::Logs(a) => logs::run(g, a),
        #[cfg(target_os = "linux")]
        Command::Exec(a) => exec::run(g, a),
        #[cfg(target_os = "linux")]
        Command::Top(a) => top::run(g, a),
        #[cfg(target_os = "linux")]
        Command::Container(a) => container::run(g, a),
        Command::Volume(a) => volume::run(g, a),
        #[cfg(target_os = "linux")]
        Command::Network(a) => network::run(g, a),
        #[cfg(target_os = "linux")]
        Command::System(a) => system::run(g, a),
        #[cfg(target_os = "linux")]
        Command::InternalInit(a) => internal::init(a),
        #[cfg(target_os = "linux")]
        Command::InternalMonitor(a) => internal::monitor(g, a),
        #[cfg(target_os = "linux")]
        Command::InternalExec(a) => internal::exec(a),
        #[cfg(target_os = "linux")]
        Command::InternalDns(a) => internal::dns(g, a),
        Command::InternalWasiMonitor(a) => internal_wasi::monitor(g, a),
        Command::InternalWasiRun(a) => internal_wasi::run(g, a),
    }
}

/// The exit code for a failed command, decided here alone, as Docker's: a container that
/// could not start gives its start failure's code (125 for berth's own failure, 126 for a
/// program that cannot run, 127 for one not found); any other failed request 1.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    e.chain()
        .find_map(|cause| cause.downcast_ref::<StartError>())
        .map_or(1, |s| s.code().clamp(0, 255) as u8)
}

/// Marks `e` as a container's failure to start (125 unless it is already a start failure
/// with its own code), for [`exit_code`].
pub fn start_failure(e: anyhow::Error) -> anyhow::Error {
    if e.chain().any(|c| c.is::<StartError>()) {
        return e;
    }
    anyhow::Error::new(StartError::berth(format!("{e:#}")))
}

/// Opens the store at `--root` (or the default).
pub fn open_store(g: &GlobalOptions) -> Result<Store> {
    let root = g.root.clone().unwrap_or_else(Store::default_root);
    Store::open(&root).with_context(|| format!("opening the berth root {}", root.display()))
}

/// Runs `f` on each of `names`, as Docker's verbs on several names do: what `f` returns (or
/// the name, for None) on a line for each success, an error line for each failure, and exit
/// status 1 when one failed.
pub fn report_each(
    names: &[String],
    mut f: impl FnMut(&str) -> Result<Option<String>>,
) -> ExitCode {
    let mut failed = false;
    for n in names {
        match f(n) {
            Ok(None) => println!("{n}"),
            Ok(Some(out)) if out.is_empty() => {}
            Ok(Some(out)) => println!("{out}"),
            Err(e) => {
                eprintln!("berth: {e:#}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
