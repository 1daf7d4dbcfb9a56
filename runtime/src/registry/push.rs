//! `push`: an image from the store to a registry.
//!
//! Each blob (config and layers, in parallel) is checked with `HEAD` first and skipped when
//! the repository has it; else mounted from another repository of the same registry that
//! berth knows holds it ([`sources`]); else uploaded, in one `PUT` when small or in `PATCH`
//! chunks with `Content-Range` when large. The manifest goes last, so the tag appears only
//! when everything it names is there, and a push cut half way finishes when run again.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use oci_spec::image::MediaType;
use ureq::http::Method;

use super::auth::{pull_scope, push_scope};
use super::client::{Client, Payload, Request, encode};
use super::credentials::login_for;
use super::{Event, Progress, RegistryError, RegistryOptions, Result, sources};
use crate::digest::Digest;
use crate::image::OCI_MANIFEST;
use crate::reference::ImageRef;
use crate::store::Store;

/// Blobs up to this size go in one `PUT`; larger ones in `PATCH` chunks of this size.
/// `BERTH_PUSH_CHUNK_SIZE` (bytes) overrides it.
pub const DEFAULT_CHUNK: u64 = 32 << 20;
/// Blobs uploaded at once.
const PARALLEL: usize = 4;

fn chunk_size() -> u64 {
    std::env::var("BERTH_PUSH_CHUNK_SIZE")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&v| v > 0)
        .unwrap_or(DEFAULT_CHUNK)
}

/// How to push.
pub struct PushOptions<'a> {
    /// Registry settings.
    pub registry: &'a RegistryOptions,
    /// Where progress goes.
    pub progress: &'a dyn Progress,
}

/// What a push did.
#[derive(Debug)]
pub struct Pushed {
    /// The name pushed.
    pub name: ImageRef,
    /// The manifest's digest.
    pub digest: Digest,
    /// The manifest's size.
    pub size: u64,
    /// Blobs uploaded (not already there, not mounted).
    pub uploaded: usize,
}

struct Blob {
    digest: Digest,
    size: u64,
}

/// Pushes the local image named `name` to the registry and repository the name says.
pub fn push(store: &Store, name: &ImageRef, opts: &PushOptions<'_>) -> Result<Pushed> {
    if name.digest().is_some() {
        return Err(RegistryError::Invalid {
            what: format!("pushing {name}"),
            reason: "a digest reference cannot be pushed: give NAME[:TAG]".into(),
        });
    }
    let _content = store.lock_content()?;
    let image = store.find_image(&name.to_string())?;
    let manifest_bytes = store.read_blob(&image.digest)?;
    let media_type = match image.manifest.media_type() {
        Some(MediaType::Other(s)) => s.clone(),
        Some(m) => m.to_string(),
        None => OCI_MANIFEST.to_string(),
    };
    let mut blobs = vec![Blob {
        digest: image.id.clone(),
        size: store.blob_size(&image.id)?,
    }];
    for l in image.layers()? {
        if !blobs.iter().any(|b| b.digest == l.blob) {
            blobs.push(Blob {
                digest: l.blob.clone(),
                size: store.blob_size(&l.blob)?,
            });
        }
    }

    let mounts = mount_sources(store, name, &blobs);
    let mut scopes = vec![push_scope(name.repository())];
    for repo in mounts.iter().flatten() {
        let s = pull_scope(repo);
        if !scopes.contains(&s) {
            scopes.push(s);
        }
    }
    let login = login_for(&opts.registry.docker_config, name.registry());
    let client = Client::connect(name.registry(), opts.registry, login, scopes)?;

    let uploaded = push_blobs(&client, store, name, &blobs, &mounts, opts.progress)?;
    put_manifest(&client, name, &image.digest, media_type, &manifest_bytes)?;
    let digests: Vec<Digest> = blobs.iter().map(|b| b.digest.clone()).collect();
    if let Err(e) = sources::record(store, &name.name(), &digests) {
        tracing::warn!("recording where the blobs went: {e}");
    }
    Ok(Pushed {
        name: name.clone(),
        digest: image.digest.clone(),
        size: manifest_bytes.len() as u64,
        uploaded,
    })
}

/// Repositories of the same registry that hold a blob: mount sources (one for each blob, or
/// none).
fn mount_sources(store: &Store, name: &ImageRef, blobs: &[Blob]) -> Vec<Option<String>> {
    let prefix = format!("{}/", name.registry());
    blobs
        .iter()
        .map(|b| {
            sources::holders(store, &b.digest)
                .into_iter()
                .rev()
                .filter_map(|n| n.strip_prefix(&prefix).map(str::to_string))
                .find(|repo| repo != name.repository())
        })
        .collect()
}

/// Pushes the blobs in parallel (each with its mount source); returns how many were uploaded.
fn push_blobs(
    client: &Client,
    store: &Store,
    name: &ImageRef,
    blobs: &[Blob],
    mounts: &[Option<String>],
    progress: &dyn Progress,
) -> Result<usize> {
    let next = AtomicUsize::new(0);
    let uploaded = AtomicUsize::new(0);
    let first_error: Mutex<Option<RegistryError>> = Mutex::new(None);
    let workers = PARALLEL.min(blobs.len()).max(1);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    if first_error.lock().expect("error lock").is_some() {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(blob) = blobs.get(i) else {
                        return;
                    };
                    match push_blob(client, store, name, blob, mounts[i].as_deref(), progress) {
                        Ok(true) => {
                            uploaded.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(false) => {}
                        Err(e) => {
                            first_error.lock().expect("error lock").get_or_insert(e);
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().expect("error lock") {
        return Err(e);
    }
    Ok(uploaded.into_inner())
}

/// Puts the manifest under the name's tag, checking the digest the registry stored it as.
fn put_manifest(
    client: &Client,
    name: &ImageRef,
    digest: &Digest,
    media_type: String,
    bytes: &[u8],
) -> Result<()> {
    let tag = name.tag().unwrap_or("latest");
    let what = format!("pushing the manifest of {}", name.familiar());
    let resp = client.send(
        Request::new(
            Method::PUT,
            format!("/v2/{}/manifests/{tag}", name.repository()),
        )
        .header("content-type", media_type)
        .payload(Payload::Bytes(bytes)),
    )?;
    if !matches!(resp.status().as_u16(), 200..=202) {
        return Err(client.error(resp, &what));
    }
    if let Some(d) = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<Digest>().ok())
        && &d != digest
    {
        return Err(RegistryError::DigestMismatch {
            what: format!(
                "the manifest of {} as the registry stored it",
                name.familiar()
            ),
            expected: digest.clone(),
            actual: d,
        });
    }
    Ok(())
}

/// The `Location` of a response, or an error naming what was being done.
fn location(
    client: &Client,
    resp: &ureq::http::Response<ureq::Body>,
    what: &str,
) -> Result<String> {
    resp.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(|l| client.url(l))
        .ok_or_else(|| RegistryError::Invalid {
            what: what.to_string(),
            reason: "the registry answered without a Location for the upload".into(),
        })
}

fn with_query(url: &str, k: &str, v: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{k}={}", encode(v))
}

/// Pushes one blob; returns whether it was uploaded (rather than found or mounted).
fn push_blob(
    client: &Client,
    store: &Store,
    name: &ImageRef,
    blob: &Blob,
    mount_from: Option<&str>,
    progress: &dyn Progress,
) -> Result<bool> {
    let repo = name.repository();
    let digest = &blob.digest;
    let what = format!(
        "pushing blob {} to {}",
        digest.short(),
        name.familiar_name()
    );
    progress.event(Event::Start {
        digest: digest.clone(),
        size: blob.size,
        action: "Pushing",
    });
    let done = |status: String| {
        progress.event(Event::Done {
            digest: digest.clone(),
            status,
        })
    };
    if repository_has(client, repo, digest, &what)? {
        done("Layer already exists".into());
        return Ok(false);
    }
    let url = match begin_upload(client, repo, digest, mount_from, &what)? {
        Begun::Mounted(from) => {
            done(format!("Mounted from {from}"));
            return Ok(false);
        }
        Begun::Session(url) => url,
    };
    let file = store.open_blob(digest)?;
    let sent = AtomicU64::new(0);
    let report = |n: u64| {
        let done = sent.fetch_add(n, Ordering::Relaxed) + n;
        progress.event(Event::Progress {
            digest: digest.clone(),
            done,
        });
    };
    let upload = Upload {
        client,
        blob,
        file: &file,
        what: &what,
        report: &report,
    };
    let chunk = chunk_size();
    if blob.size <= chunk {
        upload.whole(&url)?;
    } else {
        upload.chunks(url, chunk)?;
    }
    done("Pushed".into());
    Ok(true)
}

/// Whether the repository already has the blob (`HEAD`).
fn repository_has(client: &Client, repo: &str, digest: &Digest, what: &str) -> Result<bool> {
    let head = client.send(Request::new(
        Method::HEAD,
        format!("/v2/{repo}/blobs/{digest}"),
    ))?;
    match head.status().as_u16() {
        200 => Ok(true),
        404 => Ok(false),
        // The check is only a shortcut: a registry that cannot answer it (a blob's metadata
        // left half-written when it was killed answers 500, retries and all) gets the blob
        // uploaded, which writes that metadata again.
        s if (500..600).contains(&s) => {
            tracing::debug!("HEAD of {digest} answered {s}: uploading it");
            Ok(false)
        }
        _ => Err(client.error(head, what)),
    }
}

/// How an upload began.
enum Begun<'a> {
    /// The registry mounted the blob from this repository: nothing to send.
    Mounted(&'a str),
    /// An upload session at this URL.
    Session(String),
}

/// Mounts the blob from `mount_from` or, failing that, opens an upload session.
fn begin_upload<'a>(
    client: &Client,
    repo: &str,
    digest: &Digest,
    mount_from: Option<&'a str>,
    what: &str,
) -> Result<Begun<'a>> {
    let start = match mount_from {
        Some(from) => {
            let resp = client.send(Request::new(
                Method::POST,
                format!(
                    "/v2/{repo}/blobs/uploads/?mount={}&from={}",
                    encode(&digest.to_string()),
                    encode(from)
                ),
            ))?;
            match resp.status().as_u16() {
                201 => return Ok(Begun::Mounted(from)),
                202 => resp,
                _ => {
                    tracing::debug!("mount of {digest} from {from} refused ({})", resp.status());
                    client.send(Request::new(
                        Method::POST,
                        format!("/v2/{repo}/blobs/uploads/"),
                    ))?
                }
            }
        }
        None => client.send(Request::new(
            Method::POST,
            format!("/v2/{repo}/blobs/uploads/"),
        ))?,
    };
    if start.status() != 202 {
        return Err(client.error(start, what));
    }
    Ok(Begun::Session(location(client, &start, what)?))
}

/// A blob's bytes going to an upload session.
struct Upload<'a> {
    client: &'a Client,
    blob: &'a Blob,
    file: &'a std::fs::File,
    what: &'a str,
    /// Called with the bytes each request sent.
    report: &'a dyn Fn(u64),
}

impl Upload<'_> {
    /// The whole blob in one `PUT`.
    fn whole(&self, url: &str) -> Result<()> {
        let digest = &self.blob.digest;
        let resp = self.client.send(
            Request::new(Method::PUT, with_query(url, "digest", &digest.to_string()))
                .header("content-type", "application/octet-stream")
                .payload(Payload::File {
                    file: self.file,
                    offset: 0,
                    len: self.blob.size,
                }),
        )?;
        if resp.status() != 201 {
            return Err(self.client.error(resp, self.what));
        }
        (self.report)(self.blob.size);
        Ok(())
    }

    /// The blob in `PATCH` chunks of `chunk` bytes, each to the session's latest `Location`, then the `PUT`
    /// that closes it.
    fn chunks(&self, mut url: String, chunk: u64) -> Result<()> {
        let (client, what, size) = (self.client, self.what, self.blob.size);
        let mut offset = 0;
        while offset < size {
            let len = chunk.min(size - offset);
            let resp = client.send(
                Request::new(Method::PATCH, url.clone())
                    .header("content-type", "application/octet-stream")
                    .header("content-range", format!("{offset}-{}", offset + len - 1))
                    .payload(Payload::File {
                        file: self.file,
                        offset,
                        len,
                    }),
            )?;
            if resp.status() != 202 {
                return Err(client.error(resp, what));
            }
            url = location(client, &resp, what)?;
            offset += len;
            (self.report)(len);
        }
        let digest = &self.blob.digest;
        let resp = client.send(
            Request::new(Method::PUT, with_query(&url, "digest", &digest.to_string()))
                .payload(Payload::Empty),
        )?;
        if resp.status() != 201 {
            return Err(client.error(resp, what));
        }
        Ok(())
    }
}
