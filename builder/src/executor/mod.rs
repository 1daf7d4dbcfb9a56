//! Running a build: each needed stage from its base, instruction by instruction. Metadata
//! instructions edit the config (through [`ConfigEditor`](crate::config_edit::ConfigEditor));
//! RUN runs a real container through the runtime and turns its upper dir into a layer;
//! COPY/ADD and WORKDIR write a fresh folder that becomes a layer. Nothing is named until the
//! whole build succeeded, so a failed build leaves no tag and no half image.
//!
//! This module holds the build loop and the stage state; each family of instructions has a
//! module of its own: `stage` (FROM, `--from`), `metadata` (ARG, WORKDIR and the config
//! edits), `copy` (COPY, ADD), `run` (RUN) with its `mounts`; `commit` turns what a step
//! wrote into a layer, a cache entry and a history entry.

mod commit;
mod copy;
mod metadata;
mod mounts;
mod run;
mod stage;

use std::collections::BTreeMap;

use berth_runtime::Store;
use berth_runtime::container::monitor::remove_container;
use berth_runtime::image::config::ImageConfig;
use berth_runtime::image::{Image, ImageError, LayerRef};
use berth_runtime::reference::ImageRef;
use berth_runtime::workload::NetworkMode;
use chrono::Utc;

use self::run::RunStep;
use crate::budget::Budget;
use crate::cache::{Cache, Key};
use crate::cancel::{self, Interrupted};
use crate::config_edit::EnvIndex;
use crate::context::Context;
use crate::dockerfile::{self, Dockerfile, Instruction, InstructionKind};
use crate::layered::LayeredFs;
use crate::output::Progress;
use crate::plan::{Plan, PlanError, short};

pub use berth_runtime::container::BUILD_LABEL;

/// What to build and how.
#[derive(Debug)]
pub struct BuildOptions {
    /// The Dockerfile's text.
    pub dockerfile: String,
    /// How errors name the Dockerfile (`Dockerfile`, `app/Dockerfile.dev`, `-`).
    pub dockerfile_name: String,
    /// The context.
    pub context: Context,
    /// `-t` names.
    pub tags: Vec<ImageRef>,
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// `--target`.
    pub target: Option<String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--label` entries added to the final image.
    pub labels: BTreeMap<String, String>,
    /// `--network` for RUN.
    pub network: NetworkMode,
    /// How progress shows: plain lines, nothing (`-q`), or a live display.
    pub progress: crate::output::Mode,
    /// `--secret id=ID,src=PATH`: files RUN `--mount=type=secret` can read.
    pub secrets: BTreeMap<String, std::path::PathBuf>,
    /// `--platform` as (os, arch): the platform of `FROM scratch` stages (the host's if unset).
    pub platform: Option<(String, String)>,
    /// Gets base images from a registry: a FROM (or `--from`) image missing from the store,
    /// or every one with `pull_always`. `None` builds from local images only.
    pub pull: Option<PullHook>,
    /// `--pull`: fetch base images fresh even when the store has them.
    pub pull_always: bool,
}

/// Pulls an image by name into the store, or says why it could not.
pub type PullFn = dyn Fn(&str) -> Result<Image, String> + Send + Sync;

/// Pulls an image by name into the store (the CLI's registry client, with its progress).
pub struct PullHook(pub Box<PullFn>);

impl std::fmt::Debug for PullHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PullHook")
    }
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The Dockerfile does not parse.
    #[error("{file}:{line}:{column}: {message}")]
    Parse {
        /// The Dockerfile's name.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A step failed.
    #[error("{file}:{line}: {instruction}: {message}")]
    Step {
        /// The Dockerfile's name.
        file: String,
        /// The instruction's line.
        line: usize,
        /// The instruction, shortened.
        instruction: String,
        /// What went wrong.
        message: String,
    },
    /// A RUN exited non-zero.
    #[error(
        "{file}:{line}: step {step} {instruction}: the command exited with code {code}; the build stopped here"
    )]
    RunFailed {
        /// The Dockerfile's name.
        file: String,
        /// The instruction's line.
        line: usize,
        /// `N/TOTAL`.
        step: String,
        /// The instruction, shortened.
        instruction: String,
        /// The exit code.
        code: i32,
    },
    /// The plan could not be made.
    #[error("{file}: {source}")]
    Plan {
        /// The Dockerfile's name.
        file: String,
        /// Why.
        source: crate::plan::PlanError,
    },
    /// The Dockerfile is over [`dockerfile::MAX_DOCKERFILE_SIZE`].
    #[error("{file}: {}", dockerfile::too_large(*.size))]
    TooLarge {
        /// The Dockerfile's name.
        file: String,
        /// Its size in bytes.
        size: usize,
    },
    /// SIGINT, SIGTERM, SIGHUP or SIGQUIT stopped the build; nothing was named.
    #[error("{0}; nothing was tagged, and a new build picks up from the cached steps")]
    Interrupted(#[from] Interrupted),
    /// The store failed.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// Another stage failed first; this one stopped.
    #[error("stopped because another stage failed")]
    Cancelled,
}

/// A stage being built.
#[derive(Debug, Clone)]
struct StageState {
    config: ImageConfig,
    layers: Vec<LayerRef>,
    key: Key,
    /// Build args in scope in this stage, with their values.
    args: BTreeMap<String, String>,
    /// Whether a CMD was set in this stage (ENTRYPOINT resets only an inherited CMD).
    cmd_set: bool,
    /// The config's environment, kept beside it for substitution and ENV.
    env: EnvIndex,
    /// Indices in the config's history of metadata steps still without a time: a run of them
    /// shares one cache entry, written when it ends (see [`Builder::settle_edits`]).
    unsettled: Vec<usize>,
}

impl StageState {
    /// A stage starting from `config` (with `layers` and cache key `key`).
    fn new(config: ImageConfig, layers: Vec<LayerRef>, key: Key) -> StageState {
        StageState {
            env: EnvIndex::of(&config),
            config,
            layers,
            key,
            args: BTreeMap::new(),
            cmd_set: false,
            unsettled: Vec::new(),
        }
    }

    fn fs(&self, store: &Store) -> LayeredFs {
        LayeredFs::new(
            self.layers
                .iter()
                .map(|l| store.snapshot_path(&l.diff_id))
                .collect(),
        )
    }
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// A build in progress.
struct Builder<'a> {
    store: &'a Store,
    opts: &'a BuildOptions,
    cache: Cache,
    progress: Progress,
    escape: char,
    /// Set when a stage failed, so stages building beside it stop at their next step.
    failed: std::sync::atomic::AtomicBool,
    /// What variable substitution may still produce.
    budget: Budget,
}

/// The most stages one build runs at the same time.
const MAX_PARALLEL_STAGES: usize = 8;

/// Where a step is: the plan, the index of the stage it belongs to, and the stages built so
/// far (the ones it reads among them).
#[derive(Clone, Copy)]
struct Stages<'a, 'p> {
    plan: &'a Plan<'p>,
    index: usize,
    done: &'a [Option<StageState>],
}

/// Builds the image and names it; returns the image.
pub fn build(store: &Store, opts: &BuildOptions) -> Result<Image, BuildError> {
    check_size(&opts.dockerfile_name, opts.dockerfile.len())?;
    let file = dockerfile::parse(&opts.dockerfile).map_err(|e| BuildError::Parse {
        file: opts.dockerfile_name.clone(),
        line: e.line,
        column: e.column,
        message: e.message.clone(),
    })?;
    let escape = file.directives.escape;
    let budget = Budget::default();
    let plan = make_plan(opts, &file, escape, &budget)?;
    let total = plan
        .needed
        .iter()
        .map(|&i| plan.stages[i].instructions.len() + 1)
        .sum();
    // Held until the image is committed, so garbage collection cannot take our new layers.
    let _content = store.lock_content().map_err(ImageError::from)?;
    remove_stale_step_containers(store);
    // Blocked before any stage thread starts, so every thread inherits the mask and Ctrl-C
    // goes to the runtime's forwarder (and on to the running step), never killing berth
    // with a step's container left behind; with no step running, the build stops itself.
    cancel::watch();
    let b = Builder {
        store,
        opts,
        cache: Cache::new(store),
        progress: Progress::new(total, opts.progress.clone()),
        escape,
        failed: std::sync::atomic::AtomicBool::new(false),
        budget,
    };
    let mut done = b.stages(&plan)?;
    cancel::check()?;
    let state = done[plan.target].take().expect("the target was built");
    b.commit_image(state)
}

/// The plan of the stages the build needs; an error names the Dockerfile.
fn make_plan<'f>(
    opts: &BuildOptions,
    file: &'f Dockerfile,
    escape: char,
    budget: &Budget,
) -> Result<Plan<'f>, BuildError> {
    Plan::new(
        file,
        opts.target.as_deref(),
        &opts.build_args,
        escape,
        budget,
    )
    .map_err(|source| match source {
        PlanError::Expand {
            line,
            instruction,
            message,
        } => BuildError::Step {
            file: opts.dockerfile_name.clone(),
            line,
            instruction,
            message,
        },
        source => BuildError::Plan {
            file: opts.dockerfile_name.clone(),
            source,
        },
    })
}

/// Refuses a Dockerfile of `size` bytes over [`dockerfile::MAX_DOCKERFILE_SIZE`]; the CLI asks
/// before it reads a file that large.
pub fn check_size(file: &str, size: usize) -> Result<(), BuildError> {
    if size > dockerfile::MAX_DOCKERFILE_SIZE {
        return Err(BuildError::TooLarge {
            file: file.to_string(),
            size,
        });
    }
    Ok(())
}

impl Builder<'_> {
    /// Builds the needed stages of `plan`, wave by wave; the result holds each one built.
    fn stages(&self, plan: &Plan<'_>) -> Result<Vec<Option<StageState>>, BuildError> {
        let mut done: Vec<Option<StageState>> = vec![None; plan.stages.len()];
        // A wave of thousands of stages would be thousands of threads at once: a few at a time.
        let waves = plan.waves();
        for wave in waves.iter().flat_map(|w| w.chunks(MAX_PARALLEL_STAGES)) {
            let results = self.wave(plan, wave, &done);
            // The first failure in source order is the one reported; a stage stopped because
            // another failed is not.
            let mut first_err = None;
            for (i, r) in results {
                match r {
                    Ok(state) => done[i] = Some(state),
                    Err(BuildError::Cancelled) => {}
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = first_err {
                return Err(e);
            }
        }
        Ok(done)
    }

    /// Builds the stages `wave` (none reads another), each with its result.
    fn wave(
        &self,
        plan: &Plan<'_>,
        wave: &[usize],
        done: &[Option<StageState>],
    ) -> Vec<(usize, Result<StageState, BuildError>)> {
        let stages = |index| Stages { plan, index, done };
        if wave.len() == 1 {
            return vec![(wave[0], self.stage(stages(wave[0])))];
        }
        // Stages that do not read each other build at the same time.
        std::thread::scope(|scope| {
            let handles: Vec<_> = wave
                .iter()
                .map(|&i| {
                    let s = stages(i);
                    (i, scope.spawn(move || self.stage(s)))
                })
                .collect();
            handles
                .into_iter()
                .map(|(i, h)| (i, h.join().expect("a stage thread panicked")))
                .collect()
        })
    }

    /// Names the target stage's result: the image, with `--label`s, committed under the tags.
    fn commit_image(&self, mut state: StageState) -> Result<Image, BuildError> {
        let opts = self.opts;
        if !opts.labels.is_empty() {
            let labels = state
                .config
                .run_config_mut()
                .labels
                .get_or_insert_with(BTreeMap::new);
            labels.extend(opts.labels.clone());
        }
        let mut config = state.config;
        // The time of the newest step: a fully cached rebuild reproduces the image id.
        config.created = config
            .history
            .iter()
            .filter_map(|h| h.created.clone())
            .max()
            .or_else(|| Some(now()));
        config.rootfs.kind = "layers".into();
        config.rootfs.diff_ids = state.layers.iter().map(|l| l.diff_id.clone()).collect();
        crate::wasi::mark_wasi_entrypoint(self.store, &mut config, self.progress.quiet());
        let image = self
            .store
            .commit_image(&config, &state.layers, &opts.tags)?;
        Ok(image)
    }

    fn step_err(&self, instr: &Instruction, message: impl std::fmt::Display) -> BuildError {
        BuildError::Step {
            file: self.opts.dockerfile_name.clone(),
            line: instr.line,
            instruction: short(&instr.original),
            message: message.to_string(),
        }
    }

    fn stage(&self, stages: Stages<'_, '_>) -> Result<StageState, BuildError> {
        let result = self.stage_steps(&stages);
        if result.is_err() {
            self.failed.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        result
    }

    fn stage_steps(&self, stages: &Stages<'_, '_>) -> Result<StageState, BuildError> {
        let label = self
            .progress
            .step(&stages.plan.stages[stages.index].from.original);
        let begun = self.stage_base(stages);
        self.progress.end(&label, begun.is_ok());
        let (mut state, instructions) = begun?;
        for instr in &instructions {
            self.instruction(stages, &mut state, instr)?;
        }
        let key = state.key.clone();
        self.settle_edits(&mut state, &key);
        Ok(state)
    }

    /// One step of a stage.
    fn instruction(
        &self,
        stages: &Stages<'_, '_>,
        state: &mut StageState,
        instr: &Instruction,
    ) -> Result<(), BuildError> {
        if self.failed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(BuildError::Cancelled);
        }
        cancel::check()?;
        if matches!(
            instr.kind,
            InstructionKind::Run { .. } | InstructionKind::Copy(_) | InstructionKind::Add(_)
        ) {
            let key = state.key.clone();
            self.settle_edits(state, &key);
        }
        let label = self.progress.step(&instr.with_heredocs());
        let result = match self.execute(stages, state, instr, &label) {
            // A step that failed because a signal stopped the build says so (a RUN step's
            // own exit code still tells what became of its command).
            Err(e) if !matches!(e, BuildError::RunFailed { .. }) => {
                cancel::check().map_err(BuildError::from).and(Err(e))
            }
            result => result,
        };
        self.progress.end(&label, result.is_ok());
        result
    }

    /// What instruction `instr` does, as step `label`: its variables substituted, then the
    /// module of its family does it.
    fn execute(
        &self,
        stages: &Stages<'_, '_>,
        state: &mut StageState,
        instr: &Instruction,
        label: &str,
    ) -> Result<(), BuildError> {
        let vars = self.budget.meter(state.env.values(), &state.args);
        let expanded = instr.expand(&vars, self.escape);
        vars.charge().map_err(|e| self.step_err(instr, e))?;
        let expanded = expanded.map_err(|e| self.step_err(instr, e))?;
        match &expanded.kind {
            InstructionKind::Arg(decls) => {
                self.arg(stages.plan, state, decls);
                Ok(())
            }
            InstructionKind::Run {
                command,
                heredocs,
                network,
                mounts,
                ..
            } => {
                let step = RunStep {
                    command,
                    heredocs,
                    network: *network,
                    mounts,
                };
                self.run_step(stages, state, instr, label, &step)
            }
            InstructionKind::Copy(spec) | InstructionKind::Add(spec) => {
                self.copy(stages, state, instr, &expanded, spec, label)
            }
            InstructionKind::Workdir(_) => self.workdir_step(state, instr, &expanded, label),
            InstructionKind::From { .. } => unreachable!("FROM starts a stage"),
            _ => self.edit(state, instr, &expanded),
        }
    }
}

/// Removes RUN containers a killed build left behind (their monitor is gone): they are
/// hidden from `berth ps`, so nobody else would.
fn remove_stale_step_containers(store: &Store) {
    use berth_runtime::container::state::process_alive;
    let Ok(all) = store.containers() else {
        return;
    };
    for c in all {
        let monitor_alive = c
            .state
            .monitor_pid
            .is_some_and(|pid| process_alive(pid, c.state.monitor_start));
        // One never started is stale only once it is old: another build may be about to
        // start it.
        let old = Utc::now() - c.created > chrono::Duration::minutes(1);
        let stale = !monitor_alive && (c.state.monitor_pid.is_some() || old);
        if c.labels.contains_key(BUILD_LABEL) && stale {
            let _ = remove_container(store, &c, true);
        }
    }
}

/// The config's working directory, `/` if unset.
fn workdir(config: &ImageConfig) -> String {
    config
        .config
        .as_ref()
        .and_then(|c| c.working_dir.clone())
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into())
}
