//! Running a build: each needed stage from its base, instruction by instruction. Metadata
//! instructions edit the config (through [`ConfigEditor`]); RUN runs a real container through
//! the runtime and turns its upper dir into a layer; COPY/ADD and WORKDIR write a fresh folder
//! that becomes a layer. Nothing is named until the whole build succeeded, so a failed build
//! leaves no tag and no half image.

use std::collections::{BTreeMap, BTreeSet};

use berth_runtime::Store;
use berth_runtime::backend::{self, Backend, ImageHints};
use berth_runtime::container::monitor::{Attach, Monitor, remove_container};
use berth_runtime::container::state::{Container, RunState, new_id};
use berth_runtime::digest::Digest;
use berth_runtime::image::config::{History, ImageConfig, host_platform, parse_build_platform};
use berth_runtime::image::layer::{Compression, CreateOptions};
use berth_runtime::image::{Image, ImageError, LayerRef};
use berth_runtime::reference::ImageRef;
use berth_runtime::workload::{
    MountKind as WorkloadMountKind, MountSpec, NetworkMode, WorkloadSpec,
};
use chrono::Utc;

use crate::budget::Budget;
use crate::cache::{Cache, CachedLayer, Entry, Key, hash_tree};
use crate::cancel::{self, Interrupted};
use crate::config_edit::{ConfigEditor, DEFAULT_SHELL, EnvIndex};
use crate::context::Context;
use crate::copy::{CopyJob, Source, parse_chmod, resolve_owner};
use crate::dockerfile::{self, Command, Instruction, InstructionKind};
use crate::layered::LayeredFs;
use crate::output::Progress;
use crate::plan::{PREDEFINED_ARGS, Plan, PlanError, short};

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
    let plan = Plan::new(
        &file,
        opts.target.as_deref(),
        &opts.build_args,
        escape,
        &budget,
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
    })?;
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
    let mut done: Vec<Option<StageState>> = vec![None; plan.stages.len()];
    // A wave of thousands of stages would be thousands of threads at once: a few at a time.
    let waves = plan.waves();
    for wave in waves.iter().flat_map(|w| w.chunks(MAX_PARALLEL_STAGES)) {
        let results: Vec<(usize, Result<StageState, BuildError>)> = if wave.len() == 1 {
            vec![(wave[0], b.stage(&plan, wave[0], &done))]
        } else {
            // Stages that do not read each other build at the same time.
            std::thread::scope(|scope| {
                let handles: Vec<_> = wave
                    .iter()
                    .map(|&i| {
                        let (b, plan, done) = (&b, &plan, &done);
                        (i, scope.spawn(move || b.stage(plan, i, done)))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|(i, h)| (i, h.join().expect("a stage thread panicked")))
                    .collect()
            })
        };
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
    cancel::check()?;
    let mut state = done[plan.target].take().expect("the target was built");
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
    crate::wasi::mark_wasi_entrypoint(store, &mut config, b.progress.quiet());
    let image = store.commit_image(&config, &state.layers, &opts.tags)?;
    Ok(image)
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
    /// A FROM or `--from` image: from the store, or pulled when missing (or with `--pull`).
    fn base_image(&self, name: &str) -> Result<Image, String> {
        match (&self.opts.pull, self.store.find_image(name)) {
            (Some(pull), _) if self.opts.pull_always => (pull.0)(name),
            (Some(pull), Err(ImageError::NotFound(_))) => (pull.0)(name),
            (_, found) => found.map_err(|e| e.to_string()),
        }
    }

    fn step_err(&self, instr: &Instruction, message: impl std::fmt::Display) -> BuildError {
        BuildError::Step {
            file: self.opts.dockerfile_name.clone(),
            line: instr.line,
            instruction: short(&instr.original),
            message: message.to_string(),
        }
    }

    fn stage(
        &self,
        plan: &Plan<'_>,
        index: usize,
        done: &[Option<StageState>],
    ) -> Result<StageState, BuildError> {
        let result = self.stage_steps(plan, index, done);
        if result.is_err() {
            self.failed.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        result
    }

    fn stage_steps(
        &self,
        plan: &Plan<'_>,
        index: usize,
        done: &[Option<StageState>],
    ) -> Result<StageState, BuildError> {
        let label = self.progress.step(&plan.stages[index].from.original);
        let begun = self.stage_base(plan, index, done);
        self.progress.end(&label, begun.is_ok());
        let (mut state, instructions) = begun?;
        for instr in &instructions {
            self.instruction(plan, index, done, &mut state, instr)?;
        }
        let key = state.key.clone();
        self.settle_edits(&mut state, &key);
        Ok(state)
    }

    /// The FROM step: the stage's starting state, and its instructions (the base image's
    /// ONBUILD triggers first).
    fn stage_base(
        &self,
        plan: &Plan<'_>,
        index: usize,
        done: &[Option<StageState>],
    ) -> Result<(StageState, Vec<Instruction>), BuildError> {
        let stage = &plan.stages[index];
        let from = stage.from;
        let none = BTreeMap::new();
        let expand = |word: &str| {
            let vars = self.budget.meter(&plan.global_args, &none);
            let expanded = dockerfile::expand_word(word, &vars, self.escape);
            vars.charge().map_err(|e| self.step_err(from, e))?;
            expanded.map_err(|e| self.step_err(from, e))
        };
        let base = expand(stage.image)?;
        let mut platform = self.opts.platform.clone();
        if let Some(p) = stage.platform {
            let p = expand(p)?;
            if !p.is_empty() {
                platform = Some(parse_build_platform(&p).map_err(|e| self.step_err(from, e))?);
            }
        }
        let mut state = if base.eq_ignore_ascii_case("scratch") {
            let (os, arch) = platform.unwrap_or_else(|| {
                let (os, arch) = host_platform();
                (os.into(), arch.into())
            });
            let config = ImageConfig {
                os,
                architecture: arch,
                ..ImageConfig::default()
            };
            StageState::new(config, Vec::new(), Key::base("scratch"))
        } else if let Some(dep) = plan.names.index(&base, index) {
            let s = done[dep].clone().expect("stages are built in order");
            StageState {
                args: BTreeMap::new(),
                cmd_set: false,
                ..s
            }
        } else {
            // The store's error already says what to do.
            let image = self.base_image(&base).map_err(|e| self.step_err(from, e))?;
            let layers = image.layers()?;
            for l in &layers {
                self.store.ensure_snapshot(l)?;
            }
            StageState::new(
                image.config.clone(),
                layers,
                Key::base(&image.id.to_string()),
            )
        };
        // Triggers run first, as instructions of this stage; the result does not inherit them.
        let triggers: Vec<String> = state
            .config
            .config
            .as_mut()
            .and_then(|c| c.on_build.take())
            .unwrap_or_default();
        let mut instructions: Vec<Instruction> = Vec::new();
        for t in &triggers {
            let parsed = dockerfile::parse(&format!("FROM scratch\n{t}")).map_err(|e| {
                self.step_err(
                    from,
                    format!("ONBUILD trigger {t:?} of {base}: {}", e.message),
                )
            })?;
            for mut i in parsed.instructions.into_iter().skip(1) {
                i.line = from.line;
                instructions.push(i);
            }
        }
        instructions.extend(stage.instructions.iter().cloned());
        Ok((state, instructions))
    }

    /// One step of a stage.
    fn instruction(
        &self,
        plan: &Plan<'_>,
        index: usize,
        done: &[Option<StageState>],
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
        let result = match self.execute(plan, index, done, state, instr, &label) {
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

    /// What instruction `instr` does, as step `label`.
    fn execute(
        &self,
        plan: &Plan<'_>,
        index: usize,
        done: &[Option<StageState>],
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
                // The key takes what this ARG sets (not every arg in scope, which made a
                // Dockerfile of many ARG lines quadratic): the stage's args start empty, so
                // the chain of changes still tells them all.
                let mut changes = vec!["ARG"];
                for d in decls {
                    let value = if let Some(v) = self.opts.build_args.get(&d.name) {
                        Some(v.clone())
                    } else if let Some(def) = &d.default {
                        Some(def.clone())
                    } else {
                        plan.global_args.get(&d.name).cloned()
                    };
                    if let Some(v) = value {
                        state.args.insert(d.name.clone(), v);
                    } else if plan.global_declared.contains(&d.name) {
                        state.args.remove(&d.name);
                    }
                }
                for d in decls {
                    // A name never is `=`, so the parts read back one way only.
                    changes.push(&d.name);
                    match state.args.get(&d.name) {
                        Some(v) => changes.extend(["=", v.as_str()]),
                        None => changes.push("unset"),
                    }
                }
                state.key = state.key.then(&changes);
                Ok(())
            }
            InstructionKind::Run {
                command,
                heredocs,
                network,
                mounts,
                ..
            } => {
                let mounts = self.mounts(plan, index, done, instr, mounts);
                let result = match &mounts {
                    Ok(m) => self.run(state, instr, label, command, heredocs, *network, m),
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
            InstructionKind::Copy(spec) | InstructionKind::Add(spec) => {
                let is_add = matches!(expanded.kind, InstructionKind::Add(_));
                let stage_fs = state.fs(self.store);
                let from_fs;
                let (source, from_key) = match &spec.from {
                    None => (Source::Context(&self.opts.context), String::from("context")),
                    Some(f) => {
                        let (fs, key) = self.source_fs(plan, index, done, instr, f)?;
                        from_fs = fs;
                        (Source::Stage(&from_fs), key)
                    }
                };
                let urls: Vec<String> = spec
                    .sources
                    .iter()
                    .filter_map(|s| match s {
                        dockerfile::CopySource::Path(p) if crate::remote::is_url(p) => {
                            Some(p.clone())
                        }
                        _ => None,
                    })
                    .collect();
                if spec.keep_git_dir {
                    return Err(self.step_err(
                        instr,
                        "--keep-git-dir applies to git sources, which are not supported yet",
                    ));
                }
                if !urls.is_empty() && !is_add {
                    return Err(self.step_err(
                        instr,
                        format!("{}: COPY does not download URLs; use ADD", urls[0]),
                    ));
                }
                let checksum = match &spec.checksum {
                    None => None,
                    Some(c) => {
                        if urls.len() != 1 || spec.sources.len() != 1 {
                            return Err(self
                                .step_err(instr, "--checksum applies to a single http(s) source"));
                        }
                        Some(
                            crate::remote::parse_checksum(c)
                                .map_err(|e| self.step_err(instr, e))?,
                        )
                    }
                };
                let tmp = self.store.temp_path("copy");
                let downloads_dir = self.store.temp_path("download");
                // `--link`: the files go into an empty folder that reads nothing of the stage
                // below, so the layer is the same whatever comes before it.
                let nothing_below = LayeredFs::default();
                let dest_fs = if spec.link { &nothing_below } else { &stage_fs };
                let parent_key = state.key.clone();
                let result = (|| {
                    std::fs::create_dir(&tmp).map_err(|e| {
                        self.step_err(instr, format!("creating {}: {e}", tmp.display()))
                    })?;
                    if !urls.is_empty() {
                        std::fs::create_dir(&downloads_dir).map_err(|e| {
                            self.step_err(
                                instr,
                                format!("creating {}: {e}", downloads_dir.display()),
                            )
                        })?;
                    }
                    let mut job = CopyJob::new(source, dest_fs, &tmp);
                    job.unpack = is_add && spec.unpack != Some(false);
                    // Downloaded archives stay archives unless --unpack=true, as Docker's.
                    job.unpack_remote = is_add && spec.unpack == Some(true);
                    job.parents = spec.parents;
                    job.link = spec.link;
                    if !spec.exclude.is_empty() {
                        job.exclude = crate::context::IgnoreRules::parse(
                            &spec.exclude.join("\n"),
                            "--exclude",
                        )
                        .map_err(|e| self.step_err(instr, e))?;
                    }
                    if let Some(c) = &spec.chown {
                        job.owner =
                            Some(resolve_owner(c, &stage_fs).map_err(|e| self.step_err(instr, e))?);
                    }
                    if let Some(m) = &spec.chmod {
                        job.chmod = Some(parse_chmod(m).map_err(|e| self.step_err(instr, e))?);
                    }
                    // A URL without --checksum is fetched now: its content keys the cache, as
                    // BuildKit's. With --checksum the checksum alone does, and the download
                    // waits until the cache misses (a cached build needs no network).
                    let mut remote_key = String::new();
                    if checksum.is_none() {
                        for (n, url) in urls.iter().enumerate() {
                            let d = crate::remote::download(url, &downloads_dir, n, None)
                                .map_err(|e| self.step_err(instr, e))?;
                            remote_key.push_str(&format!("{url} sha256:{}\n", d.sha256));
                            job.remote.insert(url.clone(), d);
                        }
                    }
                    let workdir = workdir(&state.config);
                    let dest = if spec.dest.starts_with('/') {
                        spec.dest.clone()
                    } else {
                        let mut d = format!("{}/{}", workdir.trim_end_matches('/'), spec.dest);
                        if spec.dest == "." || spec.dest == "./" {
                            d.push('/');
                        }
                        d
                    };
                    let unpack_remote = job.unpack_remote;
                    let owner = job.owner;
                    let chmod = job.chmod;
                    let exclude = job.exclude.clone();
                    job.run(&spec.sources, &dest)
                        .map_err(|e| self.step_err(instr, e))?;
                    let content = hash_tree(&tmp).map_err(|e| {
                        self.step_err(instr, format!("reading the copied files: {e}"))
                    })?;
                    let text = format!("{:?}", expanded.kind);
                    let key = if spec.link {
                        // Not chained to the parent: the instruction after substitution (so
                        // the args it uses), where it lands, and what it wrote (every
                        // source's content and metadata, and any --chown resolved).
                        Key::base("link").then(&["COPY", &text, &dest, &content, &remote_key])
                    } else {
                        let mut parts = vec!["COPY", &text, &from_key, &content];
                        if !remote_key.is_empty() {
                            parts.push(&remote_key);
                        }
                        state.key.then(&parts)
                    };
                    if let Some(expected) = &checksum {
                        if let Some(entry) = self.cached(&key, label) {
                            self.apply_entry(state, instr, key, entry);
                            return Ok(());
                        }
                        let url = &urls[0];
                        let d = crate::remote::download(url, &downloads_dir, 0, Some(expected))
                            .map_err(|e| self.step_err(instr, e))?;
                        // Written again, now with the download.
                        berth_runtime::store::remove_tree(&tmp).map_err(|e| {
                            self.step_err(instr, format!("removing {}: {e}", tmp.display()))
                        })?;
                        std::fs::create_dir(&tmp).map_err(|e| {
                            self.step_err(instr, format!("creating {}: {e}", tmp.display()))
                        })?;
                        let mut job = CopyJob::new(source, dest_fs, &tmp);
                        job.unpack = is_add && spec.unpack != Some(false);
                        job.unpack_remote = unpack_remote;
                        job.parents = spec.parents;
                        job.link = spec.link;
                        job.owner = owner;
                        job.chmod = chmod;
                        job.exclude = exclude;
                        job.remote.insert(url.clone(), d);
                        job.run(&spec.sources, &dest)
                            .map_err(|e| self.step_err(instr, e))?;
                    }
                    self.layer_step(state, instr, label, key, &tmp)
                })();
                for dir in [&tmp, &downloads_dir] {
                    if dir.exists() {
                        let _ = berth_runtime::store::remove_tree(dir);
                    }
                }
                if result.is_ok() && spec.link {
                    // The layer is the parent's business no more, but the steps after it
                    // still build on both.
                    state.key = parent_key.then(&["LINK", state.key.as_str()]);
                }
                result
            }
            InstructionKind::Workdir(_) => {
                let before = state.key.clone();
                self.edit(state, instr, &expanded)?;
                let dir = workdir(&state.config);
                let rel = dir.trim_start_matches('/').to_string();
                let stage_fs = state.fs(self.store);
                if rel.is_empty() || stage_fs.metadata(&rel).is_some_and(|m| m.is_dir()) {
                    return Ok(());
                }
                let tmp = self.store.temp_path("workdir");
                let result = (|| {
                    std::fs::create_dir(&tmp).map_err(|e| self.step_err(instr, e))?;
                    CopyJob::new(Source::Stage(&stage_fs), &stage_fs, &tmp)
                        .make_dir(&dir)
                        .map_err(|e| self.step_err(instr, e))?;
                    // The step makes a layer after all: its history entry says so, and the
                    // metadata steps before it are a finished run.
                    state.config.history.pop();
                    state.unsettled.pop();
                    self.settle_edits(state, &before);
                    let key = state.key.then(&["WORKDIR-LAYER", &dir]);
                    self.layer_step(state, instr, label, key, &tmp)
                })();
                if tmp.exists() {
                    let _ = berth_runtime::store::remove_tree(&tmp);
                }
                result
            }
            InstructionKind::From { .. } => unreachable!("FROM starts a stage"),
            _ => self.edit(state, instr, &expanded),
        }
    }

    /// The filesystem `--from=NAME` names: an earlier stage (by name or index) or an image,
    /// and a cache key part for it.
    fn source_fs(
        &self,
        plan: &Plan<'_>,
        index: usize,
        done: &[Option<StageState>],
        instr: &Instruction,
        name: &str,
    ) -> Result<(LayeredFs, String), BuildError> {
        if let Some(dep) = plan.names.index(name, index) {
            let s = done[dep].as_ref().expect("dependencies are built first");
            return Ok((s.fs(self.store), format!("stage {}", s.key.as_str())));
        }
        let image = self
            .base_image(name)
            .map_err(|e| self.step_err(instr, format!("--from={name}: {e}")))?;
        let layers = image.layers()?;
        for l in &layers {
            self.store.ensure_snapshot(l)?;
        }
        let fs = LayeredFs::new(
            layers
                .iter()
                .map(|l| self.store.snapshot_path(&l.diff_id))
                .collect(),
        );
        Ok((fs, format!("image {}", image.id)))
    }

    /// The mounts of a RUN: cache folders kept under the berth root, binds of a copy of a
    /// context, stage or image path (so `.dockerignore` holds and writes are discarded), tmpfs,
    /// and `--secret` files.
    fn mounts(
        &self,
        plan: &Plan<'_>,
        index: usize,
        done: &[Option<StageState>],
        instr: &Instruction,
        mounts: &[dockerfile::Mount],
    ) -> Result<RunMounts, BuildError> {
        let mut out = RunMounts::default();
        for m in mounts {
            let target = m.target.clone().filter(|t| !t.is_empty());
            let need_target = |kind: &str| {
                target.clone().ok_or_else(|| {
                    self.step_err(instr, format!("--mount=type={kind} needs target=PATH"))
                })
            };
            let spec = match m.kind {
                dockerfile::MountKind::Cache => {
                    let target = need_target("cache")?;
                    let id = m.id.clone().unwrap_or_else(|| target.clone());
                    let dir = self
                        .store
                        .root()
                        .join("build-cache-mounts")
                        .join(crate::cache::Key::base(&id).as_str());
                    std::fs::create_dir_all(&dir).map_err(|e| {
                        self.step_err(instr, format!("creating {}: {e}", dir.display()))
                    })?;
                    out.key.push_str(&format!("cache {id} {target}\n"));
                    MountSpec {
                        kind: WorkloadMountKind::Bind,
                        source: dir,
                        destination: target,
                        read_only: false,
                        volume: None,
                        populate: false,
                    }
                }
                dockerfile::MountKind::Bind => {
                    let target = need_target("bind")?;
                    let source = m.source.clone().unwrap_or_default();
                    let rel = crate::context::clean_relative(&source);
                    let from_fs;
                    let (src, from_key) = match &m.from {
                        None => (Source::Context(&self.opts.context), "context".to_string()),
                        Some(f) => {
                            let (fs, key) = self.source_fs(plan, index, done, instr, f)?;
                            from_fs = fs;
                            (Source::Stage(&from_fs), key)
                        }
                    };
                    let is_dir = match src {
                        Source::Context(c) => c.root.join(&rel).is_dir(),
                        Source::Stage(fs) => fs.metadata(&rel).is_some_and(|m| m.is_dir()),
                    };
                    let tmp = self.store.temp_path("mount");
                    std::fs::create_dir(&tmp).map_err(|e| {
                        self.step_err(instr, format!("creating {}: {e}", tmp.display()))
                    })?;
                    out.temps.push(tmp.clone());
                    let empty = LayeredFs::default();
                    CopyJob::new(src, &empty, &tmp)
                        .run(&[dockerfile::CopySource::Path(source.clone())], "/")
                        .map_err(|e| self.step_err(instr, format!("--mount source: {e}")))?;
                    let content = hash_tree(&tmp).map_err(|e| {
                        self.step_err(instr, format!("reading the mount source: {e}"))
                    })?;
                    out.key.push_str(&format!(
                        "bind {from_key} {rel} {target} {} {content}\n",
                        m.readonly
                    ));
                    let host = if is_dir {
                        tmp
                    } else {
                        tmp.join(rel.rsplit('/').next().unwrap_or(&rel))
                    };
                    MountSpec {
                        kind: WorkloadMountKind::Bind,
                        source: host,
                        destination: target,
                        read_only: m.readonly,
                        volume: None,
                        populate: false,
                    }
                }
                dockerfile::MountKind::Tmpfs => {
                    let target = need_target("tmpfs")?;
                    out.key.push_str(&format!("tmpfs {target}\n"));
                    MountSpec {
                        kind: WorkloadMountKind::Tmpfs,
                        source: std::path::PathBuf::new(),
                        destination: target,
                        read_only: false,
                        volume: None,
                        populate: false,
                    }
                }
                dockerfile::MountKind::Secret => {
                    let id = m
                        .id
                        .clone()
                        .or_else(|| {
                            target
                                .as_deref()
                                .and_then(|t| t.rsplit('/').next())
                                .map(str::to_string)
                        })
                        .ok_or_else(|| self.step_err(instr, "--mount=type=secret needs id=ID"))?;
                    let Some(src) = self.opts.secrets.get(&id) else {
                        if m.required {
                            return Err(self.step_err(
                                instr,
                                format!(
                                    "secret {id:?} is required: pass it with --secret id={id},src=PATH"
                                ),
                            ));
                        }
                        continue;
                    };
                    // Secrets never enter the cache key: changing one does not re-run steps,
                    // as BuildKit's.
                    out.key.push_str(&format!("secret {id}\n"));
                    if let Some(var) = &m.env {
                        let value = std::fs::read_to_string(src).map_err(|e| {
                            self.step_err(instr, format!("reading secret {id:?}: {e}"))
                        })?;
                        out.env
                            .push(format!("{var}={}", value.trim_end_matches('\n')));
                        if target.is_none() {
                            continue;
                        }
                    }
                    MountSpec {
                        kind: WorkloadMountKind::Bind,
                        source: src.clone(),
                        destination: target.unwrap_or_else(|| format!("/run/secrets/{id}")),
                        read_only: true,
                        volume: None,
                        populate: false,
                    }
                }
                dockerfile::MountKind::Ssh => {
                    return Err(self.step_err(instr, "--mount=type=ssh is not supported yet"));
                }
            };
            out.specs.push(spec);
        }
        Ok(out)
    }

    /// A metadata instruction (`expanded` is `instr` with its variables substituted): the
    /// config changes, a history entry records it. Its time comes when the run of metadata
    /// steps it belongs to ends ([`Builder::settle_edits`]).
    fn edit(
        &self,
        state: &mut StageState,
        instr: &Instruction,
        expanded: &Instruction,
    ) -> Result<(), BuildError> {
        let saved_cmd = match instr.kind {
            InstructionKind::Entrypoint(_) if state.cmd_set => {
                state.config.config.as_ref().and_then(|c| c.cmd.clone())
            }
            _ => None,
        };
        ConfigEditor::new(&mut state.config)
            .apply_expanded(expanded, &mut state.env)
            .map_err(|e| self.step_err(instr, e))?;
        match instr.kind {
            InstructionKind::Cmd(_) => state.cmd_set = true,
            // The editor is fresh per instruction, so it takes any CMD as inherited; one set
            // earlier in this stage survives ENTRYPOINT.
            InstructionKind::Entrypoint(_) if state.cmd_set => {
                state.config.run_config_mut().cmd = saved_cmd;
            }
            _ => {}
        }
        // Spelled as the keys of earlier berth versions, so their cache entries still serve.
        let text = format!("{:?}", Ok::<_, ()>(&expanded.kind));
        state.key = state.key.then(&["EDIT", &text]);
        state.unsettled.push(state.config.history.len());
        state.config.history.push(History {
            created: None,
            created_by: Some(instr.original.clone()),
            comment: Some("berth build".into()),
            empty_layer: true,
            ..History::default()
        });
        Ok(())
    }

    /// Ends a run of metadata steps at cache key `key`: their history entries take the time
    /// the cache holds for `key`, or now (recorded there). One entry for the run, not one per
    /// step: a Dockerfile of thousands of LABEL lines wrote thousands of files. Cached only
    /// for the time, so a rebuild with nothing changed gives the very same image id.
    fn settle_edits(&self, state: &mut StageState, key: &Key) {
        if state.unsettled.is_empty() {
            return;
        }
        let cached = (!self.opts.no_cache)
            .then(|| self.cache.get(self.store, key))
            .flatten();
        let created = match cached {
            Some(e) => e.created,
            None => {
                let entry = Entry {
                    layer: None,
                    created: now(),
                };
                self.cache.put(self.store, key, &entry);
                entry.created
            }
        };
        for i in state.unsettled.drain(..) {
            state.config.history[i].created = Some(created.clone());
        }
    }

    /// Makes the folder `tmp` the step's layer (or reuses the cached one for `key`).
    fn layer_step(
        &self,
        state: &mut StageState,
        instr: &Instruction,
        label: &str,
        key: Key,
        tmp: &std::path::Path,
    ) -> Result<(), BuildError> {
        if let Some(entry) = self.cached(&key, label) {
            self.apply_entry(state, instr, key, entry);
            return Ok(());
        }
        self.commit_step(state, instr, key, tmp)
    }

    /// The cache's entry for step `label`'s `key`, unless `--no-cache`.
    fn cached(&self, key: &Key, label: &str) -> Option<Entry> {
        if self.opts.no_cache {
            return None;
        }
        let entry = self.cache.get(self.store, key)?;
        self.progress.cached(label);
        Some(entry)
    }

    /// Makes the folder a step wrote into its layer, records it in the cache under `key`, and
    /// adds it to the stage.
    fn commit_step(
        &self,
        state: &mut StageState,
        instr: &Instruction,
        key: Key,
        dir: &std::path::Path,
    ) -> Result<(), BuildError> {
        let layer = self.commit_dir(dir)?;
        let entry = Entry {
            layer: Some(CachedLayer::from(&layer)),
            created: now(),
        };
        self.cache.put(self.store, &key, &entry);
        self.apply_entry(state, instr, key, entry);
        Ok(())
    }

    fn apply_entry(&self, state: &mut StageState, instr: &Instruction, key: Key, entry: Entry) {
        let empty = entry.layer.is_none();
        if let Some(l) = entry.layer {
            state.layers.push(l.to_layer());
        }
        state.config.history.push(History {
            created: Some(entry.created),
            created_by: Some(instr.with_heredocs()),
            comment: Some("berth build".into()),
            empty_layer: empty,
            ..History::default()
        });
        state.key = key;
    }

    /// Writes `dir` as a layer and moves it into place as that layer's snapshot.
    fn commit_dir(&self, dir: &std::path::Path) -> Result<LayerRef, BuildError> {
        let clamp = std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|s| s.trim().parse().ok());
        let opts = CreateOptions {
            overlay_whiteouts: true,
            clamp_mtime: clamp,
        };
        let layer = self.store.write_layer(dir, &opts, Compression::Gzip)?;
        if self.store.snapshot_path(&layer.diff_id).is_dir() {
            let _ = berth_runtime::store::remove_tree(dir);
        } else {
            self.store.install_snapshot(dir, &layer.diff_id)?;
        }
        Ok(layer)
    }

    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        state: &mut StageState,
        instr: &Instruction,
        label: &str,
        command: &Command,
        heredocs: &[dockerfile::Heredoc],
        network: Option<dockerfile::NetworkMode>,
        mounts: &RunMounts,
    ) -> Result<(), BuildError> {
        let rc = state.config.config.clone().unwrap_or_default();
        let shell = rc
            .shell
            .clone()
            .unwrap_or_else(|| DEFAULT_SHELL.iter().map(|s| s.to_string()).collect());
        let argv: Vec<String> = match command {
            Command::Exec(v) => v.clone(),
            Command::Shell(text) => {
                let mut script = text.clone();
                if heredocs.len() == 1
                    && text.trim().starts_with("<<")
                    && !text.trim().contains(' ')
                {
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
        };
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
        let net = match network {
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
        let id = new_id();
        let c = Container {
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
            state: RunState::default(),
        };
        let mut c = c;
        c.spec.backend = self.step_backend(state, &c.spec);
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
    /// WebAssembly programs; elsewhere the program's bytes in the stage's layers decide.
    fn step_backend(&self, state: &StageState, spec: &WorkloadSpec) -> Backend {
        let top_first: Vec<std::path::PathBuf> = state
            .layers
            .iter()
            .rev()
            .map(|l| self.store.snapshot_path(&l.diff_id))
            .collect();
        let header = backend::program_header(&top_first, spec);
        let evidence = backend::Evidence {
            forced: None,
            program_header: header.as_deref(),
        };
        backend::decide("", &ImageHints::of_config(&state.config), evidence)
            .unwrap_or(Backend::Native)
    }

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

/// A RUN's mounts, what its cache key says about them, and the copies to remove after it.
#[derive(Debug, Default)]
struct RunMounts {
    specs: Vec<MountSpec>,
    key: String,
    env: Vec<String>,
    temps: Vec<std::path::PathBuf>,
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
