//! `pull`: an image from a registry into the store.
//!
//! The manifest is fetched (through an index or manifest list to the platform's manifest),
//! then the config, then the layers in parallel, each unpacked into its snapshot as soon as it
//! is in. A blob enters the store only when its digest is verified; a download that breaks
//! keeps its bytes in `tmp/partial-<hex>` and the next attempt (a retry, or the next `pull`)
//! continues with an HTTP `Range`. The name is set last, so nothing half-pulled is taggable
//! or runnable.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::Duration;

use backon::BackoffBuilder;
use oci_spec::image::{ImageIndex, ImageManifest};
use sha2::{Digest as _, Sha256};
use ureq::http::Method;

use super::auth::pull_scope;
use super::client::{Client, Request};
use super::credentials::login_for;
use super::platform::{self, Platform};
use super::{
    DOCKER_MANIFEST_LIST, Event, OCI_INDEX, Progress, RegistryError, RegistryOptions, Result,
    sources,
};
use crate::digest::Digest;
use crate::image::config::ImageConfig;
use crate::image::layer::{self, ApplyOptions, is_layer_media_type};
use crate::image::snapshot::extract_verified;
use crate::image::{DOCKER_MANIFEST, LayerRef, OCI_MANIFEST};
use crate::reference::ImageRef;
use crate::store::writeback::Writeback;
use crate::store::{IoContext, Store, atomic, lock, remove_tree};

/// Manifests larger than this are refused (the spec suggests 4 MiB).
const MAX_MANIFEST: u64 = 4 << 20;
/// Configs larger than this are refused.
const MAX_CONFIG: u64 = 32 << 20;
/// Layers downloaded at once.
const PARALLEL: usize = 4;

/// Every manifest media type berth accepts, for `Accept`.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// How to pull.
pub struct PullOptions<'a> {
    /// The platform to pick from an index; `None` for the host's (then WASI).
    pub platform: Option<Platform>,
    /// Registry settings.
    pub registry: &'a RegistryOptions,
    /// Where progress goes.
    pub progress: &'a dyn Progress,
}

/// What a pull did.
#[derive(Debug)]
pub struct Pulled {
    /// The name now pointing at the image.
    pub name: ImageRef,
    /// The manifest's digest.
    pub digest: Digest,
    /// The image id (config digest).
    pub id: Digest,
    /// The name already pointed at this image.
    pub up_to_date: bool,
    /// Blobs downloaded.
    pub downloaded: usize,
}

/// A manifest as fetched.
struct Fetched {
    bytes: Vec<u8>,
    media_type: String,
    digest: Digest,
}

fn media_type_of(bytes: &[u8], header: Option<&str>) -> String {
    let header = header
        .map(|h| h.split(';').next().unwrap_or(h).trim().to_string())
        .filter(|h| !h.is_empty() && h != "application/json" && h != "text/plain");
    header.unwrap_or_else(|| {
        #[derive(serde::Deserialize)]
        struct Probe {
            #[serde(rename = "mediaType")]
            media_type: Option<String>,
            manifests: Option<serde_json::Value>,
        }
        match serde_json::from_slice::<Probe>(bytes) {
            Ok(Probe {
                media_type: Some(m),
                ..
            }) => m,
            Ok(Probe {
                manifests: Some(_), ..
            }) => OCI_INDEX.to_string(),
            _ => OCI_MANIFEST.to_string(),
        }
    })
}

fn fetch_manifest(client: &Client, name: &ImageRef, reference: &str) -> Result<Fetched> {
    let repo = name.repository();
    let what = format!("fetching the manifest of {}", name.familiar());
    let mut resp = client.send(
        Request::new(Method::GET, format!("/v2/{repo}/manifests/{reference}"))
            .header("accept", ACCEPT),
    )?;
    match resp.status().as_u16() {
        200 => {}
        404 => {
            let body = resp
                .body_mut()
                .with_config()
                .limit(1 << 16)
                .read_to_vec()
                .unwrap_or_default();
            // Registries answer MANIFEST_UNKNOWN for a repository they do not have too;
            // its tag list tells the two apart.
            let unknown_repo = Client::error_code(&body) == "NAME_UNKNOWN"
                || client
                    .send(Request::new(Method::GET, format!("/v2/{repo}/tags/list")))
                    .is_ok_and(|r| r.status() == 404);
            return Err(if unknown_repo {
                RegistryError::UnknownRepository {
                    registry: name.registry().to_string(),
                    repository: repo.to_string(),
                }
            } else {
                RegistryError::UnknownManifest {
                    reference: name.familiar(),
                    repository: name.familiar_name(),
                }
            });
        }
        _ => return Err(client.error(resp, &what)),
    }
    let header = |k: &str| {
        resp.headers()
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header("content-type");
    let announced = header("docker-content-digest").and_then(|d| d.parse::<Digest>().ok());
    let bytes = resp
        .body_mut()
        .with_config()
        .limit(MAX_MANIFEST)
        .read_to_vec()
        .map_err(|e| RegistryError::Cut {
            what: what.clone(),
            cause: e.to_string(),
        })?;
    let digest = Digest::of(&bytes);
    let expected = if reference.starts_with("sha256:") {
        reference.parse::<Digest>().ok()
    } else {
        announced
    };
    if let Some(expected) = expected
        && expected != digest
    {
        return Err(RegistryError::DigestMismatch {
            what: format!("the manifest of {}", name.familiar()),
            expected,
            actual: digest,
        });
    }
    Ok(Fetched {
        media_type: media_type_of(&bytes, content_type.as_deref()),
        bytes,
        digest,
    })
}

/// Pulls `name` into the store.
pub fn pull(store: &Store, name: &ImageRef, opts: &PullOptions<'_>) -> Result<Pulled> {
    let login = login_for(&opts.registry.docker_config, name.registry());
    let client = Client::connect(
        name.registry(),
        opts.registry,
        login,
        vec![pull_scope(name.repository())],
    )?;
    // No garbage collection while blobs arrive that no image names yet.
    let _content = store.lock_content()?;
    let fetched = image_manifest(&client, name, opts.platform.as_ref())?;
    let named = fetch_config(&client, store, name, &fetched)?;
    let mut downloaded = named.downloaded;
    downloaded += fetch_layers(&client, store, name, &named.layers, opts.progress)?;

    // Last: the manifest, and the name.
    let up_to_date = store
        .find_image(&name.to_string())
        .is_ok_and(|i| i.digest == fetched.digest);
    let digest = store.add_image(
        &fetched.bytes,
        &fetched.media_type,
        std::slice::from_ref(name),
    )?;
    let Named { id, layers, .. } = named;
    let mut blobs: Vec<Digest> = layers.iter().map(|l| l.blob.clone()).collect();
    blobs.push(id.clone());
    if let Err(e) = sources::record(store, &name.name(), &blobs) {
        tracing::warn!("recording where the blobs came from: {e}");
    }
    Ok(Pulled {
        name: name.clone(),
        digest,
        id,
        up_to_date,
        downloaded,
    })
}

/// The image manifest `name` points at, through an index or manifest list to the one for
/// `platform`.
fn image_manifest(
    client: &Client,
    name: &ImageRef,
    platform: Option<&Platform>,
) -> Result<Fetched> {
    let reference = name.digest().or(name.tag()).unwrap_or("latest").to_string();
    let mut fetched = fetch_manifest(client, name, &reference)?;
    if fetched.media_type == OCI_INDEX || fetched.media_type == DOCKER_MANIFEST_LIST {
        let index: ImageIndex =
            serde_json::from_slice(&fetched.bytes).map_err(|e| RegistryError::Invalid {
                what: format!("the image index of {}", name.familiar()),
                reason: e.to_string(),
            })?;
        let pick = platform::select(&index, platform, &name.familiar())?;
        let digest = pick.digest().to_string();
        fetched = fetch_manifest(client, name, &digest)?;
    } else if fetched
        .media_type
        .starts_with("application/vnd.docker.distribution.manifest.v1")
    {
        return Err(RegistryError::Invalid {
            what: format!("the manifest of {}", name.familiar()),
            reason: "it is a Docker schema 1 manifest, which berth does not support (push the image again with a current tool)".into(),
        });
    }
    if fetched.media_type != OCI_MANIFEST && fetched.media_type != DOCKER_MANIFEST {
        return Err(RegistryError::Invalid {
            what: format!("the manifest of {}", name.familiar()),
            reason: format!("its media type {} is not an image", fetched.media_type),
        });
    }
    Ok(fetched)
}

/// What an image manifest names, checked against its config.
struct Named {
    /// The image id (config digest).
    id: Digest,
    /// The layers, each with its diff_id from the config.
    layers: Vec<LayerRef>,
    /// Blobs downloaded for it (the config, unless the store had it).
    downloaded: usize,
}

/// Parses an image manifest and brings its config into the store.
fn fetch_config(
    client: &Client,
    store: &Store,
    name: &ImageRef,
    fetched: &Fetched,
) -> Result<Named> {
    let manifest: ImageManifest =
        serde_json::from_slice(&fetched.bytes).map_err(|e| RegistryError::Invalid {
            what: format!("the manifest of {}", name.familiar()),
            reason: e.to_string(),
        })?;
    let invalid = |reason: String| RegistryError::Invalid {
        what: format!("the manifest of {}", name.familiar()),
        reason,
    };
    let id = Digest::from_oci(manifest.config().digest()).map_err(|e| invalid(e.to_string()))?;

    // The config first: it names the layers' diff_ids.
    let mut downloaded = 0;
    let config_bytes = if store.has_blob(&id) {
        store.read_blob(&id)?
    } else {
        let bytes = fetch_small_blob(client, name, &id, MAX_CONFIG)?;
        store.put_blob(&bytes)?;
        downloaded += 1;
        bytes
    };
    let config: ImageConfig = serde_json::from_slice(&config_bytes)
        .map_err(|e| invalid(format!("its config {id} is corrupt: {e}")))?;
    if manifest.layers().len() != config.rootfs.diff_ids.len() {
        return Err(invalid(format!(
            "it lists {} layers but its config has {} diff_ids",
            manifest.layers().len(),
            config.rootfs.diff_ids.len()
        )));
    }
    let mut layers = Vec::new();
    for (d, diff_id) in manifest.layers().iter().zip(&config.rootfs.diff_ids) {
        if !is_layer_media_type(d.media_type()) {
            return Err(invalid(format!(
                "layer {} has media type {}, which berth cannot unpack",
                d.digest(),
                d.media_type()
            )));
        }
        layers.push(LayerRef {
            blob: Digest::from_oci(d.digest()).map_err(|e| invalid(e.to_string()))?,
            diff_id: diff_id.clone(),
            size: d.size(),
            media_type: d.media_type().clone(),
        });
    }
    Ok(Named {
        id,
        layers,
        downloaded,
    })
}

/// Layers: fetched in parallel, each unpacked as soon as it is in; returns how many blobs
/// were downloaded.
fn fetch_layers(
    client: &Client,
    store: &Store,
    name: &ImageRef,
    layers: &[LayerRef],
    progress: &dyn Progress,
) -> Result<usize> {
    let fetch = LayerFetch {
        client,
        store,
        name,
        progress,
        next: AtomicUsize::new(0),
        fetched: AtomicUsize::new(0),
        first_error: Mutex::new(None),
        pending: Mutex::new(Vec::new()),
    };
    // Each blob once: a blob listed twice would wait on its own download lock.
    let mut seen = std::collections::HashSet::new();
    let unique: Vec<&LayerRef> = layers.iter().filter(|l| seen.insert(&l.blob)).collect();
    let workers = PARALLEL.min(unique.len()).max(1);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| fetch.worker(&unique));
        }
    });
    // What arrived whole goes into place even when another layer failed: the next pull
    // will not fetch it again.
    let finished = finish(store, fetch.pending.into_inner().expect("pending lock"));
    if let Some(e) = fetch.first_error.into_inner().expect("error lock") {
        return Err(e);
    }
    finished?;
    Ok(fetch.fetched.into_inner())
}

/// The layers of one pull, shared by the threads that fetch them.
struct LayerFetch<'a> {
    client: &'a Client,
    store: &'a Store,
    name: &'a ImageRef,
    progress: &'a dyn Progress,
    /// The index of the next layer to take.
    next: AtomicUsize,
    /// Blobs downloaded.
    fetched: AtomicUsize,
    /// The first failure; the other threads stop at their next layer.
    first_error: Mutex<Option<RegistryError>>,
    /// Blobs unpacked as they arrived, waiting for [`finish`].
    pending: Mutex<Vec<Pending>>,
}

impl LayerFetch<'_> {
    /// One thread: takes layers until none is left or one failed.
    fn worker(&self, unique: &[&LayerRef]) {
        loop {
            if self.first_error.lock().expect("error lock").is_some() {
                return;
            }
            let i = self.next.fetch_add(1, Ordering::SeqCst);
            let Some(&layer) = unique.get(i) else {
                return;
            };
            if let Err(e) = self.layer(layer) {
                self.first_error
                    .lock()
                    .expect("error lock")
                    .get_or_insert(e);
                return;
            }
        }
    }

    /// One layer: downloaded unless the store has it, and unpacked.
    fn layer(&self, layer: &LayerRef) -> Result<()> {
        let store = self.store;
        let present = store.has_blob(&layer.blob);
        self.progress.event(Event::Start {
            digest: layer.blob.clone(),
            size: layer.size,
            action: if present { "Extracting" } else { "Downloading" },
        });
        let had_snapshot = store.snapshot_path(&layer.diff_id).is_dir();
        let mut unpacked = false;
        if !present {
            if let Some(p) = download_blob(self.client, store, self.name, layer, self.progress)? {
                self.pending.lock().expect("pending lock").push(p);
                unpacked = true;
            }
            self.fetched.fetch_add(1, Ordering::SeqCst);
        }
        if !unpacked {
            store.ensure_snapshot(layer)?;
        }
        self.progress.event(Event::Done {
            digest: layer.blob.clone(),
            status: if present && had_snapshot {
                "Already exists".into()
            } else {
                "Pull complete".into()
            },
        });
        Ok(())
    }
}

/// A small blob (a config) into memory, verified.
fn fetch_small_blob(
    client: &Client,
    name: &ImageRef,
    digest: &Digest,
    limit: u64,
) -> Result<Vec<u8>> {
    let what = format!("fetching blob {digest} of {}", name.familiar());
    let mut resp = client.send(Request::new(
        Method::GET,
        format!("/v2/{}/blobs/{digest}", name.repository()),
    ))?;
    if resp.status() != 200 {
        return Err(client.error(resp, &what));
    }
    let bytes = resp
        .body_mut()
        .with_config()
        .limit(limit)
        .read_to_vec()
        .map_err(|e| RegistryError::Cut {
            what: what.clone(),
            cause: e.to_string(),
        })?;
    let actual = Digest::of(&bytes);
    if &actual != digest {
        return Err(RegistryError::DigestMismatch {
            what: format!("blob {digest} of {}", name.familiar()),
            expected: digest.clone(),
            actual,
        });
    }
    Ok(bytes)
}

/// Where a download in progress keeps its bytes, so the next attempt resumes it.
pub fn partial_path(store: &Store, digest: &Digest) -> PathBuf {
    store.tmp_dir().join(format!("partial-{}", digest.hex()))
}

fn io_err(what: &str) -> impl Fn(io::Error) -> RegistryError + '_ {
    move |cause| RegistryError::Io {
        context: what.to_string(),
        cause,
    }
}

/// Downloads a layer blob into the store, resuming a partial download, verifying the digest.
fn download_blob(
    client: &Client,
    store: &Store,
    name: &ImageRef,
    layer: &LayerRef,
    progress: &dyn Progress,
) -> Result<Option<Pending>> {
    let digest = &layer.blob;
    let what = format!(
        "downloading layer {} of {}",
        digest.short(),
        name.familiar()
    );
    let path = partial_path(store, digest);
    let lock_path = path.with_extension("lock");
    // Another process fetching the same blob: wait for it, then use its result.
    let guard =
        match lock::try_exclusive(&lock_path).ctx(|| format!("locking {}", lock_path.display()))? {
            Some(g) => g,
            None => {
                let g = lock::exclusive(&lock_path)
                    .ctx(|| format!("locking {}", lock_path.display()))?;
                if store.has_blob(digest) {
                    return Ok(None);
                }
                g
            }
        };
    let (file, hasher, have) = open_partial(&path, layer, &what)?;
    let mut download = Download {
        client,
        name,
        layer,
        progress,
        what,
        path,
        lock_path,
        guard: Some(guard),
        file,
        hasher,
        have,
    };
    // A download from the first byte is unpacked as it arrives, through a channel to a thread
    // (the snapshot is kept only if the whole transfer went through in one piece and both
    // digests check out); anything else is unpacked from the stored blob afterwards.
    let stream = have == 0 && !store.snapshot_path(&layer.diff_id).is_dir();
    let (chunks_in, chunks_out) = std::sync::mpsc::sync_channel::<Vec<u8>>(16);
    std::thread::scope(|s| {
        let reader = ChunkReader {
            chunks: chunks_out,
            current: Vec::new(),
            pos: 0,
        };
        let unpacker = stream.then(|| s.spawn(move || unpack_stream(store, reader)));
        let mut tee = unpacker.as_ref().map(|_| chunks_in);
        let outcome = download.fetch_all(&mut tee);
        let streamed = tee.is_some();
        drop(tee);
        let unpacked = unpacker.map(|h| h.join().unwrap_or(Err(None)));
        download.conclude(store, outcome, streamed, unpacked)
    })
}

/// Opens the partial file of a download: its bytes so far (none if there are more than the
/// blob's size) and their hash.
fn open_partial(path: &Path, layer: &LayerRef, what: &str) -> Result<(File, Sha256, u64)> {
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .map_err(io_err(what))?;
    let mut hasher = Sha256::new();
    let mut have = file.metadata().map_err(io_err(what))?.len();
    if have > layer.size {
        file.set_len(0).map_err(io_err(what))?;
        have = 0;
    }
    if have > 0 {
        // Hash what an earlier attempt left, then continue after it.
        file.rewind().map_err(io_err(what))?;
        let mut buf = vec![0u8; 1 << 20];
        let mut left = have;
        while left > 0 {
            let n = file.read(&mut buf).map_err(io_err(what))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            left -= n as u64;
        }
        tracing::debug!("resuming {} at {have} of {} bytes", layer.blob, layer.size);
    }
    Ok((file, hasher, have))
}

/// What a layer's unpacker thread ends with: the folder under `tmp/` and the diff_id, or the
/// folder to remove.
type Unpacked = Result<(PathBuf, Digest), Option<PathBuf>>;

/// One layer blob's download into its partial file, under its download lock.
struct Download<'a> {
    client: &'a Client,
    name: &'a ImageRef,
    layer: &'a LayerRef,
    progress: &'a dyn Progress,
    /// What is being done, for errors.
    what: String,
    /// The partial file.
    path: PathBuf,
    /// The download lock's file.
    lock_path: PathBuf,
    guard: Option<lock::LockGuard>,
    file: File,
    /// The hash of the bytes so far.
    hasher: Sha256,
    /// Bytes so far.
    have: u64,
}

impl Download<'_> {
    /// Fetches the rest of the blob, retrying with backoff; `tee` is dropped at the first
    /// failed attempt (the blob is then unpacked from the store).
    fn fetch_all(&mut self, tee: &mut Option<SyncSender<Vec<u8>>>) -> Result<()> {
        let size = self.layer.size;
        let mut backoff = super::client::backoff().with_max_times(5).build();
        loop {
            if self.have == size && size > 0 {
                break Ok(());
            }
            let attempt = self.fetch_range(tee);
            if attempt.is_err() {
                *tee = None;
            }
            match attempt {
                Ok(()) => break Ok(()),
                Err(Attempt::Fatal(e)) => break Err(e),
                Err(Attempt::Restart) => {
                    if let Err(e) = self.file.set_len(0) {
                        break Err(io_err(&self.what)(e));
                    }
                    self.hasher = Sha256::new();
                    self.have = 0;
                }
                Err(Attempt::Transient(cause)) => match backoff.next() {
                    Some(delay) => {
                        tracing::debug!("{}: {cause}; retrying in {delay:?}", self.what);
                        std::thread::sleep(delay.min(Duration::from_secs(8)));
                    }
                    None => {
                        break Err(RegistryError::Cut {
                            what: self.what.clone(),
                            cause,
                        });
                    }
                },
            }
        }
    }

    /// Verifies what arrived and stores it: as a [`Pending`] with the snapshot streamed from
    /// it, or else renamed into place.
    fn conclude(
        mut self,
        store: &Store,
        outcome: Result<()>,
        streamed: bool,
        unpacked: Option<Unpacked>,
    ) -> Result<Option<Pending>> {
        let digest = &self.layer.blob;
        let actual: Digest = format!("sha256:{}", hex::encode(self.hasher.finalize()))
            .parse()
            .expect("a sha256 digest");
        let discard = |u: Option<Unpacked>| {
            if let Some(Ok((tmp, _)) | Err(Some(tmp))) = u {
                let _ = remove_tree(&tmp);
            }
        };
        if let Err(e) = outcome {
            discard(unpacked);
            return Err(e);
        }
        if &actual != digest {
            discard(unpacked);
            let _ = std::fs::remove_file(&self.path);
            let _ = std::fs::remove_file(&self.lock_path);
            return Err(RegistryError::DigestMismatch {
                what: format!("layer {} of {}", digest, self.name.familiar()),
                expected: digest.clone(),
                actual,
            });
        }
        match unpacked {
            Some(Ok((tmp, diff_id))) if streamed && diff_id == self.layer.diff_id => {
                // Blob and snapshot go into place in [`finish`], after one sync for the pull.
                return Ok(Some(Pending {
                    partial: self.path.clone(),
                    lock: self.lock_path.clone(),
                    blob: digest.clone(),
                    snapshot: (tmp, diff_id),
                    _guard: self.guard.take(),
                }));
            }
            other => discard(other),
        }
        let what = &self.what;
        self.file.sync_all().map_err(io_err(what))?;
        atomic::rename_durable(&self.path, &store.blob_path(digest)).map_err(io_err(what))?;
        let _ = std::fs::remove_file(&self.lock_path);
        Ok(None)
    }
}

/// A verified blob and its unpacked snapshot, both still under `tmp/`, waiting for [`finish`];
/// the blob's download lock is held until then.
struct Pending {
    partial: PathBuf,
    lock: PathBuf,
    blob: Digest,
    snapshot: (PathBuf, Digest),
    _guard: Option<lock::LockGuard>,
}

/// Moves verified blobs and their snapshots into place: one `syncfs` makes all of them durable
/// first (rather than an fsync per blob and a syncfs per snapshot), then each is renamed, and
/// the two folders are synced once.
fn finish(store: &Store, pending: Vec<Pending>) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let what = "storing the downloaded layers";
    #[cfg(unix)]
    {
        let root = File::open(store.root()).map_err(io_err(what))?;
        rustix::fs::syncfs(&root)
            .map_err(io::Error::from)
            .map_err(io_err(what))?;
    }
    // No syncfs elsewhere: each blob on its own.
    #[cfg(not(unix))]
    for p in &pending {
        File::open(&p.partial)
            .and_then(|f| f.sync_all())
            .map_err(io_err(what))?;
    }
    for p in &pending {
        let target = store.blob_path(&p.blob);
        if let Err(e) = std::fs::rename(&p.partial, &target)
            && !target.is_file()
        {
            return Err(io_err(what)(e));
        }
        let (tmp, diff_id) = &p.snapshot;
        let snapshot = store.snapshot_path(diff_id);
        if std::fs::rename(tmp, &snapshot).is_err() {
            // Another process made the same snapshot first: theirs is as good.
            let _ = remove_tree(tmp);
        }
    }
    for dir in [store.root().join("blobs/sha256"), store.snapshots_dir()] {
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(what))?;
    }
    for p in pending {
        let _ = std::fs::remove_file(&p.lock);
    }
    Ok(())
}

/// The reading end of the chunks a download hands to its unpacker (in memory: no pipe, no
/// copies through the kernel).
struct ChunkReader {
    chunks: Receiver<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            match self.chunks.recv() {
                Ok(c) => {
                    self.current = c;
                    self.pos = 0;
                }
                // The download ended (or gave up): end of stream.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Unpacks a layer stream into a new folder under `tmp/`; returns it with the diff_id, or the
/// folder to remove on failure (the caller unpacks from the stored blob instead).
fn unpack_stream(store: &Store, reader: ChunkReader) -> Result<(PathBuf, Digest), Option<PathBuf>> {
    let tmp = store.temp_path("snapshot");
    if std::fs::create_dir(&tmp).is_err() {
        return Err(None);
    }
    let result = layer::decompress(reader)
        .map_err(|_| ())
        .and_then(|r| extract_verified(r, &tmp, &ApplyOptions::default()).map_err(|_| ()));
    match result {
        Ok(diff_id) => Ok((tmp, diff_id)),
        Err(()) => Err(Some(tmp)),
    }
}

enum Attempt {
    Fatal(RegistryError),
    Restart,
    Transient(String),
}

impl Download<'_> {
    /// One request for the bytes after those the partial file has, written to it (and to
    /// `tee` while there is one) as they arrive.
    fn fetch_range(&mut self, tee: &mut Option<SyncSender<Vec<u8>>>) -> Result<(), Attempt> {
        let mut resp = self.request(tee)?;
        let mut reader = resp.body_mut().with_config().limit(u64::MAX).reader();
        let (name, digest, size) = (self.name, &self.layer.blob, self.layer.size);
        // The blob is made durable once complete: its writeback starts as it arrives.
        let mut file = Writeback::new(&mut self.file, self.have);
        let mut buf = vec![0u8; 256 << 10];
        let mut last_report = self.have;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Attempt::Transient(e.to_string())),
            };
            if self.have + n as u64 > size {
                return Err(Attempt::Fatal(RegistryError::Invalid {
                    what: format!("layer {digest} of {}", name.familiar()),
                    reason: format!("the registry sent more than its {size} bytes"),
                }));
            }
            file.write_all(&buf[..n])
                .map_err(|e| Attempt::Fatal(io_fatal(e)))?;
            if let Some(w) = tee.as_mut()
                && w.send(buf[..n].to_vec()).is_err()
            {
                // The unpacker gave up; the blob is unpacked from the store afterwards.
                *tee = None;
            }
            self.hasher.update(&buf[..n]);
            self.have += n as u64;
            if self.have - last_report >= 1 << 20 {
                last_report = self.have;
                self.progress.event(Event::Progress {
                    digest: digest.clone(),
                    done: self.have,
                });
            }
        }
        file.finish();
        self.progress.event(Event::Progress {
            digest: digest.clone(),
            done: self.have,
        });
        if self.have < size {
            return Err(Attempt::Transient(format!(
                "the body ended after {} of {size} bytes",
                self.have
            )));
        }
        Ok(())
    }

    /// Asks for the blob from the byte after those the partial file has; a server that
    /// ignores the range sends it whole, and the partial file starts over.
    fn request(
        &mut self,
        tee: &mut Option<SyncSender<Vec<u8>>>,
    ) -> Result<ureq::http::Response<ureq::Body>, Attempt> {
        let (client, name, digest) = (self.client, self.name, &self.layer.blob);
        let have = self.have;
        let mut req = Request::new(
            Method::GET,
            format!("/v2/{}/blobs/{digest}", name.repository()),
        );
        if have > 0 {
            tracing::debug!("resuming the download of {digest} from byte {have}");
            req = req.header("range", format!("bytes={have}-"));
        }
        let resp = match client.send(req) {
            Ok(r) => r,
            Err(e @ RegistryError::Unreachable { .. }) => {
                return Err(Attempt::Transient(e.to_string()));
            }
            Err(e) => return Err(Attempt::Fatal(e)),
        };
        match resp.status().as_u16() {
            200 if have > 0 => {
                // The server ignored the range: start over with this body.
                *tee = None;
                self.file
                    .set_len(0)
                    .map_err(|e| Attempt::Fatal(io_fatal(e)))?;
                self.hasher = Sha256::new();
                self.have = 0;
            }
            200 | 206 => {}
            416 => return Err(Attempt::Restart),
            404 => {
                return Err(Attempt::Fatal(RegistryError::Invalid {
                    what: format!("layer {digest} of {}", name.familiar()),
                    reason:
                        "the registry does not have it (blob unknown), though the manifest names it"
                            .into(),
                }));
            }
            _ => {
                return Err(Attempt::Fatal(client.error(
                    resp,
                    &format!(
                        "downloading layer {} of {}",
                        digest.short(),
                        name.familiar()
                    ),
                )));
            }
        }
        Ok(resp)
    }
}

fn io_fatal(cause: io::Error) -> RegistryError {
    RegistryError::Io {
        context: "writing a download to the store".into(),
        cause,
    }
}

/// The tags of a repository (`GET /v2/NAME/tags/list`), for `pull --all-tags`.
pub fn list_tags(name: &ImageRef, registry: &RegistryOptions) -> Result<Vec<String>> {
    let login = login_for(&registry.docker_config, name.registry());
    let client = Client::connect(
        name.registry(),
        registry,
        login,
        vec![pull_scope(name.repository())],
    )?;
    let what = format!("listing the tags of {}", name.familiar_name());
    let mut resp = client.send(Request::new(
        Method::GET,
        format!("/v2/{}/tags/list", name.repository()),
    ))?;
    if resp.status() == 404 {
        return Err(RegistryError::UnknownRepository {
            registry: name.registry().to_string(),
            repository: name.repository().to_string(),
        });
    }
    if resp.status() != 200 {
        return Err(client.error(resp, &what));
    }
    #[derive(serde::Deserialize)]
    struct Tags {
        #[serde(default)]
        tags: Option<Vec<String>>,
    }
    let tags: Tags = serde_json::from_slice(
        &resp
            .body_mut()
            .with_config()
            .limit(MAX_MANIFEST)
            .read_to_vec()
            .map_err(|e| RegistryError::Cut {
                what: what.clone(),
                cause: e.to_string(),
            })?,
    )
    .map_err(|e| RegistryError::Invalid {
        what,
        reason: e.to_string(),
    })?;
    Ok(tags.tags.unwrap_or_default())
}
