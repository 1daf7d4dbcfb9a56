//! RUN `--mount`s: cache folders kept under the berth root, binds of a copy of a context,
//! stage or image path (so `.dockerignore` holds and writes are discarded), tmpfs, and
//! `--secret` files.

use berth_runtime::workload::{MountKind as WorkloadMountKind, MountSpec};

use super::{BuildError, Builder, Stages};
use crate::cache::hash_tree;
use crate::copy::{CopyJob, Source};
use crate::dockerfile::{self, Instruction, Mount, MountKind};
use crate::layered::LayeredFs;

/// A RUN's mounts, what its cache key says about them, and the copies to remove after it.
#[derive(Debug, Default)]
pub(super) struct RunMounts {
    pub(super) specs: Vec<MountSpec>,
    pub(super) key: String,
    pub(super) env: Vec<String>,
    pub(super) temps: Vec<std::path::PathBuf>,
}

/// A mount of `source` at `destination`.
fn bind(source: std::path::PathBuf, destination: String, read_only: bool) -> MountSpec {
    MountSpec {
        kind: WorkloadMountKind::Bind,
        source,
        destination,
        read_only,
        volume: None,
        populate: false,
    }
}

impl Builder<'_> {
    /// The mounts of a RUN, in order.
    pub(super) fn mounts(
        &self,
        stages: &Stages<'_, '_>,
        instr: &Instruction,
        mounts: &[Mount],
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
                MountKind::Cache => self.cache_mount(instr, m, need_target("cache")?, &mut out)?,
                MountKind::Bind => {
                    self.bind_mount(stages, instr, m, need_target("bind")?, &mut out)?
                }
                MountKind::Tmpfs => {
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
                MountKind::Secret => match self.secret_mount(instr, m, target, &mut out)? {
                    Some(spec) => spec,
                    None => continue,
                },
                MountKind::Ssh => {
                    return Err(self.step_err(instr, "--mount=type=ssh is not supported yet"));
                }
            };
            out.specs.push(spec);
        }
        Ok(out)
    }

    /// `type=cache`: a folder under the berth root, by `id` (the target without one), kept
    /// from build to build.
    fn cache_mount(
        &self,
        instr: &Instruction,
        m: &Mount,
        target: String,
        out: &mut RunMounts,
    ) -> Result<MountSpec, BuildError> {
        let id = m.id.clone().unwrap_or_else(|| target.clone());
        let dir = self
            .store
            .root()
            .join("build-cache-mounts")
            .join(crate::cache::Key::base(&id).as_str());
        std::fs::create_dir_all(&dir)
            .map_err(|e| self.step_err(instr, format!("creating {}: {e}", dir.display())))?;
        out.key.push_str(&format!("cache {id} {target}\n"));
        Ok(bind(dir, target, false))
    }

    /// `type=bind`: a copy of the source path (from the context, a stage or an image), so
    /// `.dockerignore` holds and what the step writes there is discarded; its content keys
    /// the step.
    fn bind_mount(
        &self,
        stages: &Stages<'_, '_>,
        instr: &Instruction,
        m: &Mount,
        target: String,
        out: &mut RunMounts,
    ) -> Result<MountSpec, BuildError> {
        let source = m.source.clone().unwrap_or_default();
        let rel = crate::context::clean_relative(&source);
        let from_fs;
        let (src, from_key) = match &m.from {
            None => (Source::Context(&self.opts.context), "context".to_string()),
            Some(f) => {
                let (fs, key) = self.source_fs(stages, instr, f)?;
                from_fs = fs;
                (Source::Stage(&from_fs), key)
            }
        };
        let is_dir = match src {
            Source::Context(c) => c.root.join(&rel).is_dir(),
            Source::Stage(fs) => fs.metadata(&rel).is_some_and(|m| m.is_dir()),
        };
        let tmp = self.store.temp_path("mount");
        std::fs::create_dir(&tmp)
            .map_err(|e| self.step_err(instr, format!("creating {}: {e}", tmp.display())))?;
        out.temps.push(tmp.clone());
        let empty = LayeredFs::default();
        CopyJob::new(src, &empty, &tmp)
            .run(&[dockerfile::CopySource::Path(source.clone())], "/")
            .map_err(|e| self.step_err(instr, format!("--mount source: {e}")))?;
        let content = hash_tree(&tmp)
            .map_err(|e| self.step_err(instr, format!("reading the mount source: {e}")))?;
        out.key.push_str(&format!(
            "bind {from_key} {rel} {target} {} {content}\n",
            m.readonly
        ));
        let host = if is_dir {
            tmp
        } else {
            tmp.join(rel.rsplit('/').next().unwrap_or(&rel))
        };
        Ok(bind(host, target, m.readonly))
    }

    /// `type=secret`: a `--secret` file, mounted read-only and/or given as a variable; `None`
    /// when nothing is mounted (an optional secret not given, or one only in a variable).
    fn secret_mount(
        &self,
        instr: &Instruction,
        m: &Mount,
        target: Option<String>,
        out: &mut RunMounts,
    ) -> Result<Option<MountSpec>, BuildError> {
        let id =
            m.id.clone()
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
                    format!("secret {id:?} is required: pass it with --secret id={id},src=PATH"),
                ));
            }
            return Ok(None);
        };
        // Secrets never enter the cache key: changing one does not re-run steps,
        // as BuildKit's.
        out.key.push_str(&format!("secret {id}\n"));
        if let Some(var) = &m.env {
            let value = std::fs::read_to_string(src)
                .map_err(|e| self.step_err(instr, format!("reading secret {id:?}: {e}")))?;
            out.env
                .push(format!("{var}={}", value.trim_end_matches('\n')));
            if target.is_none() {
                return Ok(None);
            }
        }
        let destination = target.unwrap_or_else(|| format!("/run/secrets/{id}"));
        Ok(Some(bind(src.clone(), destination, true)))
    }
}
