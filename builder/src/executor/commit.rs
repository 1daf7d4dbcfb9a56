//! What a step leaves behind: its layer written and kept as a snapshot, the cache entry that
//! lets a rebuild skip it, and its history entry; runs of metadata steps share one entry.

use berth_runtime::image::LayerRef;
use berth_runtime::image::config::History;
use berth_runtime::image::layer::{Compression, CreateOptions};

use super::{BuildError, Builder, StageState, now};
use crate::cache::{CachedLayer, Entry, Key};
use crate::dockerfile::Instruction;

impl Builder<'_> {
    /// Ends a run of metadata steps at cache key `key`: their history entries take the time
    /// the cache holds for `key`, or now (recorded there). One entry for the run, not one per
    /// step: a Dockerfile of thousands of LABEL lines wrote thousands of files. Cached only
    /// for the time, so a rebuild with nothing changed gives the very same image id.
    pub(super) fn settle_edits(&self, state: &mut StageState, key: &Key) {
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
    pub(super) fn layer_step(
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
    pub(super) fn cached(&self, key: &Key, label: &str) -> Option<Entry> {
        if self.opts.no_cache {
            return None;
        }
        let entry = self.cache.get(self.store, key)?;
        self.progress.cached(label);
        Some(entry)
    }

    /// Makes the folder a step wrote into its layer, records it in the cache under `key`, and
    /// adds it to the stage.
    pub(super) fn commit_step(
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

    /// Adds the step `entry` records to the stage: its layer if it has one, its history entry,
    /// and `key` as the stage's key from now on.
    pub(super) fn apply_entry(
        &self,
        state: &mut StageState,
        instr: &Instruction,
        key: Key,
        entry: Entry,
    ) {
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
}
