//! Image archives: `berth save` writes a tar holding an OCI image layout plus Docker's
//! `manifest.json` (as `docker save` does since Docker 25), so `skopeo … oci-archive:`,
//! umoci and `docker load` all read it. `berth load` reads those and classic
//! `docker save` tarballs (docker-archive).

use std::collections::{BTreeSet, HashMap};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use oci_spec::image::{
    Descriptor, DescriptorBuilder, ImageIndex, ImageIndexBuilder, ImageManifestBuilder, MediaType,
};
use serde::{Deserialize, Serialize};

use super::layer::{self, Compression};
use super::{DOCKER_MANIFEST, Image, ImageError, LayerRef, OCI_MANIFEST, config};
use crate::digest::Digest;
use crate::reference::ImageRef;
use crate::store::{IoContext, REF_NAME, Store};

/// containerd's (and Docker's) annotation for an image's full name in an archive.
const IMAGE_NAME: &str = "io.containerd.image.name";
/// JSON files in an archive larger than this are refused rather than read into memory.
const MAX_JSON: u64 = 64 << 20;

/// One entry of Docker's `manifest.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// What an archive's entries hold, once its blobs are in the store.
#[derive(Debug, Default)]
struct Contents {
    /// JSON files (and `oci-layout`, `repositories`), read into memory.
    json: HashMap<PathBuf, Vec<u8>>,
    /// Every other file, as the blob it was stored as.
    files: HashMap<PathBuf, Digest>,
    /// Symlinks and hardlinks, to the archive path they point at.
    links: HashMap<PathBuf, PathBuf>,
}

impl Contents {
    /// The blob an archive path names, through its links (a bounded number of them).
    fn lookup(&self, p: &str) -> Result<Digest, ImageError> {
        let mut path = normalize(Path::new(p)).unwrap_or_default();
        for _ in 0..8 {
            if let Some(d) = self.files.get(&path) {
                return Ok(d.clone());
            }
            match self.links.get(&path) {
                Some(t) => path = t.clone(),
                None => break,
            }
        }
        Err(ImageError::Invalid(format!(
            "the archive names {p} but does not contain it"
        )))
    }
}

/// (manifest digest, media type, names) for each image found.
type Found = (Digest, String, Vec<ImageRef>);

/// An image that `load` brought in, with the names it was given.
#[derive(Debug)]
pub struct Loaded {
    /// The image.
    pub image: Image,
}

fn tar_file<W: Write>(
    out: &mut tar::Builder<W>,
    path: &str,
    size: u64,
    data: impl Read,
) -> io::Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(size);
    h.set_mtime(0);
    out.append_data(&mut h, path, data)
}

impl Store {
    /// Writes `images` as an archive to `out`: an OCI layout with every blob once, an
    /// `index.json` naming each image's tags, and Docker's `manifest.json`.
    pub fn save(&self, images: &[Image], out: impl Write) -> Result<(), ImageError> {
        let _content = self.lock_content()?;
        let mut tar = tar::Builder::new(out);
        let ctx = || "writing the archive".to_string();
        let mut written = BTreeSet::new();
        let mut index = Vec::new();
        let mut docker = Vec::new();
        for image in images {
            let layers = image.layers()?;
            let blobs = std::iter::once(image.digest.clone())
                .chain(std::iter::once(image.id.clone()))
                .chain(layers.iter().map(|l| l.blob.clone()));
            for digest in blobs {
                if written.insert(digest.clone()) {
                    let f = self.open_blob(&digest)?;
                    let size = f.metadata().ctx(ctx)?.len();
                    tar_file(&mut tar, &format!("blobs/sha256/{}", digest.hex()), size, f)
                        .ctx(ctx)?;
                }
            }
            let media = image
                .manifest
                .media_type()
                .clone()
                .unwrap_or(MediaType::ImageManifest);
            let size = self.blob_size(&image.digest)?;
            let names: Vec<Option<&ImageRef>> = if image.names.is_empty() {
                vec![None]
            } else {
                image.names.iter().map(Some).collect()
            };
            for name in names {
                let mut d = DescriptorBuilder::default()
                    .media_type(media.clone())
                    .digest(image.digest.to_oci())
                    .size(size)
                    .build()
                    .expect("valid descriptor");
                if let Some(n) = name {
                    let mut a = HashMap::from([(IMAGE_NAME.to_string(), n.to_string())]);
                    if let Some(tag) = n.tag() {
                        a.insert(REF_NAME.to_string(), tag.to_string());
                    }
                    d.set_annotations(Some(a));
                }
                index.push(d);
            }
            docker.push(DockerManifestEntry {
                config: format!("blobs/sha256/{}", image.id.hex()),
                repo_tags: Some(image.names.iter().map(|n| n.familiar()).collect()),
                layers: layers
                    .iter()
                    .map(|l| format!("blobs/sha256/{}", l.blob.hex()))
                    .collect(),
            });
        }
        let index: ImageIndex = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(index)
            .build()
            .map_err(|e| ImageError::Invalid(e.to_string()))?;
        let files: [(&str, Vec<u8>); 3] = [
            ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
            (
                "index.json",
                serde_json::to_vec(&index).expect("serializes"),
            ),
            (
                "manifest.json",
                serde_json::to_vec(&docker).expect("serializes"),
            ),
        ];
        for (name, bytes) in files {
            tar_file(&mut tar, name, bytes.len() as u64, &bytes[..]).ctx(ctx)?;
        }
        tar.into_inner().ctx(ctx)?.flush().ctx(ctx)?;
        Ok(())
    }

    /// Reads an archive (OCI layout or docker-archive, plain or compressed) into the store.
    /// Every blob is verified and every layer unpacked before any name is set, so a bad
    /// archive leaves no half image behind.
    pub fn load(&self, reader: impl Read) -> Result<Vec<Loaded>, ImageError> {
        let _content = self.lock_content()?;
        let contents = self.read_archive(reader)?;
        let found = if let Some(bytes) = contents.json.get(Path::new("index.json")) {
            self.found_in_index(bytes)?
        } else if let Some(bytes) = contents.json.get(Path::new("manifest.json")) {
            self.found_in_docker_manifest(&contents, bytes)?
        } else {
            return Err(ImageError::Invalid(
                "not an image archive: it has neither index.json (OCI layout) nor manifest.json (docker save)".into(),
            ));
        };
        self.add_found(found)
    }

    /// Reads every entry of an archive: blobs into the store (verified where the path names
    /// a digest), JSON files into memory, links noted.
    fn read_archive(&self, reader: impl Read) -> Result<Contents, ImageError> {
        let reader = layer::decompress(reader).ctx(|| "reading the archive".into())?;
        let mut archive = tar::Archive::new(reader);
        let mut contents = Contents::default();
        for entry in archive.entries().map_err(bad)? {
            let mut entry = entry.map_err(bad)?;
            let path = entry.path().map_err(bad)?;
            let Some(path) = normalize(&path) else {
                continue;
            };
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    self.read_file(&mut contents, path, &mut entry)?;
                }
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    if let Some(target) = entry.link_name().map_err(bad)? {
                        let joined = if entry.header().entry_type() == tar::EntryType::Symlink {
                            path.parent().unwrap_or(Path::new("")).join(target)
                        } else {
                            target.into_owned()
                        };
                        if let Some(t) = normalize(&joined) {
                            contents.links.insert(path, t);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(contents)
    }

    /// One regular file of an archive: a blob, or JSON kept in memory.
    fn read_file<R: Read>(
        &self,
        contents: &mut Contents,
        path: PathBuf,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<(), ImageError> {
        let size = entry.header().size().map_err(bad)?;
        let blob_hex = path
            .strip_prefix("blobs/sha256")
            .ok()
            .and_then(|p| p.to_str())
            .map(str::to_string);
        if let Some(expected) = blob_hex.and_then(|h| Digest::from_str(&format!("sha256:{h}")).ok())
        {
            if !self.has_blob(&expected) {
                self.put_blob_from(entry, Some(&expected))?;
            }
            contents.files.insert(path, expected);
        } else if path.extension().is_some_and(|e| e == "json")
            || path == Path::new("oci-layout")
            || path == Path::new("repositories")
        {
            if size > MAX_JSON {
                return Err(ImageError::Invalid(format!(
                    "{} in the archive is too large ({size} bytes)",
                    path.display()
                )));
            }
            let mut bytes = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut bytes).map_err(bad)?;
            contents.json.insert(path, bytes);
        } else {
            let (digest, _) = self.put_blob_from(entry, None)?;
            contents.files.insert(path, digest);
        }
        Ok(())
    }

    /// The images an OCI layout's `index.json` names, an index narrowed to this host's
    /// platform; an image named twice is found once with both names.
    fn found_in_index(&self, bytes: &[u8]) -> Result<Vec<Found>, ImageError> {
        let mut found: Vec<Found> = Vec::new();
        let index: ImageIndex = serde_json::from_slice(bytes).map_err(|e| {
            ImageError::Invalid(format!("index.json in the archive is corrupt: {e}"))
        })?;
        for d in index.manifests() {
            let digest =
                Digest::from_oci(d.digest()).map_err(|e| ImageError::Invalid(e.to_string()))?;
            let annotations = d.annotations().clone().unwrap_or_default();
            let name = annotations
                .get(IMAGE_NAME)
                .or_else(|| {
                    annotations
                        .get(REF_NAME)
                        .filter(|n| n.contains(':') || n.contains('/'))
                })
                .and_then(|n| ImageRef::parse(n).ok());
            let (digest, media) = match d.media_type() {
                MediaType::ImageIndex => self.pick_platform(&digest)?,
                MediaType::Other(s) if s.contains("manifest.list") => {
                    self.pick_platform(&digest)?
                }
                m => (digest, m.to_string()),
            };
            match found.iter_mut().find(|(d, _, _)| *d == digest) {
                Some((_, _, names)) => names.extend(name),
                None => found.push((digest, media, name.into_iter().collect())),
            }
        }
        Ok(found)
    }

    /// The images a docker-archive's `manifest.json` lists, each given an OCI manifest
    /// (stored as a blob) made from its config and layers.
    fn found_in_docker_manifest(
        &self,
        contents: &Contents,
        bytes: &[u8],
    ) -> Result<Vec<Found>, ImageError> {
        let mut found: Vec<Found> = Vec::new();
        let entries: Vec<DockerManifestEntry> = serde_json::from_slice(bytes).map_err(|e| {
            ImageError::Invalid(format!("manifest.json in the archive is corrupt: {e}"))
        })?;
        for e in entries {
            let config_bytes = match contents
                .json
                .get(&normalize(Path::new(&e.config)).unwrap_or_default())
            {
                Some(b) => b.clone(),
                None => self.read_blob(&contents.lookup(&e.config)?)?,
            };
            let config_digest = self.put_blob(&config_bytes)?;
            let cfg: config::ImageConfig =
                serde_json::from_slice(&config_bytes).map_err(|err| {
                    ImageError::Invalid(format!(
                        "config {} in the archive is corrupt: {err}",
                        e.config
                    ))
                })?;
            let mut layer_descs = Vec::new();
            for l in &e.layers {
                layer_descs.push(self.docker_layer(contents, l)?);
            }
            if layer_descs.len() != cfg.rootfs.diff_ids.len() {
                return Err(ImageError::Invalid(format!(
                    "image {} in the archive lists {} layers but its config has {} diff_ids",
                    e.config,
                    layer_descs.len(),
                    cfg.rootfs.diff_ids.len()
                )));
            }
            let manifest = ImageManifestBuilder::default()
                .schema_version(2u32)
                .media_type(MediaType::ImageManifest)
                .config(
                    DescriptorBuilder::default()
                        .media_type(MediaType::Other(config::MEDIA_TYPE.into()))
                        .digest(config_digest.to_oci())
                        .size(config_bytes.len() as u64)
                        .build()
                        .expect("valid descriptor"),
                )
                .layers(layer_descs)
                .build()
                .map_err(|e| ImageError::Invalid(e.to_string()))?;
            let digest = self.put_blob(&serde_json::to_vec(&manifest).expect("serializes"))?;
            let names = e
                .repo_tags
                .unwrap_or_default()
                .iter()
                .map(|t| ImageRef::parse(t))
                .collect::<Result<Vec<_>, _>>()?;
            found.push((digest, OCI_MANIFEST.to_string(), names));
        }
        Ok(found)
    }

    /// The descriptor of a docker-archive layer, its media type sniffed from its first bytes.
    fn docker_layer(&self, contents: &Contents, l: &str) -> Result<Descriptor, ImageError> {
        let digest = contents.lookup(l)?;
        let mut head = [0u8; 4];
        let n = self
            .open_blob(&digest)?
            .read(&mut head)
            .ctx(|| format!("reading {l}"))?;
        let media = Compression::sniff(&head[..n]).layer_media_type();
        Ok(DescriptorBuilder::default()
            .media_type(media)
            .digest(digest.to_oci())
            .size(self.blob_size(&digest)?)
            .build()
            .expect("valid descriptor"))
    }

    /// Checks and unpacks each image found, then gives it its names.
    fn add_found(&self, found: Vec<Found>) -> Result<Vec<Loaded>, ImageError> {
        let mut loaded = Vec::new();
        for (digest, media, names) in found {
            if media != OCI_MANIFEST && media != DOCKER_MANIFEST {
                return Err(ImageError::Invalid(format!(
                    "{digest} in the archive is a {media}, not an image manifest"
                )));
            }
            let image = self.load_image(&digest, names.clone())?;
            for layer in image.layers()? {
                self.check_layer(&layer)?;
                self.ensure_snapshot(&layer)?;
            }
            let bytes = self.read_blob(&digest)?;
            self.add_image(&bytes, &media, &names)?;
            loaded.push(Loaded { image });
        }
        Ok(loaded)
    }

    fn check_layer(&self, layer: &LayerRef) -> Result<(), ImageError> {
        if !layer::is_layer_media_type(&layer.media_type) {
            return Err(ImageError::Invalid(format!(
                "layer {} has media type {}, which berth cannot unpack",
                layer.blob, layer.media_type
            )));
        }
        if !self.has_blob(&layer.blob) {
            return Err(ImageError::Store(crate::store::StoreError::MissingBlob(
                layer.blob.clone(),
            )));
        }
        Ok(())
    }

    /// From an image index in the store, the manifest for this host's platform.
    fn pick_platform(&self, index: &Digest) -> Result<(Digest, String), ImageError> {
        let bytes = self.read_blob(index)?;
        let index: ImageIndex = serde_json::from_slice(&bytes)
            .map_err(|e| ImageError::Invalid(format!("image index {index} is corrupt: {e}")))?;
        let (os, arch) = config::host_platform();
        let pick = index
            .manifests()
            .iter()
            .find(|d| {
                d.platform().as_ref().is_some_and(|p| {
                    p.os().to_string() == os && p.architecture().to_string() == arch
                })
            })
            .or(if index.manifests().len() == 1 {
                index.manifests().first()
            } else {
                None
            })
            .ok_or_else(|| {
                ImageError::Invalid(format!(
                    "the archive's image index has no manifest for {os}/{arch}"
                ))
            })?;
        Ok((
            Digest::from_oci(pick.digest()).map_err(|e| ImageError::Invalid(e.to_string()))?,
            pick.media_type().to_string(),
        ))
    }
}

/// A failure reading the archive's tar stream.
fn bad(e: io::Error) -> ImageError {
    // The tar crate quotes the bytes it could not parse; they mean nothing to a user.
    let e = e.to_string();
    let e = if e.contains('\n') || e.len() > 200 {
        "it is not a tar archive".to_string()
    } else {
        e
    };
    ImageError::Invalid(format!(
        "reading the archive: {e} (is it a `berth save` or `docker save` tarball?)"
    ))
}

/// An archive path without `./` or a leading `/`; `None` for one that climbs out.
fn normalize(p: &Path) -> Option<PathBuf> {
    layer::apply::clean(p).ok()
}
