//! Steps that change the stage's config or scope, not its files: ARG, and the config edits
//! (ENV, LABEL, USER, CMD, ENTRYPOINT, ...) through [`ConfigEditor`]. WORKDIR is one too, but
//! makes a layer when its folder does not exist yet.

use berth_runtime::image::config::History;

use super::{BuildError, Builder, StageState, workdir};
use crate::config_edit::ConfigEditor;
use crate::copy::{CopyJob, Source};
use crate::dockerfile::{ArgDecl, Instruction, InstructionKind};
use crate::plan::Plan;

impl Builder<'_> {
    /// ARG `decls`: each takes its `--build-arg` value, else its default, else the global
    /// one; a declared global without a value is unset in the stage.
    pub(super) fn arg(&self, plan: &Plan<'_>, state: &mut StageState, decls: &[ArgDecl]) {
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
    }

    /// A metadata instruction (`expanded` is `instr` with its variables substituted): the
    /// config changes, a history entry records it. Its time comes when the run of metadata
    /// steps it belongs to ends ([`Builder::settle_edits`]).
    pub(super) fn edit(
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

    /// WORKDIR (`expanded` is `instr` after substitution): a config edit, and a layer making
    /// the folder when the stage does not have it yet.
    pub(super) fn workdir_step(
        &self,
        state: &mut StageState,
        instr: &Instruction,
        expanded: &Instruction,
        label: &str,
    ) -> Result<(), BuildError> {
        let before = state.key.clone();
        self.edit(state, instr, expanded)?;
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
}
