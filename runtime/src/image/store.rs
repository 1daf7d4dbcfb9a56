//! The image store: images as `index.json` entries pointing at manifests, named by the
//! `org.opencontainers.image.ref.name` annotation; lookup by name or id; tag, untag, remove,
//! and garbage collection of blobs and snapshots that no image needs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;

use oci_spec::image::{
    Descriptor, DescriptorBuilder, ImageManifest, ImageManifestBuilder, MediaType,
};

use super::config::{self, ImageConfig};
use super::{DOCKER_MANIFEST, Image, ImageError, LayerRef, OCI_MANIFEST};
use crate::digest::Digest;
use crate::reference::ImageRef;
use crate::store::{IoContext, REF_NAME, Store, StoreError};

/// What `remove_image` did, in Docker's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    /// A name no longer points at the image.
    Untagged(String),
    /// The image itself is gone.
    Deleted(Digest),
}

/// An `index.json` entry whose image cannot be read.
#[derive(Debug, Clone)]
pub struct BrokenImage {
    /// The manifest digest the entry points at.
    pub digest: Digest,
    /// The names pointing at it.
    pub names: Vec<ImageRef>,
    /// Why it cannot be read.
    pub reason: String,
}

/// Whether `e` says an image's own blobs are gone or damaged (not that reading failed).
fn unreadable(e: &ImageError) -> bool {
    matches!(
        e,
        ImageError::Invalid(_)
            | ImageError::Store(StoreError::MissingBlob(_) | StoreError::Corrupt { .. })
    )
}

/// What garbage collection freed.
#[derive(Debug, Default, Clone, Copy)]
pub struct GcStats {
    /// Blobs removed.
    pub blobs: usize,
    /// Snapshots removed.
    pub snapshots: usize,
    /// Bytes of blobs removed.
    pub bytes: u64,
}

fn is_manifest(d: &Descriptor) -> bool {
    matches!(d.media_type(), MediaType::ImageManifest)
        || matches!(d.media_type(), MediaType::Other(s) if s == DOCKER_MANIFEST)
}

fn ref_name(d: &Descriptor) -> Option<&String> {
    d.annotations().as_ref().and_then(|a| a.get(REF_NAME))
}

fn descriptor(
    media_type: MediaType,
    digest: &Digest,
    size: u64,
    name: Option<&ImageRef>,
) -> Descriptor {
    let mut d = DescriptorBuilder::default()
        .media_type(media_type)
        .digest(digest.to_oci())
        .size(size)
        .build()
        .expect("a descriptor with digest and size is valid");
    if let Some(name) = name {
        d.set_annotations(Some(HashMap::from([(
            REF_NAME.to_string(),
            name.to_string(),
        )])));
    }
    d
}

impl Store {
    /// Reads the image whose manifest has `digest`.
    pub fn load_image(&self, digest: &Digest, names: Vec<ImageRef>) -> Result<Image, ImageError> {
        let bytes = self.read_blob(digest)?;
        let manifest: ImageManifest = serde_json::from_slice(&bytes)
            .map_err(|e| ImageError::Invalid(format!("manifest {digest} is corrupt: {e}")))?;
        let id = Digest::from_oci(manifest.config().digest())
            .map_err(|e| ImageError::Invalid(e.to_string()))?;
        let config: ImageConfig = serde_json::from_slice(&self.read_blob(&id)?)
            .map_err(|e| ImageError::Invalid(format!("config {id} is corrupt: {e}")))?;
        Ok(Image {
            digest: digest.clone(),
            manifest,
            id,
            config,
            names,
        })
    }

    /// The images of the index by manifest digest, with their names (sorted), without reading
    /// their manifests.
    fn image_names(&self) -> Result<BTreeMap<Digest, Vec<ImageRef>>, ImageError> {
        let mut by_digest: BTreeMap<Digest, Vec<ImageRef>> = BTreeMap::new();
        for d in self.read_index()?.manifests() {
            if !is_manifest(d) {
                continue;
            }
            let digest =
                Digest::from_oci(d.digest()).map_err(|e| ImageError::Invalid(e.to_string()))?;
            let names = by_digest.entry(digest).or_default();
            if let Some(name) = ref_name(d).and_then(|n| ImageRef::from_str(n).ok()) {
                names.push(name);
            }
        }
        for names in by_digest.values_mut() {
            names.sort_by_key(|n| n.to_string());
        }
        Ok(by_digest)
    }

    /// Every image in the store, newest first.
    pub fn images(&self) -> Result<Vec<Image>, ImageError> {
        let mut images = Vec::new();
        for (digest, names) in self.image_names()? {
            match self.load_image(&digest, names.clone()) {
                Ok(image) => images.push(image),
                // One broken image must not hide the others; `rmi` removes it by name.
                Err(e) => {
                    let name = names.first().map_or(digest.to_string(), |n| n.familiar());
                    tracing::warn!(
                        "skipping image {name}: {e}; remove it with `berth rmi {name}` (or every such image with `berth system prune`), then pull, load or build it again"
                    )
                }
            }
        }
        images.sort_by(|a, b| b.created().cmp(&a.created()).then(a.id.cmp(&b.id)));
        Ok(images)
    }

    /// Finds an image as Docker does: a name (`busybox`, `busybox:1.36`, `name@sha256:…`),
    /// a full id (`sha256:…`) or a unique id prefix.
    pub fn find_image(&self, input: &str) -> Result<Image, ImageError> {
        let hex = input.strip_prefix("sha256:").unwrap_or(input);
        let looks_like_id =
            !hex.is_empty() && hex.len() <= 64 && hex.bytes().all(|b| b.is_ascii_hexdigit());
        let full_id = input.starts_with("sha256:") || (looks_like_id && hex.len() == 64);
        // A name is looked up in the index alone: only its image's manifest and config are
        // read (a `run` in a store of many images reads two blobs, not two per image).
        if !full_id && let Ok(r) = ImageRef::parse(input) {
            let by_digest = self.image_names()?;
            let found = match r.digest() {
                // A pull by an index digest names the platform's image with that digest.
                Some(d) => by_digest
                    .iter()
                    .find(|(digest, names)| digest.to_string() == d || names.contains(&r)),
                None => by_digest.iter().find(|(_, names)| names.contains(&r)),
            };
            if let Some((digest, names)) = found {
                return self.load_image(digest, names.clone());
            }
        }
        let images = self.images()?;
        if full_id {
            if let Some(i) = images
                .iter()
                .find(|i| i.id.hex() == hex || i.digest.hex() == hex)
            {
                return Ok(i.clone());
            }
            return Err(ImageError::NotFound(input.to_string()));
        }
        if looks_like_id {
            let hits: Vec<&Image> = images
                .iter()
                .filter(|i| i.id.hex().starts_with(hex))
                .collect();
            match hits.as_slice() {
                [one] => return Ok((*one).clone()),
                [] => {}
                _ => return Err(ImageError::Ambiguous(input.to_string())),
            }
        }
        ImageRef::parse(input)?;
        Err(ImageError::NotFound(input.to_string()))
    }

    /// Stores a manifest and points `names` at it (a name already used moves to this image;
    /// the image it left stays as a dangling image, as Docker's does). With no names the image
    /// is kept untagged.
    pub fn add_image(
        &self,
        manifest: &[u8],
        media_type: &str,
        names: &[ImageRef],
    ) -> Result<Digest, ImageError> {
        let digest = self.put_blob(manifest)?;
        let size = manifest.len() as u64;
        let media = MediaType::from(media_type);
        self.update_index(|descs| {
            for name in names {
                point_name(descs, name, Some((&digest, &media, size)));
            }
            if names.is_empty()
                && !descs
                    .iter()
                    .any(|d| d.digest().to_string() == digest.to_string())
            {
                descs.push(descriptor(media.clone(), &digest, size, None));
            }
            Ok(())
        })?;
        Ok(digest)
    }

    /// Writes `config` and an OCI manifest over `layers` (already in the store), and names the
    /// new image.
    pub fn commit_image(
        &self,
        config: &ImageConfig,
        layers: &[LayerRef],
        names: &[ImageRef],
    ) -> Result<Image, ImageError> {
        let config_bytes = config.to_bytes();
        let config_digest = self.put_blob(&config_bytes)?;
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(descriptor(
                MediaType::Other(config::MEDIA_TYPE.into()),
                &config_digest,
                config_bytes.len() as u64,
                None,
            ))
            .layers(
                layers
                    .iter()
                    .map(|l| descriptor(l.media_type.clone(), &l.blob, l.size, None))
                    .collect::<Vec<_>>(),
            )
            .build()
            .map_err(|e| ImageError::Invalid(e.to_string()))?;
        let bytes = serde_json::to_vec(&manifest).expect("a manifest serializes");
        let digest = self.add_image(&bytes, OCI_MANIFEST, names)?;
        self.load_image(&digest, names.to_vec())
    }

    /// Points `name` at `image`.
    pub fn tag_image(&self, image: &Image, name: &ImageRef) -> Result<(), ImageError> {
        if name.digest().is_some() {
            return Err(ImageError::Invalid(format!(
                "cannot tag with a digest reference {name}: give NAME[:TAG]"
            )));
        }
        let manifest = self.blob_size(&image.digest)?;
        let media = image
            .manifest
            .media_type()
            .clone()
            .unwrap_or(MediaType::ImageManifest);
        self.update_index(|descs| {
            point_name(descs, name, Some((&image.digest, &media, manifest)));
            Ok(())
        })?;
        Ok(())
    }

    /// Ids of containers whose state names `image_id`; they keep the image from removal.
    ///
    /// Each container's `containers/<id>/state.json` records the `image_id` it runs.
    pub fn containers_using(&self, image_id: &Digest) -> Vec<String> {
        let dir = self.root().join("containers");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut ids = Vec::new();
        for e in entries.flatten() {
            let Ok(bytes) = std::fs::read(e.path().join("state.json")) else {
                continue;
            };
            if crate::container::store::state_image_id(&bytes).as_deref()
                == Some(&image_id.to_string())
            {
                ids.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        ids.sort();
        ids
    }

    /// The entries of `index.json` whose image cannot be read: its manifest or config blob is
    /// missing or damaged. Nothing can run them; [`Store::remove_image`] removes one by name
    /// (or manifest digest), [`Store::remove_broken_images`] all.
    pub fn broken_images(&self) -> Result<Vec<BrokenImage>, ImageError> {
        let mut out = Vec::new();
        for (digest, names) in self.image_names()? {
            if let Err(e) = self.load_image(&digest, names.clone())
                && unreadable(&e)
            {
                out.push(BrokenImage {
                    digest,
                    names,
                    reason: e.to_string(),
                });
            }
        }
        Ok(out)
    }

    /// Removes every entry of `index.json` whose image cannot be read (`system prune`), then
    /// what nothing needs any more.
    pub fn remove_broken_images(&self) -> Result<Vec<Removed>, ImageError> {
        let _gc = self.lock_gc()?;
        let mut out = Vec::new();
        for broken in self.broken_images()? {
            out.extend(self.drop_entries(&broken.digest, None)?);
        }
        if !out.is_empty() {
            self.collect_garbage_locked()?;
        }
        Ok(out)
    }

    /// The broken image `input` names: by one of its names (then that name alone is meant), or
    /// by its manifest digest, whole or a unique prefix.
    fn find_broken(
        &self,
        input: &str,
    ) -> Result<Option<(BrokenImage, Option<ImageRef>)>, ImageError> {
        let broken = self.broken_images()?;
        if let Ok(r) = ImageRef::parse(input)
            && let Some(b) = broken
                .iter()
                .find(|b| b.names.contains(&r) || r.digest() == Some(b.digest.to_string().as_str()))
        {
            let name = r.digest().is_none().then_some(r);
            return Ok(Some((b.clone(), name)));
        }
        let hex = input.strip_prefix("sha256:").unwrap_or(input);
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let hits: Vec<&BrokenImage> = broken
            .iter()
            .filter(|b| b.digest.hex().starts_with(hex))
            .collect();
        match hits.as_slice() {
            [one] => Ok(Some(((*one).clone(), None))),
            [] => Ok(None),
            _ => Err(ImageError::Ambiguous(input.to_string())),
        }
    }

    /// Takes `name` (or, with `None`, every name and the dangling entry) of the image whose
    /// manifest is `digest` out of `index.json`; an entry left with no name goes too, as
    /// nothing can use the image. Returns what went.
    fn drop_entries(
        &self,
        digest: &Digest,
        name: Option<&ImageRef>,
    ) -> Result<Vec<Removed>, ImageError> {
        let digest_str = digest.to_string();
        let key = name.map(|n| n.to_string());
        let mut untagged = Vec::new();
        let gone = self.update_index(|descs| {
            descs.retain(|d| {
                if d.digest().to_string() != digest_str {
                    return true;
                }
                let this = ref_name(d).cloned();
                let take = match (&key, &this) {
                    (None, _) | (Some(_), None) => true,
                    (Some(k), Some(n)) => k == n,
                };
                if take && let Some(n) = this.and_then(|n| ImageRef::parse(&n).ok()) {
                    untagged.push(Removed::Untagged(n.familiar()));
                }
                !take
            });
            Ok(!descs.iter().any(|d| d.digest().to_string() == digest_str))
        })?;
        if gone {
            untagged.push(Removed::Deleted(digest.clone()));
        }
        Ok(untagged)
    }

    /// Removes an image or one of its names, as `docker rmi` does, then collects garbage.
    ///
    /// Naming one tag of an image with several removes only that tag. Naming an id whose image
    /// has several names, or an image a container uses, is refused unless `force`. An image
    /// that cannot be read (its manifest or config is gone) is removed by name or manifest
    /// digest all the same: nothing can use it.
    pub fn remove_image(&self, input: &str, force: bool) -> Result<Vec<Removed>, ImageError> {
        let _gc = self.lock_gc()?;
        let image = match self.find_image(input) {
            Ok(image) => image,
            Err(e) => {
                let Some((broken, name)) = self.find_broken(input)? else {
                    return Err(e);
                };
                let out = self.drop_entries(&broken.digest, name.as_ref())?;
                self.collect_garbage_locked()?;
                return Ok(out);
            }
        };
        let by_name = ImageRef::parse(input)
            .ok()
            .filter(|r| r.digest().is_none() && image.names.contains(r));
        let users = self.containers_using(&image.id);
        let mut out = Vec::new();
        let last_name = by_name.is_none() || image.names.len() <= 1;
        if !users.is_empty() && !force && last_name {
            return Err(ImageError::Conflict(format!(
                "unable to remove image {} ({}): container {} is using it; remove the container first (`berth rm`) or force with -f",
                input,
                image.id.short(),
                &users[0][..12.min(users[0].len())]
            )));
        }
        let untag: Vec<ImageRef> = match &by_name {
            Some(name) if image.names.len() > 1 => vec![name.clone()],
            Some(name) => vec![name.clone()],
            None if image.names.len() > 1 && !force => {
                return Err(ImageError::Conflict(format!(
                    "unable to delete {} (must be forced): image is referenced in multiple repositories ({}); remove the tags one by one or use -f",
                    image.id.short(),
                    image
                        .names
                        .iter()
                        .map(|n| n.familiar())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            None => image.names.clone(),
        };
        let remaining = image.names.len() - untag.len();
        let delete = remaining == 0 && users.is_empty();
        let digest_str = image.digest.to_string();
        let manifest_size = self.blob_size(&image.digest)?;
        let manifest_media = image
            .manifest
            .media_type()
            .clone()
            .unwrap_or(MediaType::ImageManifest);
        self.update_index(|descs| {
            descs.retain(|d| {
                if d.digest().to_string() != digest_str {
                    return true;
                }
                match ref_name(d) {
                    Some(n) => !untag.iter().any(|u| &u.to_string() == n),
                    None => !delete,
                }
            });
            // A forced removal of an image a container still runs leaves it dangling.
            if remaining == 0
                && !delete
                && !descs.iter().any(|d| d.digest().to_string() == digest_str)
            {
                descs.push(descriptor(
                    manifest_media.clone(),
                    &image.digest,
                    manifest_size,
                    None,
                ));
            }
            Ok(())
        })?;
        out.extend(untag.iter().map(|n| Removed::Untagged(n.familiar())));
        if delete {
            out.push(Removed::Deleted(image.id.clone()));
            self.collect_garbage_locked()?;
        }
        Ok(out)
    }

    /// Removes blobs and snapshots no image in `index.json` needs.
    pub fn collect_garbage(&self) -> Result<GcStats, ImageError> {
        let _gc = self.lock_gc()?;
        self.collect_garbage_locked()
    }

    fn collect_garbage_locked(&self) -> Result<GcStats, ImageError> {
        let mut blobs: BTreeSet<String> = BTreeSet::new();
        let mut snapshots: BTreeSet<String> = BTreeSet::new();
        let mut init_layers: BTreeSet<String> = BTreeSet::new();
        for d in self.read_index()?.manifests() {
            let digest =
                Digest::from_oci(d.digest()).map_err(|e| ImageError::Invalid(e.to_string()))?;
            blobs.insert(digest.hex().to_string());
            if !is_manifest(d) {
                continue;
            }
            // A broken image keeps what it still names, and is not an error for the others.
            let Ok(bytes) = self.read_blob(&digest) else {
                continue;
            };
            let Ok(manifest) = serde_json::from_slice::<ImageManifest>(&bytes) else {
                continue;
            };
            blobs.insert(manifest.config().digest().digest().to_string());
            for l in manifest.layers() {
                blobs.insert(l.digest().digest().to_string());
            }
            if let Ok(id) = Digest::from_oci(manifest.config().digest())
                && let Ok(cfg) = self.read_blob(&id)
                && let Ok(cfg) = serde_json::from_slice::<ImageConfig>(&cfg)
            {
                snapshots.extend(cfg.rootfs.diff_ids.iter().map(|d| d.hex().to_string()));
                for native in [true, false] {
                    init_layers.insert(super::init_layer::key(&cfg.rootfs.diff_ids, native));
                }
            }
        }
        // The build cache (berth-builder's `build-cache/<key>.json`, each naming the layer a
        // step made) keeps its layers too: removing an image must not cost the next build its
        // cache. `berth builder prune` forgets the entries, and the next collection frees them.
        if let Ok(entries) = std::fs::read_dir(self.root().join("build-cache")) {
            for e in entries.flatten() {
                let Ok(bytes) = std::fs::read(e.path()) else {
                    continue;
                };
                let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                    continue;
                };
                let hex = |field: &str| {
                    v["layer"][field]
                        .as_str()
                        .and_then(|d| d.strip_prefix("sha256:"))
                        .map(str::to_string)
                };
                blobs.extend(hex("blob"));
                snapshots.extend(hex("diff_id"));
            }
        }
        let mut stats = GcStats::default();
        let blob_dir = self.root().join("blobs/sha256");
        for e in std::fs::read_dir(&blob_dir)
            .ctx(|| format!("reading {}", blob_dir.display()))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if !blobs.contains(&name) {
                stats.bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
                std::fs::remove_file(e.path()).ctx(|| format!("removing blob {name}"))?;
                stats.blobs += 1;
            }
        }
        for e in std::fs::read_dir(self.snapshots_dir())
            .ctx(|| "reading snapshots".into())?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if !snapshots.contains(&name)
                && let Ok(d) = Digest::from_str(&format!("sha256:{name}"))
            {
                self.remove_snapshot(&d)?;
                stats.snapshots += 1;
            }
        }
        super::init_layer::collect_garbage(
            &self.root().join(super::init_layer::DIR_NAME),
            &init_layers,
        );
        Ok(stats)
    }
}

/// Points `name` at `target` in `descs` (or removes it with `None`), keeping the image it
/// leaves as a dangling entry when nothing else names it.
fn point_name(
    descs: &mut Vec<Descriptor>,
    name: &ImageRef,
    target: Option<(&Digest, &MediaType, u64)>,
) {
    let key = name.to_string();
    if let Some(pos) = descs.iter().position(|d| ref_name(d) == Some(&key)) {
        let old = descs.remove(pos);
        let old_digest = old.digest().to_string();
        let moving_to_same = target.is_some_and(|(d, _, _)| d.to_string() == old_digest);
        if !moving_to_same && !descs.iter().any(|d| d.digest().to_string() == old_digest) {
            let mut dangling = old;
            dangling.set_annotations(None);
            descs.push(dangling);
        }
    }
    if let Some((digest, media, size)) = target {
        // The image is named now: drop its dangling entry.
        descs.retain(|d| !(d.digest().to_string() == digest.to_string() && ref_name(d).is_none()));
        descs.push(descriptor(media.clone(), digest, size, Some(name)));
    }
}
