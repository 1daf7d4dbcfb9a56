//! The step cache: a step's key chains its parent's key, the instruction after substitution,
//! the build args in scope and, for COPY/ADD, a digest of everything it copies (content,
//! mode, owner, link target; never mtimes). An entry records the layer the step made, and is
//! trusted only while that layer's blob and snapshot are still in the store.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_runtime::Store;
use berth_runtime::digest::Digest;
use berth_runtime::image::LayerRef;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// A running cache key.
#[derive(Debug, Clone)]
pub struct Key(String);

impl Key {
    /// The key of a stage's base (`FROM`): what it is built on.
    pub fn base(what: &str) -> Key {
        Key(hash_parts(&["base", what]))
    }

    /// The key of the step `parts` after this one.
    pub fn then(&self, parts: &[&str]) -> Key {
        let mut all = vec![self.0.as_str()];
        all.extend_from_slice(parts);
        Key(hash_parts(&all))
    }

    /// The hex key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn hash_parts(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        // Length-prefixed so ("ab","c") and ("a","bc") differ.
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

/// What a cached step produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// The layer made, if any.
    pub layer: Option<CachedLayer>,
    /// When the step first ran (its history entry's time).
    pub created: String,
}

/// A layer as recorded in the cache.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedLayer {
    /// Blob digest (compressed).
    pub blob: Digest,
    /// Uncompressed digest.
    pub diff_id: Digest,
    /// Blob size.
    pub size: u64,
    /// Blob media type.
    pub media_type: String,
}

impl From<&LayerRef> for CachedLayer {
    fn from(l: &LayerRef) -> Self {
        CachedLayer {
            blob: l.blob.clone(),
            diff_id: l.diff_id.clone(),
            size: l.size,
            media_type: l.media_type.to_string(),
        }
    }
}

impl CachedLayer {
    /// Back to a layer reference.
    pub fn to_layer(&self) -> LayerRef {
        LayerRef {
            blob: self.blob.clone(),
            diff_id: self.diff_id.clone(),
            size: self.size,
            media_type: oci_spec::image::MediaType::from(self.media_type.as_str()),
        }
    }
}

/// The cache under `<root>/build-cache`.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// The cache of `store`.
    pub fn new(store: &Store) -> Cache {
        Cache {
            dir: store.root().join("build-cache"),
        }
    }

    /// The entry for `key`, if present and its layer is still whole in the store.
    pub fn get(&self, store: &Store, key: &Key) -> Option<Entry> {
        let bytes = std::fs::read(self.dir.join(format!("{}.json", key.as_str()))).ok()?;
        let entry: Entry = serde_json::from_slice(&bytes).ok()?;
        if let Some(l) = &entry.layer
            && !(store.has_blob(&l.blob) && store.snapshot_path(&l.diff_id).is_dir())
        {
            return None;
        }
        Some(entry)
    }

    /// Records `entry` for `key` (best effort: a cache that cannot be written only costs time).
    pub fn put(&self, store: &Store, key: &Key, entry: &Entry) {
        let _ = std::fs::create_dir_all(&self.dir);
        let bytes = serde_json::to_vec(entry).expect("a cache entry serializes");
        if let Err(e) =
            store.write_file_unsynced(&self.dir.join(format!("{}.json", key.as_str())), &bytes)
        {
            tracing::debug!("not caching a build step: {e}");
        }
    }
}

/// What [`Cache::prune`] removed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Pruned {
    /// Step entries.
    pub entries: usize,
    /// `RUN --mount=type=cache` folders.
    pub mounts: usize,
}

impl Cache {
    /// Forgets every step and empties the RUN cache mounts. The layers only the cache kept
    /// become garbage for [`Store::collect_garbage`].
    pub fn prune(&self, store: &Store) -> std::io::Result<Pruned> {
        let mut pruned = Pruned::default();
        if let Ok(read) = std::fs::read_dir(&self.dir) {
            for e in read.flatten() {
                std::fs::remove_file(e.path())?;
                pruned.entries += 1;
            }
        }
        let mounts = store.root().join("build-cache-mounts");
        if let Ok(read) = std::fs::read_dir(&mounts) {
            for e in read.flatten() {
                // Renamed into tmp/ first, so a half-removed mount is never used.
                let tmp = store.temp_path("cache-mount");
                std::fs::rename(e.path(), &tmp)?;
                berth_runtime::store::remove_tree(&tmp)?;
                pruned.mounts += 1;
            }
        }
        Ok(pruned)
    }
}

/// Digest of a folder's tree: every path, type, mode, owner, link target and file content,
/// in sorted order. Mtimes are left out on purpose: touching a file must not bust the cache.
pub fn hash_tree(dir: &Path) -> std::io::Result<String> {
    let mut h = Sha256::new();
    hash_into(dir, "", &mut h)?;
    Ok(hex::encode(h.finalize()))
}

fn hash_into(dir: &Path, rel: &str, h: &mut Sha256) -> std::io::Result<()> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join(rel))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    names.sort();
    for name in names {
        crate::cancel::check()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::Interrupted, e))?;
        let child = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let path = dir.join(&child);
        let m = std::fs::symlink_metadata(&path)?;
        let line = format!(
            "{child}\0{:o}\0{}\0{}\0",
            m.permissions().mode(),
            m.uid(),
            m.gid()
        );
        h.update(line.as_bytes());
        if m.file_type().is_symlink() {
            h.update(std::fs::read_link(&path)?.as_os_str().as_encoded_bytes());
        } else if m.is_file() {
            let mut f = std::fs::File::open(&path)?;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
        } else if m.is_dir() {
            hash_into(dir, &child, h)?;
        }
        h.update(b"\n");
    }
    Ok(())
}
