//! Where a stage starts (FROM: `scratch`, an earlier stage, or an image from the store or a
//! registry, with the image's ONBUILD triggers) and the filesystems `--from` reads.

use std::collections::BTreeMap;

use berth_runtime::image::config::{ImageConfig, host_platform, parse_build_platform};
use berth_runtime::image::{Image, ImageError};

use super::{BuildError, Builder, StageState, Stages};
use crate::cache::Key;
use crate::dockerfile::{self, Instruction};
use crate::layered::LayeredFs;

impl Builder<'_> {
    /// A FROM or `--from` image: from the store, or pulled when missing (or with `--pull`).
    pub(super) fn base_image(&self, name: &str) -> Result<Image, String> {
        match (&self.opts.pull, self.store.find_image(name)) {
            (Some(pull), _) if self.opts.pull_always => (pull.0)(name),
            (Some(pull), Err(ImageError::NotFound(_))) => (pull.0)(name),
            (_, found) => found.map_err(|e| e.to_string()),
        }
    }

    /// The FROM step: the stage's starting state, and its instructions (the base image's
    /// ONBUILD triggers first).
    pub(super) fn stage_base(
        &self,
        stages: &Stages<'_, '_>,
    ) -> Result<(StageState, Vec<Instruction>), BuildError> {
        let plan = stages.plan;
        let stage = &plan.stages[stages.index];
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
        let mut state = self.base_state(stages, from, &base, platform)?;
        let mut instructions = self.onbuild_triggers(&mut state, from, &base)?;
        instructions.extend(stage.instructions.iter().cloned());
        Ok((state, instructions))
    }

    /// The state FROM `base` starts from: an empty `scratch` of `platform` (the host's if
    /// unset), an earlier stage's result, or an image.
    fn base_state(
        &self,
        stages: &Stages<'_, '_>,
        from: &Instruction,
        base: &str,
        platform: Option<(String, String)>,
    ) -> Result<StageState, BuildError> {
        if base.eq_ignore_ascii_case("scratch") {
            let (os, arch) = platform.unwrap_or_else(|| {
                let (os, arch) = host_platform();
                (os.into(), arch.into())
            });
            let config = ImageConfig {
                os,
                architecture: arch,
                ..ImageConfig::default()
            };
            Ok(StageState::new(config, Vec::new(), Key::base("scratch")))
        } else if let Some(dep) = stages.plan.names.index(base, stages.index) {
            let s = stages.done[dep].clone().expect("stages are built in order");
            Ok(StageState {
                args: BTreeMap::new(),
                cmd_set: false,
                ..s
            })
        } else {
            // The store's error already says what to do.
            let image = self.base_image(base).map_err(|e| self.step_err(from, e))?;
            let layers = image.layers()?;
            for l in &layers {
                self.store.ensure_snapshot(l)?;
            }
            Ok(StageState::new(
                image.config.clone(),
                layers,
                Key::base(&image.id.to_string()),
            ))
        }
    }

    /// The ONBUILD triggers of the stage's base `base`, taken out of its config, as
    /// instructions at the FROM line.
    fn onbuild_triggers(
        &self,
        state: &mut StageState,
        from: &Instruction,
        base: &str,
    ) -> Result<Vec<Instruction>, BuildError> {
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
        Ok(instructions)
    }

    /// The filesystem `--from=NAME` names: an earlier stage (by name or index) or an image,
    /// and a cache key part for it.
    pub(super) fn source_fs(
        &self,
        stages: &Stages<'_, '_>,
        instr: &Instruction,
        name: &str,
    ) -> Result<(LayeredFs, String), BuildError> {
        if let Some(dep) = stages.plan.names.index(name, stages.index) {
            let s = stages.done[dep]
                .as_ref()
                .expect("dependencies are built first");
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
}
