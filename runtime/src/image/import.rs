//! Making layers from outside content: a rootfs tarball or folder (`berth import`), or any
//! folder the builder hands over (a step's upper dir).

use std::io::Read;
use std::path::{Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::Dir;

use super::layer::{self, Compression, CreateOptions};
use super::snapshot::{extract_verified, snapshot_options};
use super::{ImageError, LayerRef};
use crate::digest::HashingWriter;
use crate::store::{IoContext, Store, remove_tree};

/// Where an imported root filesystem comes from.
pub enum ImportSource<'a> {
    /// A tar stream, plain, gzip or zstd.
    Tar(Box<dyn Read + 'a>),
    /// A folder on the host.
    Dir(PathBuf),
}

impl Store {
    /// Turns a rootfs into one layer in the store, with its snapshot. A tarball is unpacked
    /// first (so a hostile entry is refused before anything is stored) and the layer is made
    /// from the result, which gives canonical, sorted entries.
    pub fn import_layer(&self, source: ImportSource<'_>) -> Result<LayerRef, ImageError> {
        let _content = self.lock_content()?;
        match source {
            ImportSource::Dir(path) => {
                let opts = CreateOptions::default();
                let layer = self.write_layer(&path, &opts, Compression::Gzip)?;
                self.ensure_snapshot(&layer)?;
                Ok(layer)
            }
            ImportSource::Tar(reader) => {
                let tmp = self.temp_path("import");
                let result = (|| {
                    std::fs::create_dir(&tmp).ctx(|| format!("creating {}", tmp.display()))?;
                    let reader = layer::decompress(reader).ctx(|| "reading the tarball".into())?;
                    extract_verified(reader, &tmp, &snapshot_options()).map_err(|cause| {
                        ImageError::Layer {
                            context: "importing the tarball".into(),
                            cause,
                        }
                    })?;
                    let opts = CreateOptions {
                        overlay_whiteouts: true,
                        ..CreateOptions::default()
                    };
                    let layer = self.write_layer(&tmp, &opts, Compression::Gzip)?;
                    self.install_snapshot(&tmp, &layer.diff_id)?;
                    Ok(layer)
                })();
                if result.is_err() {
                    let _ = remove_tree(&tmp);
                }
                result
            }
        }
    }

    /// Writes the folder `dir` as a compressed layer blob and returns it. The caller holds
    /// [`Store::lock_content`] until the layer is referenced by an image.
    pub fn write_layer(
        &self,
        dir: &Path,
        opts: &CreateOptions,
        compression: Compression,
    ) -> Result<LayerRef, ImageError> {
        let handle = Dir::open_ambient_dir(dir, ambient_authority())
            .ctx(|| format!("opening {}", dir.display()))?;
        let mut blob = self.blob_writer()?;
        let what = || format!("making a layer of {}", dir.display());
        let encoder = layer::Encoder::new(&mut blob, compression).ctx(what)?;
        let mut hashing = HashingWriter::new(encoder);
        layer::create(&handle, &mut hashing, opts).ctx(what)?;
        let (diff_id, _, encoder) = hashing.finish();
        encoder.finish().ctx(what)?;
        let (digest, size) = blob.commit(None)?;
        Ok(LayerRef {
            blob: digest,
            diff_id,
            size,
            media_type: compression.layer_media_type(),
        })
    }
}
