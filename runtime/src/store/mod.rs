//! The store: one root folder holding an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/…`) that skopeo and umoci read as it is, beside berth's own folders
//! (`snapshots/` for unpacked layers, `tmp/` for writes in progress, `locks/`).
//!
//! Every blob is verified against its digest as it enters; every write is atomic; concurrent
//! processes coordinate through [`lock`]; leftovers of a crash are removed by the next process
//! that finds the store idle.

pub mod atomic;
pub mod lock;
pub mod runroot;
pub mod writeback;

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageIndex, ImageIndexBuilder, MediaType};

use crate::digest::{Digest, HashingWriter};
pub use lock::LockGuard;

/// The annotation that names an image in `index.json`: berth writes the full normalized
/// reference (`docker.io/library/busybox:latest`), so `skopeo … oci:ROOT:docker.io/library/busybox:latest` works.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O failure, with what was being done.
    #[error("{context}: {cause}")]
    Io {
        /// What berth was doing.
        context: String,
        /// The underlying error.
        cause: io::Error,
    },
    /// A blob's content did not hash to the digest it was announced with.
    #[error(
        "blob digest mismatch: expected {expected}, got {actual} (the source is corrupt or was cut short; nothing was stored)"
    )]
    DigestMismatch {
        /// The announced digest.
        expected: Digest,
        /// What the content hashed to.
        actual: Digest,
    },
    /// A blob the store needs is not there.
    #[error(
        "blob {0} is missing from the store: pull, load or import its image again, or remove the image (`berth rmi IMAGE`; `berth system prune` removes every image whose manifest or config is missing)"
    )]
    MissingBlob(Digest),
    /// A file in the store could not be parsed.
    #[error("{what} is corrupt: {reason}")]
    Corrupt {
        /// Which file.
        what: String,
        /// Why it was rejected.
        reason: String,
    },
}

/// Shorthand for store results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Adds context to I/O errors.
pub trait IoContext<T> {
    /// Wraps the error with a description of what was being done.
    fn ctx(self, f: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, f: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|cause| StoreError::Io {
            context: f(),
            cause,
        })
    }
}

/// A berth root folder.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    /// Chosen when first needed (see [`runroot`]).
    run_root: std::sync::OnceLock<runroot::RunRoot>,
}

impl Store {
    /// The default root: `/var/lib/berth` for root, else `$XDG_DATA_HOME/berth`
    /// (`~/.local/share/berth`).
    pub fn default_root() -> PathBuf {
        #[cfg(unix)]
        if rustix::process::geteuid().is_root() {
            return PathBuf::from("/var/lib/berth");
        }
        if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
            return PathBuf::from(x).join("berth");
        }
        let home = std::env::var_os("HOME")
            .or_else(|| std::env::var_os("USERPROFILE"))
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        home.join(".local/share/berth")
    }

    /// Opens the store at `root`, creating its layout if needed and, when no other process is
    /// using it, removing what an interrupted process left behind.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let store = Store {
            root: root.into(),
            run_root: std::sync::OnceLock::new(),
        };
        store.make_layout()?;
        let layout = store.root.join("oci-layout");
        if !layout.exists() {
            store.write_file(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        if !store.index_path().exists() {
            let _g = store.lock_index()?;
            if !store.index_path().exists() {
                store.write_index(&empty_index())?;
            }
        }
        store.clean_leftovers()?;
        Ok(store)
    }

    /// Makes the store's folders, each with its mode, looking at each once when it is there
    /// already (every command opens the store).
    ///
    /// The modes keep other host users out: layers and containers' writable layers hold
    /// setuid files and device nodes that must not work for them (Docker's CVE-2021-41091).
    /// The root can be traversed (a `--userns` container's root must reach its own folder) but
    /// not listed.
    fn make_layout(&self) -> Result<()> {
        let dirs: [(PathBuf, Option<u32>); 7] = [
            (self.root.clone(), Some(0o711)),
            (self.root.join("blobs/sha256"), None),
            (self.tmp_dir(), Some(0o700)),
            (self.root.join("locks"), None),
            (self.snapshots_dir(), Some(0o700)),
            (self.root.join("containers"), Some(0o711)),
            (self.root.join("volumes"), Some(0o711)),
        ];
        for (dir, mode) in dirs {
            let meta = match fs::metadata(&dir) {
                Ok(m) if m.is_dir() => m,
                _ => {
                    fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
                    fs::metadata(&dir).ctx(|| format!("reading {}", dir.display()))?
                }
            };
            #[cfg(unix)]
            if let Some(mode) = mode {
                use std::os::unix::fs::{MetadataExt, PermissionsExt};
                let me = rustix::process::geteuid().as_raw();
                if meta.uid() == me && meta.mode() & 0o7777 != mode {
                    fs::set_permissions(&dir, fs::Permissions::from_mode(mode))
                        .ctx(|| format!("securing {}", dir.display()))?;
                }
            }
            #[cfg(not(unix))]
            let _ = (meta, mode);
        }
        Ok(())
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder for what containers need only while the machine is up (see [`runroot`]).
    pub fn run_root(&self) -> &Path {
        &self.run_root_info().path
    }

    /// Whether the run root is emptied at every boot (it is on a tmpfs).
    pub fn run_root_is_volatile(&self) -> bool {
        self.run_root_info().volatile
    }

    fn run_root_info(&self) -> &runroot::RunRoot {
        self.run_root.get_or_init(|| runroot::choose(&self.root))
    }

    /// Where writes in progress are staged (same filesystem as everything else).
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Where unpacked layer snapshots live.
    pub fn snapshots_dir(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    /// `index.json`.
    pub fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    /// The path of a blob.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// Whether a blob is present.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Holds off garbage collection while content is added or used; see [`lock`].
    pub fn lock_content(&self) -> Result<LockGuard> {
        let p = self.root.join("locks/gc.lock");
        lock::shared(&p).ctx(|| format!("locking {}", p.display()))
    }

    /// Excludes every other user of content, for garbage collection.
    pub fn lock_gc(&self) -> Result<LockGuard> {
        let p = self.root.join("locks/gc.lock");
        lock::exclusive(&p).ctx(|| format!("locking {}", p.display()))
    }

    fn lock_index(&self) -> Result<LockGuard> {
        let p = self.root.join("locks/index.lock");
        lock::exclusive(&p).ctx(|| format!("locking {}", p.display()))
    }

    /// Writes a file of the store atomically.
    pub fn write_file(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        atomic::write_atomic(&self.tmp_dir(), path, bytes)
            .ctx(|| format!("writing {}", path.display()))
    }

    /// Writes a file of the store atomically, without waiting for the disk (see
    /// [`atomic::write_atomic_unsynced`]).
    pub fn write_file_unsynced(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        atomic::write_atomic_unsynced(&self.tmp_dir(), path, bytes)
            .ctx(|| format!("writing {}", path.display()))
    }

    /// A new unique path under `tmp/`.
    pub fn temp_path(&self, hint: &str) -> PathBuf {
        atomic::temp_path(&self.tmp_dir(), hint)
    }

    /// Stores `bytes` as a blob and returns its digest.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of(bytes);
        if !self.has_blob(&digest) {
            self.write_file(&self.blob_path(&digest), bytes)?;
        }
        Ok(digest)
    }

    /// Streams a blob into the store. With `expected`, the content must hash to it or nothing
    /// is stored. Returns the digest and size.
    pub fn put_blob_from(
        &self,
        reader: &mut dyn Read,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64)> {
        let mut writer = self.blob_writer()?;
        io::copy(reader, &mut writer).ctx(|| match expected {
            Some(d) => format!("copying blob {d}"),
            None => "copying blob".to_string(),
        })?;
        writer.commit(expected)
    }

    /// A writer whose content becomes a blob on [`BlobWriter::commit`].
    pub fn blob_writer(&self) -> Result<BlobWriter> {
        let path = self.temp_path("blob");
        let file = File::create(&path).ctx(|| format!("creating {}", path.display()))?;
        Ok(BlobWriter {
            store: self.clone(),
            path,
            inner: Some(HashingWriter::new(io::BufWriter::with_capacity(
                1 << 20,
                file,
            ))),
        })
    }

    /// Opens a blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        File::open(self.blob_path(digest)).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::MissingBlob(digest.clone()),
            _ => StoreError::Io {
                context: format!("opening blob {digest}"),
                cause: e,
            },
        })
    }

    /// Reads a whole (small) blob, verifying its digest.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.open_blob(digest)?
            .read_to_end(&mut bytes)
            .ctx(|| format!("reading blob {digest}"))?;
        let actual = Digest::of(&bytes);
        if &actual != digest {
            return Err(StoreError::Corrupt {
                what: format!("blob {digest}"),
                reason: format!(
                    "its content hashes to {actual}; remove the image and pull or import it again"
                ),
            });
        }
        Ok(bytes)
    }

    /// The size of a blob in bytes.
    pub fn blob_size(&self, digest: &Digest) -> Result<u64> {
        fs::metadata(self.blob_path(digest))
            .map(|m| m.len())
            .map_err(|_| StoreError::MissingBlob(digest.clone()))
    }

    /// Reads `index.json`.
    pub fn read_index(&self) -> Result<ImageIndex> {
        let path = self.index_path();
        let bytes = fs::read(&path).ctx(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            what: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    fn write_index(&self, index: &ImageIndex) -> Result<()> {
        let bytes = serde_json::to_vec(index).expect("an index serializes");
        self.write_file(&self.index_path(), &bytes)
    }

    /// Changes `index.json` under the index lock: `f` sees the current descriptors and edits
    /// them; the result is written atomically.
    pub fn update_index<T>(&self, f: impl FnOnce(&mut Vec<Descriptor>) -> Result<T>) -> Result<T> {
        let _g = self.lock_index()?;
        let mut index = self.read_index()?;
        let mut manifests = index.manifests().clone();
        let out = f(&mut manifests)?;
        index.set_manifests(manifests);
        self.write_index(&index)?;
        Ok(out)
    }

    /// Removes temp files and half-made snapshots left by processes that died, if no process
    /// is using the store right now.
    fn clean_leftovers(&self) -> Result<()> {
        let p = self.root.join("locks/gc.lock");
        let Some(_g) = lock::try_exclusive(&p).ctx(|| format!("locking {}", p.display()))? else {
            return Ok(());
        };
        let tmp = self.tmp_dir();
        let entries = fs::read_dir(&tmp).ctx(|| format!("reading {}", tmp.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            // Names are HINT-PID-RANDOM: a live process' file (a running container's exec
            // config, a state file being renamed) is not a leftover.
            let name = entry.file_name().to_string_lossy().into_owned();
            // An interrupted download, kept so the next pull resumes it (for a day).
            if name.starts_with("partial-")
                && entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() < 24 * 3600))
            {
                continue;
            }
            let owner = name.rsplit('-').nth(1).and_then(|p| p.parse::<i32>().ok());
            if owner.is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists()) {
                continue;
            }
            let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&path)
            } else {
                fs::remove_file(&path)
            };
            if let Err(e) = removed {
                tracing::warn!("removing leftover {}: {e}", path.display());
            }
        }
        Ok(())
    }
}

/// Makes the folder `dir` with exactly `mode`, which the umask would narrow; a folder already
/// there is left as it is (its mode too). Its parent must exist.
pub fn make_dir(dir: &Path, mode: u32) -> io::Result<()> {
    #[cfg_attr(not(unix), allow(unused_mut))]
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, mode);
    match builder.create(dir) {
        Ok(()) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(dir, fs::Permissions::from_mode(mode))?;
            }
            #[cfg(not(unix))]
            let _ = mode;
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes a folder tree, first making folders writable so a read-only folder from an image
/// does not stop it.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                fn open_up(p: &Path) {
                    if let Ok(m) = fs::symlink_metadata(p)
                        && m.is_dir()
                    {
                        let _ = fs::set_permissions(p, fs::Permissions::from_mode(0o700));
                        if let Ok(rd) = fs::read_dir(p) {
                            for e in rd.flatten() {
                                open_up(&e.path());
                            }
                        }
                    }
                }
                let _ = e;
                open_up(path);
                fs::remove_dir_all(path)
            }
            #[cfg(not(unix))]
            Err(e)
        }
    }
}

fn empty_index() -> ImageIndex {
    ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(Vec::new())
        .build()
        .expect("an empty index is valid")
}

/// A blob being written; it enters the store only when committed and verified.
pub struct BlobWriter {
    store: Store,
    path: PathBuf,
    inner: Option<HashingWriter<io::BufWriter<File>>>,
}

impl BlobWriter {
    /// Flushes, verifies against `expected` (if given) and moves the blob into place.
    pub fn commit(mut self, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        let inner = self.inner.take().expect("committed once");
        let (digest, size, buf) = inner.finish();
        let file = buf
            .into_inner()
            .map_err(|e| e.into_error())
            .ctx(|| format!("writing {}", self.path.display()))?;
        if let Some(expected) = expected
            && expected != &digest
        {
            return Err(StoreError::DigestMismatch {
                expected: expected.clone(),
                actual: digest,
            });
        }
        let target = self.store.blob_path(&digest);
        if target.exists() {
            return Ok((digest, size));
        }
        file.sync_all()
            .ctx(|| format!("syncing {}", self.path.display()))?;
        drop(file);
        atomic::rename_durable(&self.path, &target).ctx(|| format!("storing blob {digest}"))?;
        Ok((digest, size))
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.as_mut().expect("not committed").write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.as_mut().expect("not committed").flush()
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // Whatever was not committed (an error, a mismatch, a panic) leaves nothing behind.
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_verified() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = store.put_blob(b"hello").unwrap();
        assert_eq!(store.read_blob(&d).unwrap(), b"hello");
        let wrong = Digest::of(b"other");
        let err = store
            .put_blob_from(&mut &b"hello"[..], Some(&wrong))
            .unwrap_err();
        assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
        assert!(!store.has_blob(&wrong));
        assert_eq!(fs::read_dir(store.tmp_dir()).unwrap().count(), 0);
    }

    #[test]
    fn layout_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(dir.path().join("oci-layout").is_file());
        assert!(store.read_index().unwrap().manifests().is_empty());
    }
}
