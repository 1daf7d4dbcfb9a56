//! RUN: the command runs in a real container on the stage's layers, through the runtime; its
//! upper dir, less the sandbox's mount points, becomes the step's layer.

use std::collections::{BTreeMap, BTreeSet};

use berth_runtime::backend::{self, Backend, ImageHints};
use berth_runtime::container::monitor::{Attach, Monitor, remove_container};
use berth_runtime::container::state::{Container, RunState, new_id};
use berth_runtime::digest::Digest;
use berth_runtime::image::config::RunConfig;
use berth_runtime::workload::{NetworkMode, WorkloadSpec};
use chrono::Utc;

use super::mounts::RunMounts;
use super::{BUILD_LABEL, BuildError, Builder, StageState, Stages};
use crate::cache::Key;
use crate::config_edit::DEFAULT_SHELL;
use crate::dockerfile::{self, Command, Heredoc, Instruction, Mount};
use crate::layered::LayeredFs;
use crate::plan::{PREDEFINED_ARGS, short};

/// A RUN instruction's command, after substitution.
pub(super) struct RunStep<'i> {
    /// The command, shell or exec form.
    pub(super) command: &'i Command,
    /// Heredocs opened on the command line.
    pub(super) heredocs: &'i [Heredoc],
    /// `--network`.
    pub(super) network: Option<dockerfile::NetworkMode>,
    /// `--mount` flags in order.
    pub(super) mounts: &'i [Mount],
}

impl Builder<'_> {
    /// A RUN step, as step `label`: its mounts made, the command run (or its cached layer
    /// reused), and the copies made for bind mounts removed.
    pub(super) fn run_step(
        &self,
        stages: &Stages<'_, '_>,
        state: &mut StageState,
        instr: &Instruction,
        label: &str,
        step: &RunStep<'_>,
    ) -> Result<(), BuildError> {
        let mounts = self.mounts(stages, instr, step.mounts);
        let result = match &mounts {
            Ok(m) => self.run(state, instr, label, step, m),
            Err(_) => Ok(()),
        };
        // Copies made for bind mounts go, whatever happened.
        let temps = match &mounts {
            Ok(m) => m.temps.clone(),
            Err(_) => Vec::new(),
        };
        for t in temps {
            let _ = berth_runtime::store::remove_tree(&t);
        }
        mounts?;
        result
    }

    /// Runs the command of `step` with `mounts` unless the cache has its layer.
    fn run(
        &self,
        state: &mut StageState,
        instr: &Instruction,
        label: &str,
        step: &RunStep<'_>,
        mounts: &RunMounts,
    ) -> Result<(), BuildError> {
        let rc = state.config.config.clone().unwrap_or_default();
        let argv = run_argv(&rc, step.command, step.heredocs);
        let mut env = run_env(state, &rc);
        let net = match step.network {
            Some(dockerfile::NetworkMode::None) => NetworkMode::None,
            Some(dockerfile::NetworkMode::Host) => NetworkMode::Host,
            _ => self.opts.network,
        };
        let args_text = format!("{:?}", state.args);
        let key = state.key.then(&[
            "RUN",
            &format!("{argv:?}"),
            &format!("{env:?}"),
            &args_text,
            &format!("{net:?}"),
            rc.user.as_deref().unwrap_or(""),
            rc.working_dir.as_deref().unwrap_or(""),
            &mounts.key,
        ]);
        if let Some(entry) = self.cached(&key, label) {
            self.apply_entry(state, instr, key, entry);
            return Ok(());
        }
        // The proxy args reach every RUN without an ARG, and (as Docker's) stay out of the
        // cache key: a different proxy does not change what a step makes.
        for k in PREDEFINED_ARGS {
            if let Some(v) = self.opts.build_args.get(k)
                && !state.args.contains_key(k)
            {
                env.push(format!("{k}={v}"));
            }
        }
        let mut c = step_container(state, &rc, argv, &env, net, mounts);
        c.spec.backend = self
            .step_backend(state, &c.spec)
            .map_err(|e| self.step_err(instr, e))?;
        self.store
            .create_container(&c)
            .map_err(|e| self.step_err(instr, e))?;
        let result = self.run_container(state, instr, label, &c, key);
        if let Ok(c) = self.store.load_container(&c.id) {
            let _ = remove_container(self.store, &c, true);
        }
        result
    }

    /// The backend of a RUN step, decided as a container's is: a WASI stage's steps run
    /// WebAssembly programs (one that is found and is not wasm is refused, saying so);
    /// elsewhere the program's bytes in the stage's layers decide.
    fn step_backend(&self, state: &StageState, spec: &WorkloadSpec) -> Result<Backend, String> {
        let hints = ImageHints::of_config(&state.config);
        let diff_ids: Vec<_> = state.layers.iter().map(|l| l.diff_id.clone()).collect();
        let header = backend::program_header(&self.store.snapshots_top_first(&diff_ids), spec);
        if hints.wasm_platform
            && let Some(h) = &header
            && !berth_runtime::sandbox::wasi::is_wasm(h)
        {
            return Err(format!(
                "this stage is a WebAssembly image ({}), so its RUN steps run WebAssembly programs, and {} is not one: RUN a .wasm program in the exec form (RUN [\"/tool.wasm\", \"arg\"]), or name a WASI shell with SHELL",
                hints.platform,
                spec.args.first().map_or("the program", String::as_str)
            ));
        }
        let evidence = backend::Evidence {
            forced: None,
            program_header: header.as_deref(),
        };
        Ok(backend::decide("", &hints, evidence).unwrap_or(Backend::Native))
    }

    /// Runs the step's container `c` to its end; a zero exit makes its upper dir the layer
    /// for `key`.
    fn run_container(
        &self,
        state: &mut StageState,
        instr: &Instruction,
        label: &str,
        c: &Container,
        key: Key,
    ) -> Result<(), BuildError> {
        let attach = self.progress.attach(label);
        let detached = matches!(attach, Attach::Detached);
        let code = Monitor::start(self.store, &c.id, attach)
            .and_then(|m| {
                if detached {
                    // Quiet builds forward Ctrl-C too (an attached monitor does it itself).
                    berth_runtime::container::monitor::forward_signals(m.pid(), None);
                }
                m.wait()
            })
            .map_err(|e| self.step_err(instr, e))?;
        if code != 0 {
            return Err(BuildError::RunFailed {
                file: self.opts.dockerfile_name.clone(),
                line: instr.line,
                step: label.to_string(),
                instruction: short(&instr.original),
                code,
            });
        }
        let upper = self.store.container_dir(&c.id).join("upper");
        let targets: Vec<String> = c
            .spec
            .mounts
            .iter()
            .map(|m| m.destination.clone())
            .collect();
        remove_mount_stubs(&upper, &state.fs(self.store), &targets);
        self.commit_step(state, instr, key, &upper)
    }
}

/// The argv of a RUN: the exec form as written, or the shell form (with its heredocs) given
/// to the config's SHELL.
fn run_argv(rc: &RunConfig, command: &Command, heredocs: &[Heredoc]) -> Vec<String> {
    let shell = rc
        .shell
        .clone()
        .unwrap_or_else(|| DEFAULT_SHELL.iter().map(|s| s.to_string()).collect());
    match command {
        Command::Exec(v) => v.clone(),
        Command::Shell(text) => {
            let mut script = text.clone();
            if heredocs.len() == 1 && text.trim().starts_with("<<") && !text.trim().contains(' ') {
                // `RUN <<EOF` alone: the heredoc is the script.
                script = heredocs[0].content.clone();
            } else {
                // Otherwise the shell reads the heredocs itself.
                for h in heredocs {
                    script.push('\n');
                    script.push_str(&h.content);
                    script.push_str(&h.name);
                }
            }
            let mut v = shell;
            v.push(script);
            v
        }
    }
}

/// The environment of a RUN as its cache key sees it: the config's, the stage's build args
/// (ENV wins), and a default PATH.
fn run_env(state: &StageState, rc: &RunConfig) -> Vec<String> {
    // Build args reach the command as environment variables; ENV wins.
    let env_map = state.env.values();
    let mut env: Vec<String> = rc.env.clone().unwrap_or_default();
    for (k, v) in &state.args {
        if !env_map.contains_key(k) {
            env.push(format!("{k}={v}"));
        }
    }
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    env
}

/// The container a RUN step runs in: hidden from `berth ps` by [`BUILD_LABEL`], on the
/// stage's layers, killed outright when stopped.
fn step_container(
    state: &StageState,
    rc: &RunConfig,
    argv: Vec<String>,
    env: &[String],
    net: NetworkMode,
    mounts: &RunMounts,
) -> Container {
    let id = new_id();
    Container {
        id: id.clone(),
        name: format!("berth-build-{}", &id[..12]),
        image: "berth-build".into(),
        image_id: Digest::of(&state.config.to_bytes()),
        layers: state.layers.iter().map(|l| l.diff_id.clone()).collect(),
        created: Utc::now(),
        spec: WorkloadSpec {
            args: argv,
            // Secrets given as variables: after the cache key was made, so never in it.
            env: env.iter().chain(&mounts.env).cloned().collect(),
            cwd: rc
                .working_dir
                .clone()
                .filter(|w| !w.is_empty())
                .unwrap_or_else(|| "/".into()),
            user: rc.user.clone().unwrap_or_default(),
            hostname: "buildkitsandbox".into(),
            network: net,
            mounts: mounts.specs.clone(),
            // A small init as pid 1 passes Ctrl-C on to the command, which as pid 1 itself
            // would ignore it: interrupting a build stops the step.
            init: true,
            ..WorkloadSpec::default()
        },
        publish: Vec::new(),
        ports: Vec::new(),
        auto_remove: false,
        stop_signal: "SIGKILL".into(),
        stop_timeout: 0,
        labels: BTreeMap::from([(BUILD_LABEL.to_string(), "1".to_string())]),
        log_config: Default::default(),
        endpoints: Vec::new(),
        isolation: Default::default(),
        state: RunState::default(),
    }
}

/// Removes from a RUN's upper dir the empty mount points the runtime created for /proc,
/// /dev, /sys and the /etc files it binds, when the image did not have them: they are the
/// sandbox's, not the step's.
fn remove_mount_stubs(upper: &std::path::Path, below: &LayeredFs, targets: &[String]) {
    let mut stubs: Vec<String> = [
        "etc/hosts",
        "etc/hostname",
        "etc/resolv.conf",
        "proc",
        "dev",
        "sys",
    ]
    .map(String::from)
    .to_vec();
    // RUN --mount targets too: what was mounted there is not the step's either.
    stubs.extend(
        targets
            .iter()
            .map(|t| t.trim_start_matches('/').to_string()),
    );
    let mut parents = BTreeSet::new();
    for rel in stubs.iter().map(String::as_str) {
        if below.lookup(rel).is_some() {
            continue;
        }
        let p = upper.join(rel);
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        let removed = if m.is_dir() {
            std::fs::remove_dir(&p).is_ok()
        } else {
            m.len() == 0 && std::fs::remove_file(&p).is_ok()
        };
        if removed && let Some((parent, _)) = rel.rsplit_once('/') {
            parents.insert(parent.to_string());
        }
    }
    // An /etc made (or copied up) only to hold those files goes too; remove_dir keeps it
    // if the step put anything else there.
    for parent in parents {
        let _ = std::fs::remove_dir(upper.join(parent));
    }
}
