//! The build plan: the stages of a Dockerfile, which of them the target needs (its base
//! chain and every `COPY --from` it reads, transitively), and the global ARGs that FROM lines
//! see.

use std::collections::{BTreeMap, BTreeSet};

use crate::dockerfile::{Dockerfile, InstructionKind, Stage, expand_word};

/// Build args that are usable without an ARG declaration, as Docker's.
pub const PREDEFINED_ARGS: [&str; 8] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// Why a plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// No FROM at all.
    #[error("the Dockerfile has no FROM instruction: start it with e.g. `FROM busybox`")]
    NoStages,
    /// `--target` names no stage.
    #[error("target stage {0:?} could not be found; the stages are: {1}")]
    NoTarget(String, String),
    /// A substitution failed.
    #[error("line {line}: {message}")]
    Expand {
        /// The Dockerfile line.
        line: usize,
        /// Why.
        message: String,
    },
}

/// What to build.
#[derive(Debug)]
pub struct Plan<'a> {
    /// The stages in order.
    pub stages: Vec<Stage<'a>>,
    /// Global ARG values (declared before the first FROM), for FROM lines and redeclarations.
    pub global_args: BTreeMap<String, String>,
    /// Names of the global ARGs (set or not).
    pub global_declared: BTreeSet<String>,
    /// The stage whose result is the image.
    pub target: usize,
    /// The stages to build, in order (the target last).
    pub needed: Vec<usize>,
    /// For each stage, the earlier stages it reads (its base and its `--from`s).
    pub deps: Vec<BTreeSet<usize>>,
}

/// Finds an earlier stage by name (case-insensitive) or index, as FROM and `--from` refer.
pub fn stage_index(stages: &[Stage<'_>], name: &str, before: usize) -> Option<usize> {
    let lower = name.to_ascii_lowercase();
    if let Some(i) = stages[..before]
        .iter()
        .position(|s| s.name == Some(lower.as_str()))
    {
        return Some(i);
    }
    name.parse::<usize>().ok().filter(|i| *i < before)
}

impl<'a> Plan<'a> {
    /// The needed stages in waves: each wave's stages depend only on earlier waves, so
    /// they can build at the same time.
    pub fn waves(&self) -> Vec<Vec<usize>> {
        let mut level = vec![0usize; self.stages.len()];
        for &i in &self.needed {
            // `needed` is in source order and a stage only reads earlier ones.
            level[i] = self.deps[i]
                .iter()
                .map(|&d| level[d] + 1)
                .max()
                .unwrap_or(0);
        }
        let mut waves: Vec<Vec<usize>> = Vec::new();
        for &i in &self.needed {
            if waves.len() <= level[i] {
                waves.resize(level[i] + 1, Vec::new());
            }
            waves[level[i]].push(i);
        }
        waves
    }

    /// Plans the build of `target` (the last stage if `None`) with `build_args`.
    pub fn new(
        file: &'a Dockerfile,
        target: Option<&str>,
        build_args: &BTreeMap<String, String>,
        escape: char,
    ) -> Result<Plan<'a>, PlanError> {
        let (globals, stages) = file.stages();
        if stages.is_empty() {
            return Err(PlanError::NoStages);
        }
        let mut global_args = BTreeMap::new();
        let mut global_declared = BTreeSet::new();
        for instr in globals {
            if let InstructionKind::Arg(decls) = &instr.kind {
                for d in decls {
                    global_declared.insert(d.name.clone());
                    let value = match (build_args.get(&d.name), &d.default) {
                        (Some(v), _) => Some(v.clone()),
                        (None, Some(def)) => {
                            Some(expand_word(def, &global_args, escape).map_err(|e| {
                                PlanError::Expand {
                                    line: instr.line,
                                    message: e.to_string(),
                                }
                            })?)
                        }
                        (None, None) => None,
                    };
                    if let Some(v) = value {
                        global_args.insert(d.name.clone(), v);
                    }
                }
            }
        }
        let target = match target {
            None => stages.len() - 1,
            Some(t) => stage_index(&stages, t, stages.len())
                .filter(|_| t.parse::<usize>().is_err())
                .ok_or_else(|| {
                    let names: Vec<String> = stages
                        .iter()
                        .enumerate()
                        .map(|(i, s)| s.name.map_or_else(|| i.to_string(), str::to_string))
                        .collect();
                    PlanError::NoTarget(t.to_string(), names.join(", "))
                })?,
        };
        // Walk dependencies from the target; a stage depends on its FROM and its --from's.
        let mut needed = BTreeSet::new();
        let mut deps = vec![BTreeSet::new(); stages.len()];
        let mut todo = vec![target];
        while let Some(i) = todo.pop() {
            if !needed.insert(i) {
                continue;
            }
            let before = todo.len();
            let stage = &stages[i];
            let base = expand_word(stage.image, &global_args, escape).unwrap_or_default();
            if let Some(dep) = stage_index(&stages, &base, i) {
                todo.push(dep);
            }
            for instr in stage.instructions {
                let froms: Vec<&String> = match &instr.kind {
                    InstructionKind::Copy(spec) | InstructionKind::Add(spec) => {
                        spec.from.iter().collect()
                    }
                    InstructionKind::Run { mounts, .. } => {
                        mounts.iter().filter_map(|m| m.from.as_ref()).collect()
                    }
                    _ => Vec::new(),
                };
                todo.extend(froms.into_iter().filter_map(|f| stage_index(&stages, f, i)));
            }
            deps[i].extend(todo[before..].iter().copied());
        }
        Ok(Plan {
            stages,
            global_args,
            global_declared,
            target,
            needed: needed.into_iter().collect(),
            deps,
        })
    }
}
