//! The build plan: the stages of a Dockerfile, which of them the target needs (its base
//! chain and every `COPY --from` it reads, transitively), and the global ARGs that FROM lines
//! see.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::budget::Budget;
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
    #[error("line {line}: {instruction}: {message}")]
    Expand {
        /// The Dockerfile line.
        line: usize,
        /// The instruction, shortened.
        instruction: String,
        /// Why.
        message: String,
    },
}

/// An instruction's first line, shortened for an error message.
pub fn short(text: &str) -> String {
    let first = text.lines().next().unwrap_or("");
    if first.chars().count() > 80 {
        format!("{}...", first.chars().take(77).collect::<String>())
    } else {
        first.to_string()
    }
}

/// What to build.
#[derive(Debug)]
pub struct Plan<'a> {
    /// The stages in order.
    pub stages: Vec<Stage<'a>>,
    /// Their names.
    pub names: StageNames,
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

/// Where each stage name first appears, for [`StageNames::index`].
#[derive(Debug, Default)]
pub struct StageNames(HashMap<String, usize>);

impl StageNames {
    /// The names of `stages`.
    pub fn of(stages: &[Stage<'_>]) -> StageNames {
        let mut names = HashMap::new();
        for (i, stage) in stages.iter().enumerate() {
            if let Some(name) = stage.name {
                names.entry(name.to_string()).or_insert(i);
            }
        }
        StageNames(names)
    }

    /// Finds a stage before `before` by name (case-insensitive) or index, as FROM and `--from`
    /// refer; a lookup, not a scan, so a Dockerfile of many stages stays linear.
    pub fn index(&self, name: &str, before: usize) -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        if let Some(&i) = self.0.get(&lower).filter(|&&i| i < before) {
            return Some(i);
        }
        name.parse::<usize>().ok().filter(|i| *i < before)
    }
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

    /// Plans the build of `target` (the last stage if `None`) with `build_args`; what global
    /// ARGs and FROM lines substitute is charged to `budget`.
    pub fn new(
        file: &'a Dockerfile,
        target: Option<&str>,
        build_args: &BTreeMap<String, String>,
        escape: char,
        budget: &Budget,
    ) -> Result<Plan<'a>, PlanError> {
        let none = BTreeMap::new();
        let (globals, stages) = file.stages();
        if stages.is_empty() {
            return Err(PlanError::NoStages);
        }
        let names = StageNames::of(&stages);
        let mut global_args = BTreeMap::new();
        let mut global_declared = BTreeSet::new();
        for instr in globals {
            if let InstructionKind::Arg(decls) = &instr.kind {
                for d in decls {
                    global_declared.insert(d.name.clone());
                    let value = match (build_args.get(&d.name), &d.default) {
                        (Some(v), _) => Some(v.clone()),
                        (None, Some(def)) => {
                            let err = |message: String| PlanError::Expand {
                                line: instr.line,
                                instruction: short(&instr.original),
                                message,
                            };
                            let vars = budget.meter(&global_args, &none);
                            let value = expand_word(def, &vars, escape);
                            vars.charge().map_err(err)?;
                            Some(value.map_err(|e| err(e.to_string()))?)
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
            Some(t) => names
                .index(t, stages.len())
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
            let vars = budget.meter(&global_args, &none);
            let base = expand_word(stage.image, &vars, escape).unwrap_or_default();
            vars.charge().map_err(|message| PlanError::Expand {
                line: stage.from.line,
                instruction: short(&stage.from.original),
                message,
            })?;
            if let Some(dep) = names.index(&base, i) {
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
                todo.extend(froms.into_iter().filter_map(|f| names.index(f, i)));
            }
            deps[i].extend(todo[before..].iter().copied());
        }
        Ok(Plan {
            stages,
            names,
            global_args,
            global_declared,
            target,
            needed: needed.into_iter().collect(),
            deps,
        })
    }
}
