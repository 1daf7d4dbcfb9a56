//! Snapshots: each layer unpacked once into its own folder under `snapshots/`, keyed by its
//! diff_id, with overlay-style whiteouts, ready to be an overlay lowerdir.
//!
//! A snapshot is extracted into `tmp/` and renamed into place only when complete and verified
//! against its diff_id, so a crash or a refused entry never leaves a half snapshot.

use std::io::Read;
use std::path::PathBuf;

use cap_std::ambient_authority;
use cap_std::fs::Dir;

use super::layer::{self, ApplyOptions, WhiteoutMode};
use super::{ImageError, LayerRef};
use crate::digest::{Digest, HashingReader};
use crate::store::{IoContext, Store, atomic, remove_tree};

impl Store {
    /// The folder of the snapshot for a diff_id (it may not exist).
    pub fn snapshot_path(&self, diff_id: &Digest) -> PathBuf {
        self.snapshots_dir().join(diff_id.hex())
    }

    /// The snapshots of the layers `diff_ids` (bottom first, as an image config lists them),
    /// topmost first: the order overlayfs and [`find_in_layers`] take.
    pub fn snapshots_top_first(&self, diff_ids: &[Digest]) -> Vec<PathBuf> {
        diff_ids
            .iter()
            .rev()
            .map(|d| self.snapshot_path(d))
            .collect()
    }

    /// Returns the snapshot of `layer`, unpacking its blob first if needed.
    pub fn ensure_snapshot(&self, layer: &LayerRef) -> Result<PathBuf, ImageError> {
        let path = self.snapshot_path(&layer.diff_id);
        if path.is_dir() {
            return Ok(path);
        }
        let blob = self.open_blob(&layer.blob)?;
        let tmp = self.temp_path("snapshot");
        let result = (|| {
            std::fs::create_dir(&tmp).ctx(|| format!("creating {}", tmp.display()))?;
            let actual = if layer::is_wasm_media_type(&layer.media_type) {
                wasm_snapshot(blob, &tmp)?
            } else if cfg!(not(target_os = "linux")) {
                // No overlayfs here: containers get the layers merged into a folder of their
                // own (`merge_layers`), so the snapshot is only a record that the blob unpacks
                // to its diff_id.
                let mut reader = HashingReader::new(
                    layer::decompress(blob).ctx(|| format!("opening layer {}", layer.blob))?,
                );
                std::io::copy(&mut reader, &mut std::io::sink())
                    .ctx(|| format!("reading layer {}", layer.blob))?;
                reader
                    .finish()
                    .ctx(|| format!("reading layer {}", layer.blob))?
                    .0
            } else {
                let reader =
                    layer::decompress(blob).ctx(|| format!("opening layer {}", layer.blob))?;
                extract_verified(reader, &tmp, &ApplyOptions::default()).map_err(|cause| {
                    ImageError::Layer {
                        context: format!("unpacking layer {}", layer.blob),
                        cause,
                    }
                })?
            };
            if actual != layer.diff_id {
                return Err(ImageError::Invalid(format!(
                    "layer {} unpacks to {actual}, not the diff_id {} its image names: the blob is corrupt; remove the image and get it again",
                    layer.blob, layer.diff_id
                )));
            }
            self.install_snapshot(&tmp, &layer.diff_id)
        })();
        if result.is_err() {
            let _ = remove_tree(&tmp);
        }
        result
    }

    /// Moves a complete extraction in `tmp` into place as the snapshot of `diff_id` (public for
    /// the builder, which moves a step's upper dir into place instead of re-extracting it).
    pub fn install_snapshot(
        &self,
        tmp: &std::path::Path,
        diff_id: &Digest,
    ) -> Result<PathBuf, ImageError> {
        let path = self.snapshot_path(diff_id);
        // One syncfs for the whole tree beats an fsync per file, and makes the rename safe.
        #[cfg(unix)]
        {
            let dir = std::fs::File::open(tmp).ctx(|| format!("opening {}", tmp.display()))?;
            rustix::fs::syncfs(&dir)
                .map_err(std::io::Error::from)
                .ctx(|| format!("syncing {}", tmp.display()))?;
        }
        match atomic::rename_durable(tmp, &path) {
            Ok(()) => Ok(path),
            // Another process made the same snapshot first: theirs is as good as ours.
            Err(_) if path.is_dir() => {
                let _ = remove_tree(tmp);
                Ok(path)
            }
            Err(e) => Err(e).ctx(|| format!("installing snapshot {}", path.display()))?,
        }
    }

    /// Removes the snapshot of a diff_id.
    pub fn remove_snapshot(&self, diff_id: &Digest) -> Result<(), ImageError> {
        let path = self.snapshot_path(diff_id);
        // Renamed away first so a half-removed snapshot is never mistaken for a whole one.
        let tmp = self.temp_path("remove");
        if std::fs::rename(&path, &tmp).is_ok() {
            remove_tree(&tmp).ctx(|| format!("removing {}", path.display()))?;
        }
        Ok(())
    }
}

/// Applies the uncompressed tar from `reader` into the folder `target`, returning the digest
/// of the tar stream (its diff_id).
pub fn extract_verified(
    reader: impl Read,
    target: &std::path::Path,
    opts: &ApplyOptions,
) -> Result<Digest, layer::LayerError> {
    let dir =
        Dir::open_ambient_dir(target, ambient_authority()).map_err(layer::LayerError::Archive)?;
    let mut hashing = HashingReader::new(reader);
    layer::apply(&mut hashing, &dir, opts)?;
    let (digest, _) = hashing.finish().map_err(layer::LayerError::Archive)?;
    Ok(digest)
}

/// Apply options for snapshots: overlay whiteouts.
pub fn snapshot_options() -> ApplyOptions {
    ApplyOptions {
        whiteouts: WhiteoutMode::Overlay,
        ..ApplyOptions::default()
    }
}

impl Store {
    /// Finds a regular file of an image's merged filesystem in its snapshots (`layers` top
    /// first), as [`find_in_layers`] does.
    #[cfg(target_os = "linux")]
    pub fn find_in_snapshots(&self, layers: &[Digest], path: &str) -> Option<PathBuf> {
        let dirs: Vec<PathBuf> = layers.iter().map(|d| self.snapshot_path(d)).collect();
        find_in_layers(&dirs, path).map(|(_, p)| p)
    }
}

/// Finds a regular file of a merged filesystem in its layer folders (`dirs` top first, as
/// overlayfs' lowerdir), as overlayfs would: the highest layer holding it wins, a whiteout
/// hides it, and an opaque folder hides what the layers below hold under it. Symlinks are not
/// followed: a path through one is reported as absent. Gives the holding layer's index in
/// `dirs` and the file's path.
#[cfg(target_os = "linux")]
pub fn find_in_layers(dirs: &[PathBuf], path: &str) -> Option<(usize, PathBuf)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.is_empty() || parts.contains(&"..") {
        return None;
    }
    for (layer, dir) in dirs.iter().enumerate() {
        let mut p = dir.clone();
        let mut opaque_here = false;
        for (i, part) in parts.iter().enumerate() {
            p.push(part);
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                break;
            };
            if m.file_type().is_char_device() && m.rdev() == 0 {
                return None;
            }
            if i + 1 == parts.len() {
                return m.is_file().then_some((layer, p));
            }
            if !m.is_dir() {
                return None;
            }
            let mut v = [0u8; 1];
            if rustix::fs::lgetxattr(&p, "trusted.overlay.opaque", &mut v)
                .is_ok_and(|n| n == 1 && v[0] == b'y')
            {
                opaque_here = true;
            }
        }
        if opaque_here {
            return None;
        }
    }
    None
}

/// The snapshot of a bare WebAssembly layer: the module at [`layer::WASM_LAYER_PATH`], mode
/// 0755; gives the module's digest (the layer's diff_id).
fn wasm_snapshot(blob: std::fs::File, dir: &std::path::Path) -> Result<Digest, ImageError> {
    let name = layer::WASM_LAYER_PATH.trim_start_matches('/');
    let path = dir.join(name);
    let mut out = std::fs::File::create(&path).ctx(|| format!("creating {}", path.display()))?;
    let mut reader = HashingReader::new(blob);
    std::io::copy(&mut reader, &mut out).ctx(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .ctx(|| format!("setting the mode of {}", path.display()))?;
    }
    let (digest, _) = reader
        .finish()
        .ctx(|| "reading the wasm layer".to_string())?;
    Ok(digest)
}

impl Store {
    /// Applies an image's layers, bottom first, into the folder `dest` (whiteouts by deletion):
    /// a container's private rootfs where there is no overlayfs.
    pub fn merge_layers(
        &self,
        layers: &[LayerRef],
        dest: &std::path::Path,
    ) -> Result<(), ImageError> {
        std::fs::create_dir_all(dest).ctx(|| format!("creating {}", dest.display()))?;
        let target = Dir::open_ambient_dir(dest, ambient_authority())
            .ctx(|| format!("opening {}", dest.display()))?;
        let opts = ApplyOptions {
            whiteouts: WhiteoutMode::Remove,
            ..ApplyOptions::default()
        };
        for l in layers {
            let blob = self.open_blob(&l.blob)?;
            let context = || format!("unpacking layer {}", l.blob);
            if layer::is_wasm_media_type(&l.media_type) {
                let name = layer::WASM_LAYER_PATH.trim_start_matches('/');
                let mut out = target.create(name).ctx(context)?;
                std::io::copy(&mut { blob }, &mut out).ctx(context)?;
                continue;
            }
            let reader = layer::decompress(blob).ctx(context)?;
            layer::apply(reader, &target, &opts).map_err(|cause| ImageError::Layer {
                context: context(),
                cause,
            })?;
        }
        Ok(())
    }
}
