//! Images: manifests and configs in the store, their layers and unpacked snapshots, and the
//! ways images enter and leave (import, save, load).

pub mod archive;
pub mod config;
#[cfg(unix)]
pub mod import;
pub mod init_layer;
pub mod layer;
pub mod snapshot;
pub mod store;

use oci_spec::image::{ImageManifest, MediaType};

use crate::digest::Digest;
use crate::reference::{ImageRef, InvalidReference};
use crate::store::StoreError;
pub use config::ImageConfig;
pub use layer::LayerError;

/// The media type of an OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The media type of a Docker v2 schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// An image in the store: its manifest, its config and the names that point at it.
#[derive(Debug, Clone)]
pub struct Image {
    /// The manifest's digest (what registries call the image digest).
    pub digest: Digest,
    /// The manifest.
    pub manifest: ImageManifest,
    /// The config's digest: the image id, as Docker shows it.
    pub id: Digest,
    /// The config.
    pub config: ImageConfig,
    /// Names (tags) pointing at this image; empty for a dangling image.
    pub names: Vec<ImageRef>,
}

/// One layer of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRef {
    /// The blob's digest (compressed, as stored).
    pub blob: Digest,
    /// The uncompressed tar's digest (the config's diff_id).
    pub diff_id: Digest,
    /// The blob's size.
    pub size: u64,
    /// The blob's media type.
    pub media_type: MediaType,
}

impl Image {
    /// Whether a layer is a bare WebAssembly module (other wasm tooling's images).
    pub fn has_wasm_layer(&self) -> bool {
        self.manifest
            .layers()
            .iter()
            .any(|l| layer::is_wasm_media_type(l.media_type()))
    }

    /// The layers, bottom first, pairing each manifest layer with its diff_id.
    pub fn layers(&self) -> Result<Vec<LayerRef>, ImageError> {
        let descs = self.manifest.layers();
        let diff_ids = &self.config.rootfs.diff_ids;
        if descs.len() != diff_ids.len() {
            return Err(ImageError::Invalid(format!(
                "image {} has {} layers but its config lists {} diff_ids",
                self.id.short(),
                descs.len(),
                diff_ids.len()
            )));
        }
        descs
            .iter()
            .zip(diff_ids)
            .map(|(d, diff_id)| {
                Ok(LayerRef {
                    blob: Digest::from_oci(d.digest())
                        .map_err(|e| ImageError::Invalid(e.to_string()))?,
                    diff_id: diff_id.clone(),
                    size: d.size(),
                    media_type: d.media_type().clone(),
                })
            })
            .collect()
    }

    /// Bytes the image takes in the store (its layer blobs and config).
    pub fn size(&self) -> u64 {
        self.manifest.layers().iter().map(|l| l.size()).sum::<u64>() + self.manifest.config().size()
    }

    /// When the image was made.
    pub fn created(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let c = self.config.created.as_deref()?;
        chrono::DateTime::parse_from_rfc3339(c)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
    }
}

/// What can go wrong with images.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// No image matches what the user named.
    #[error(
        "no such image: {0} (`berth images` lists the local ones; import, load, pull or build it first)"
    )]
    NotFound(String),
    /// An id prefix matches several images.
    #[error("image id prefix {0:?} matches several images; give more characters")]
    Ambiguous(String),
    /// Removing would break something, and was not forced.
    #[error("{0}")]
    Conflict(String),
    /// An image in the store or in an archive is malformed.
    #[error("{0}")]
    Invalid(String),
    /// A layer was refused or could not be applied.
    #[error("{context}: {cause}")]
    Layer {
        /// Which layer.
        context: String,
        /// What went wrong.
        cause: LayerError,
    },
    /// A reference did not parse.
    #[error(transparent)]
    Reference(#[from] InvalidReference),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
