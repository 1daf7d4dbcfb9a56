//! COPY and ADD steps: what they read (the context, a stage or an image, and for ADD http(s)
//! URLs), where the files land, and the cache key of what they wrote. The files themselves
//! are written by [`CopyJob`].

use std::path::Path;

use super::{BuildError, Builder, StageState, Stages, workdir};
use crate::cache::{Key, hash_tree};
use crate::context::IgnoreRules;
use crate::copy::{CopyJob, Source, parse_chmod, resolve_owner};
use crate::dockerfile::{self, CopySpec, Instruction, InstructionKind};
use crate::layered::LayeredFs;

/// A COPY or ADD step being written.
struct CopyStep<'a> {
    /// The instruction as written.
    instr: &'a Instruction,
    /// The instruction after substitution.
    expanded: &'a Instruction,
    /// Its flags and sources.
    spec: &'a CopySpec,
    /// ADD rather than COPY.
    is_add: bool,
    /// Where the sources come from.
    source: Source<'a>,
    /// The cache key part naming the source.
    from_key: String,
    /// The stage being built.
    stage_fs: &'a LayeredFs,
    /// What the files land on: the stage, or nothing with `--link`.
    dest_fs: &'a LayeredFs,
    /// The http(s) sources (ADD only).
    urls: Vec<String>,
    /// `--checksum`, parsed.
    checksum: Option<String>,
    /// The fresh folder that becomes the layer.
    tmp: &'a Path,
    /// Where URLs download to.
    downloads_dir: &'a Path,
}

/// `--exclude`, `--chown` and `--chmod`, resolved.
struct CopyFlags {
    owner: Option<(u32, u32)>,
    chmod: Option<u32>,
    exclude: IgnoreRules,
}

impl CopyStep<'_> {
    /// A job writing this step's files into its folder, with `flags`; no URL downloaded yet.
    fn job(&self, flags: &CopyFlags) -> CopyJob<'_> {
        let mut job = CopyJob::new(self.source, self.dest_fs, self.tmp);
        job.unpack = self.is_add && self.spec.unpack != Some(false);
        // Downloaded archives stay archives unless --unpack=true, as Docker's.
        job.unpack_remote = self.is_add && self.spec.unpack == Some(true);
        job.parents = self.spec.parents;
        job.link = self.spec.link;
        job.owner = flags.owner;
        job.chmod = flags.chmod;
        job.exclude = flags.exclude.clone();
        job
    }

    /// The absolute destination: the spec's, joined with WORKDIR when relative.
    fn dest(&self, state: &StageState) -> String {
        let spec = self.spec;
        if spec.dest.starts_with('/') {
            return spec.dest.clone();
        }
        let workdir = workdir(&state.config);
        let mut d = format!("{}/{}", workdir.trim_end_matches('/'), spec.dest);
        if spec.dest == "." || spec.dest == "./" {
            d.push('/');
        }
        d
    }

    /// The step's cache key, given where it lands, the content it wrote and the URLs it
    /// downloaded (`remote_key`).
    fn key(&self, state: &StageState, dest: &str, content: &str, remote_key: &str) -> Key {
        let text = format!("{:?}", self.expanded.kind);
        if self.spec.link {
            // Not chained to the parent: the instruction after substitution (so
            // the args it uses), where it lands, and what it wrote (every
            // source's content and metadata, and any --chown resolved).
            Key::base("link").then(&["COPY", &text, dest, content, remote_key])
        } else {
            let mut parts = vec!["COPY", &text, &self.from_key, content];
            if !remote_key.is_empty() {
                parts.push(remote_key);
            }
            state.key.then(&parts)
        }
    }
}

impl Builder<'_> {
    /// A COPY or ADD step (`expanded` is `instr` after substitution, `spec` its flags and
    /// sources), as step `label`.
    pub(super) fn copy(
        &self,
        stages: &Stages<'_, '_>,
        state: &mut StageState,
        instr: &Instruction,
        expanded: &Instruction,
        spec: &CopySpec,
        label: &str,
    ) -> Result<(), BuildError> {
        let stage_fs = state.fs(self.store);
        let from_fs;
        let (source, from_key) = match &spec.from {
            None => (Source::Context(&self.opts.context), String::from("context")),
            Some(f) => {
                let (fs, key) = self.source_fs(stages, instr, f)?;
                from_fs = fs;
                (Source::Stage(&from_fs), key)
            }
        };
        let is_add = matches!(expanded.kind, InstructionKind::Add(_));
        let (urls, checksum) = self.copy_urls(instr, spec, is_add)?;
        let tmp = self.store.temp_path("copy");
        let downloads_dir = self.store.temp_path("download");
        // `--link`: the files go into an empty folder that reads nothing of the stage
        // below, so the layer is the same whatever comes before it.
        let nothing_below = LayeredFs::default();
        let dest_fs = if spec.link { &nothing_below } else { &stage_fs };
        let parent_key = state.key.clone();
        let step = CopyStep {
            instr,
            expanded,
            spec,
            is_add,
            source,
            from_key,
            stage_fs: &stage_fs,
            dest_fs,
            urls,
            checksum,
            tmp: &tmp,
            downloads_dir: &downloads_dir,
        };
        let result = self.write_copy(&step, state, label);
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

    /// The http(s) sources of a COPY or ADD, and its `--checksum`, refusing what only ADD
    /// of a single URL takes.
    fn copy_urls(
        &self,
        instr: &Instruction,
        spec: &CopySpec,
        is_add: bool,
    ) -> Result<(Vec<String>, Option<String>), BuildError> {
        let urls: Vec<String> = spec
            .sources
            .iter()
            .filter_map(|s| match s {
                dockerfile::CopySource::Path(p) if crate::remote::is_url(p) => Some(p.clone()),
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
                    return Err(
                        self.step_err(instr, "--checksum applies to a single http(s) source")
                    );
                }
                Some(crate::remote::parse_checksum(c).map_err(|e| self.step_err(instr, e))?)
            }
        };
        Ok((urls, checksum))
    }

    /// Writes the step's files into its folder and makes them its layer (or reuses the
    /// cached one).
    fn write_copy(
        &self,
        step: &CopyStep<'_>,
        state: &mut StageState,
        label: &str,
    ) -> Result<(), BuildError> {
        let instr = step.instr;
        self.create_dir(instr, step.tmp)?;
        if !step.urls.is_empty() {
            self.create_dir(instr, step.downloads_dir)?;
        }
        let flags = self.copy_flags(step)?;
        let mut job = step.job(&flags);
        // A URL without --checksum is fetched now: its content keys the cache, as
        // BuildKit's. With --checksum the checksum alone does, and the download
        // waits until the cache misses (a cached build needs no network).
        let mut remote_key = String::new();
        if step.checksum.is_none() {
            for (n, url) in step.urls.iter().enumerate() {
                let d = crate::remote::download(url, step.downloads_dir, n, None)
                    .map_err(|e| self.step_err(instr, e))?;
                remote_key.push_str(&format!("{url} sha256:{}\n", d.sha256));
                job.remote.insert(url.clone(), d);
            }
        }
        let dest = step.dest(state);
        job.run(&step.spec.sources, &dest)
            .map_err(|e| self.step_err(instr, e))?;
        let content = hash_tree(step.tmp)
            .map_err(|e| self.step_err(instr, format!("reading the copied files: {e}")))?;
        let key = step.key(state, &dest, &content, &remote_key);
        if let Some(expected) = &step.checksum {
            if let Some(entry) = self.cached(&key, label) {
                self.apply_entry(state, instr, key, entry);
                return Ok(());
            }
            self.write_checked(step, &flags, &dest, expected)?;
        }
        self.layer_step(state, instr, label, key, step.tmp)
    }

    /// `--exclude`, `--chown` (the stage's users and groups) and `--chmod` of the step.
    fn copy_flags(&self, step: &CopyStep<'_>) -> Result<CopyFlags, BuildError> {
        let (instr, spec) = (step.instr, step.spec);
        let mut flags = CopyFlags {
            owner: None,
            chmod: None,
            exclude: IgnoreRules::default(),
        };
        if !spec.exclude.is_empty() {
            flags.exclude = IgnoreRules::parse(&spec.exclude.join("\n"), "--exclude")
                .map_err(|e| self.step_err(instr, e))?;
        }
        if let Some(c) = &spec.chown {
            flags.owner =
                Some(resolve_owner(c, step.stage_fs).map_err(|e| self.step_err(instr, e))?);
        }
        if let Some(m) = &spec.chmod {
            flags.chmod = Some(parse_chmod(m).map_err(|e| self.step_err(instr, e))?);
        }
        Ok(flags)
    }

    /// ADD of a URL with `--checksum` after a cache miss: downloads it, checked against
    /// `expected`, and writes the step's files again, now with the download.
    fn write_checked(
        &self,
        step: &CopyStep<'_>,
        flags: &CopyFlags,
        dest: &str,
        expected: &str,
    ) -> Result<(), BuildError> {
        let instr = step.instr;
        let url = &step.urls[0];
        let d = crate::remote::download(url, step.downloads_dir, 0, Some(expected))
            .map_err(|e| self.step_err(instr, e))?;
        // Written again, now with the download.
        berth_runtime::store::remove_tree(step.tmp)
            .map_err(|e| self.step_err(instr, format!("removing {}: {e}", step.tmp.display())))?;
        self.create_dir(instr, step.tmp)?;
        let mut job = step.job(flags);
        job.remote.insert(url.clone(), d);
        job.run(&step.spec.sources, dest)
            .map_err(|e| self.step_err(instr, e))
    }

    /// Creates the folder `dir` for step `instr`.
    fn create_dir(&self, instr: &Instruction, dir: &Path) -> Result<(), BuildError> {
        std::fs::create_dir(dir)
            .map_err(|e| self.step_err(instr, format!("creating {}: {e}", dir.display())))
    }
}
