//! The compiled-module cache: `ROOT/wasm-cache/<module sha256>-<engine key>.cwasm`, beside a
//! `.xxh3` checksum of the artifact itself. The first run of a module compiles it and stores the
//! artifact; later runs check the artifact against its recorded checksum and map it instead of
//! compiling. A corrupt or foreign artifact is discarded and rebuilt, never trusted: wasmtime
//! runs what it deserializes as machine code.
//!
//! Starting a cached module reads neither the module nor a copy of the artifact: the module's
//! digest is remembered per image layer (`layers/`, see [`ModuleCache::layer_module_digest`]),
//! and the artifact is mapped and checked with xxh3, which runs at memory speed. The checksum
//! guards against corruption (a torn write, a bad disk, a stray edit); the folder itself is
//! writable by root only, who could replace berth's binary as easily.
//!
//! Checking a large artifact still reads all of it (ten megabytes for ripgrep, a millisecond
//! and a half with the mapping), where wasmtime itself touches only the pages it runs. So a
//! check is remembered in the store's run root when that is a tmpfs, emptied at boot (see
//! [`crate::store::runroot`]): the artifact's device, inode, size, modification and change
//! times beside its checksum. A later start that finds the very same file (a write, truncation
//! or replacement through the filesystem changes one of those, and the change time cannot be
//! set back) maps it without reading it. The first start after each boot checks it in full
//! again. What this gives up: a disk that corrupts the file's blocks under an unchanged inode
//! is caught only at the next boot's first start (if the page cache dropped the checked pages
//! meanwhile), and on a filesystem with one-second times an edit of the same size in the very
//! second of the check goes unseen.

use std::io::Write;
use std::path::{Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use sha2::{Digest as _, Sha256};
use wasmtime::Engine;
use wasmtime::Module;
use wasmtime::component::Component;

use super::WasmKind;
use super::engine::{self, Program, WasiError};

/// The cache folder's name under the store root.
pub const DIR_NAME: &str = "wasm-cache";

/// Where module digests are remembered per image layer, in the cache folder.
const LAYERS_DIR: &str = "layers";

/// The extension of an artifact's checksum file.
const SUM: &str = "xxh3";

/// An artifact's checksum: xxh3-128 in hex.
fn checksum(bytes: &[u8]) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(bytes))
}

/// Where the store's compiled modules are, for a container's PID 1 or `exec` helper, which
/// open them before their rootfs hides the store.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CacheLocation {
    /// The cache folder.
    pub cache: PathBuf,
    /// The folder of remembered checks, in the run root when that is emptied at boot (else
    /// every load checks).
    pub checked: Option<PathBuf>,
}

impl CacheLocation {
    /// The cache of `store`.
    pub fn of_store(store: &crate::store::Store) -> CacheLocation {
        CacheLocation {
            cache: store.root().join(DIR_NAME),
            checked: store
                .run_root_is_volatile()
                .then(|| store.run_root().join("wasm-checked")),
        }
    }

    /// Opens it; `None` when it cannot be (a user namespace's root does not own it), which
    /// only means compiling each run.
    pub fn open(&self) -> Option<ModuleCache> {
        let cache = ModuleCache::open(&self.cache).ok()?;
        Some(match &self.checked {
            Some(dir) => cache.remembering_checks_in(dir),
            None => cache,
        })
    }
}

/// An open compiled-module cache.
pub struct ModuleCache {
    dir: Dir,
    path: PathBuf,
    /// Where checked artifacts are remembered, when there is such a folder.
    checked: Option<Dir>,
}

/// Whether a load hit the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A verified artifact was loaded.
    Hit,
    /// The module was compiled (and stored, if the cache is writable).
    Compiled,
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> WasiError {
    let context = context.into();
    move |source| WasiError::Io { context, source }
}

impl ModuleCache {
    /// Opens (making it if needed) the cache of the store rooted at `root`.
    pub fn for_store(root: &Path) -> Result<ModuleCache, WasiError> {
        Self::open(&root.join(DIR_NAME))
    }

    /// Opens (making it if needed) the cache folder `path`.
    pub fn open(path: &Path) -> Result<ModuleCache, WasiError> {
        let path = path.to_path_buf();
        // Opened first, made only when missing: every container start opens it.
        let open = || Dir::open_ambient_dir(&path, ambient_authority());
        let dir = match open() {
            Ok(dir) => dir,
            Err(_) => {
                std::fs::create_dir_all(&path)
                    .map_err(io(format!("creating {}", path.display())))?;
                open().map_err(io(format!("opening {}", path.display())))?
            }
        };
        Ok(ModuleCache {
            dir,
            path,
            checked: None,
        })
    }

    /// Remembers checked artifacts in `dir` (made if missing; without it, every load checks).
    pub fn remembering_checks_in(mut self, dir: &Path) -> ModuleCache {
        let open = || Dir::open_ambient_dir(dir, ambient_authority());
        // Opened first, made only when missing, as the cache itself.
        self.checked = open()
            .or_else(|_| crate::store::runroot::create_private(dir).and_then(|()| open()))
            .ok();
        self
    }

    /// The cache folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The artifact's file name for a module with sha256 `digest_hex`.
    fn entry_name(engine: &Engine, digest_hex: &str) -> String {
        format!("{digest_hex}-{}.cwasm", engine::compatibility_key(engine))
    }

    /// Loads the cached artifact of the module whose sha256 is `digest_hex`, without the
    /// module's bytes; `None` when there is none (or it was corrupt, and is now discarded), and
    /// the caller reads the module and calls [`ModuleCache::load`].
    pub fn load_known(&self, engine: &Engine, digest_hex: &str, kind: WasmKind) -> Option<Program> {
        let entry = Self::entry_name(engine, digest_hex);
        match self.load_entry(engine, &entry, kind) {
            Ok(p) => p,
            Err(why) => {
                self.discard(&entry, &why);
                None
            }
        }
    }

    fn discard(&self, entry: &str, why: &str) {
        tracing::warn!("discarding the compiled module {entry}: {why}; compiling it again");
        let _ = self.dir.remove_file(entry);
        let _ = self.dir.remove_file(format!("{entry}.{SUM}"));
    }

    /// The sha256 and kind of the module `file`, which is `path` in the image layer unpacked at
    /// `snapshot`: remembered in `layers/` under the snapshot's name (its layer's diff_id) and
    /// the path (as `SHA256 module|component`), so it is read and hashed once, not at every
    /// start. That is sound because a
    /// snapshot never changes once unpacked: its content is its layer's, verified against the
    /// diff_id. The caller makes sure the container sees this very file at `path` (no writable
    /// layer or volume over it).
    pub fn layer_module(
        &self,
        snapshot: &Path,
        path: &str,
        file: &Path,
    ) -> Result<super::KnownModule, WasiError> {
        let layer = snapshot
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let memo = format!(
            "{LAYERS_DIR}/{layer}-{}",
            &hex::encode(Sha256::digest(path.as_bytes()))[..16]
        );
        let known = |sha256: &str, kind| super::KnownModule {
            path: path.to_string(),
            sha256: sha256.to_string(),
            kind,
        };
        // A memo without the kind (an older berth's) is made again.
        if let Ok(s) = self.dir.read_to_string(&memo)
            && let Some((sha256, kind)) = s.trim().split_once(' ')
            && sha256.len() == 64
            && sha256.bytes().all(|b| b.is_ascii_hexdigit())
        {
            match kind {
                "module" => return Ok(known(sha256, WasmKind::Module)),
                "component" => return Ok(known(sha256, WasmKind::Component)),
                _ => {}
            }
        }
        let bytes = read_regular(file).map_err(io(format!("reading {}", file.display())))?;
        let kind = WasmKind::detect(&bytes).ok_or_else(|| WasiError::Invalid {
            name: path.to_string(),
            message: "it does not start with the WebAssembly magic bytes (\\0asm)".into(),
        })?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        self.dir
            .create_dir_all(LAYERS_DIR)
            .map_err(io(format!("creating {}/{LAYERS_DIR}", self.path.display())))?;
        let kind_name = match kind {
            WasmKind::Module => "module",
            WasmKind::Component => "component",
        };
        self.write_atomic(&memo, format!("{sha256} {kind_name}").as_bytes())?;
        Ok(known(&sha256, kind))
    }

    /// Loads the compiled form of `wasm` (named `name` in errors): from the cache when a
    /// verified artifact is there, else by compiling it and storing the result.
    pub fn load(
        &self,
        engine: &Engine,
        wasm: &[u8],
        name: &str,
    ) -> Result<(Program, Outcome), WasiError> {
        let kind = WasmKind::detect(wasm);
        let entry = Self::entry_name(engine, &hex::encode(Sha256::digest(wasm)));
        if let Some(kind) = kind {
            match self.load_entry(engine, &entry, kind) {
                Ok(Some(p)) => return Ok((p, Outcome::Hit)),
                Ok(None) => {}
                Err(why) => self.discard(&entry, &why),
            }
        }
        let program = engine::compile(engine, wasm, name)?;
        if let Err(e) = self.store_entry(&program, &entry) {
            // A read-only or foreign-owned cache (e.g. a user namespace) only costs speed.
            tracing::debug!("not caching the compiled module {entry}: {e}");
        }
        Ok((program, Outcome::Compiled))
    }

    /// Compiles and stores `wasm` unless a verified artifact is already there (what `berth
    /// build` does for a WASI entrypoint).
    pub fn precompile(
        &self,
        engine: &Engine,
        wasm: &[u8],
        name: &str,
    ) -> Result<Outcome, WasiError> {
        self.load(engine, wasm, name).map(|(_, o)| o)
    }

    /// A cached artifact, checked against its recorded checksum; `Ok(None)` when absent.
    fn load_entry(
        &self,
        engine: &Engine,
        entry: &str,
        kind: WasmKind,
    ) -> Result<Option<Program>, String> {
        let want = match self.dir.read_to_string(format!("{entry}.{SUM}")) {
            Ok(s) => s.trim().to_string(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("reading its checksum: {e}")),
        };
        let file = match self.dir.open(entry) {
            Ok(f) => f.into_std(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("opening it: {e}")),
        };
        let identity = file_identity(&file, &want);
        let checked = identity.as_deref().is_some_and(|id| {
            self.checked
                .as_ref()
                .and_then(|d| d.read_to_string(entry).ok())
                .is_some_and(|seen| seen == id)
        });
        if !checked {
            // Mapped, not read: the pages are the page cache's, which wasmtime maps again
            // below. Populated in one go: the checksum reads every page, and faulting them in
            // one at a time costs a large module a good part of a millisecond.
            // SAFETY: a private read-only mapping of a file that is replaced only by rename, so
            // its bytes do not change under us.
            let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }
                .map_err(|e| format!("mapping it: {e}"))?;
            if checksum(&map) != want {
                return Err(
                    "its checksum does not match the one recorded when it was compiled".into(),
                );
            }
            drop(map);
            if let (Some(d), Some(id)) = (&self.checked, &identity) {
                // Best effort: without it the next start checks again.
                let _ = d.write(entry, id);
            }
        }
        // SAFETY: wasmtime runs a deserialized artifact as code. This one was written by this
        // cache (atomically, from wasmtime's own serialize) and its bytes were checked against
        // the checksum recorded with it, just now or earlier this boot for this very file (see
        // the module's header), in a folder only root can write. On Linux a module is mapped
        // through the same descriptor that was checked (a component: see
        // `deserialize_component`); elsewhere wasmtime opens it by path with the access its
        // mapping needs (entries are replaced only by rename).
        let loading = |e: wasmtime::Error| format!("loading it: {e:#}");
        // SAFETY: see above.
        let loaded = unsafe {
            match kind {
                WasmKind::Module if cfg!(target_os = "linux") => {
                    Module::deserialize_open_file(engine, file).map_err(loading)
                }
                WasmKind::Module => {
                    Module::deserialize_file(engine, self.path.join(entry)).map_err(loading)
                }
                WasmKind::Component => {
                    return deserialize_component(engine, &file, &self.path.join(entry))
                        .map(|c| Some(Program::Component(c)));
                }
            }
        };
        loaded.map(|m| Some(Program::Module(m)))
    }

    /// Writes the artifact and its checksum, each atomically (the checksum first: an artifact
    /// without one is never loaded).
    fn store_entry(&self, program: &Program, entry: &str) -> Result<(), WasiError> {
        let bytes = match program {
            Program::Module(m) => m.serialize(),
            Program::Component(c) => c.serialize(),
        }
        .map_err(|e| WasiError::Setup(format!("serializing the compiled module: {e:#}")))?;
        self.write_atomic(&format!("{entry}.{SUM}"), checksum(&bytes).as_bytes())?;
        self.write_atomic(entry, &bytes)
    }

    fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<(), WasiError> {
        // Beside its final name, so the rename stays in one folder.
        let tmp = match name.rsplit_once('/') {
            Some((dir, file)) => format!("{dir}/.{file}.{}.tmp", std::process::id()),
            None => format!(".{name}.{}.tmp", std::process::id()),
        };
        let ctx = |what: &str| format!("{what} {} in {}", name, self.path.display());
        let mut f = self.dir.create(&tmp).map_err(io(ctx("writing")))?;
        f.write_all(bytes)
            .and_then(|_| f.sync_all())
            .map_err(io(ctx("writing")))?;
        drop(f);
        self.dir
            .rename(&tmp, &self.dir, name)
            .map_err(io(ctx("renaming")))
    }
}

/// The whole of the regular file `path`, opened without blocking (a FIFO is an error, not a
/// hang).
fn read_regular(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, nix::libc::O_NONBLOCK);
    let mut file = options.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut bytes)?;
    Ok(bytes)
}

/// What identifies an artifact's file as the one whose checksum is `sum`: its device, inode,
/// size, modification and change times. `None` where the platform does not give them all.
fn file_identity(file: &std::fs::File, sum: &str) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let m = file.metadata().ok()?;
        Some(format!(
            "{} {} {} {}.{} {}.{} {sum}\n",
            m.dev(),
            m.ino(),
            m.size(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec()
        ))
    }
    #[cfg(not(unix))]
    {
        let _ = (file, sum);
        None
    }
}

/// Loads the component artifact in the open `file` (`real` is its path in the store).
///
/// wasmtime 48 maps a component from a path only (it has no `Component::deserialize_open_file`
/// as for modules). On Linux that path is the descriptor's /proc link, which names the very
/// file checked; where there is none (a WASI guest's PID 1 has no /proc, and its pivot hid
/// the store, so `real` is gone too) the artifact is copied out of a mapping of the file: a
/// copy at memory speed, where compiling the component again takes hundreds of milliseconds.
///
/// # Safety
///
/// As [`Component::deserialize_file`]: `file` holds an artifact this cache wrote and checked,
/// replaced only by rename.
unsafe fn deserialize_component(
    engine: &Engine,
    file: &std::fs::File,
    real: &Path,
) -> Result<Component, String> {
    let loading = |e: wasmtime::Error| format!("loading it: {e:#}");
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let link = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        if link.exists() {
            // SAFETY: the caller's (this function's contract): a checked artifact of this cache.
            return unsafe { Component::deserialize_file(engine, link) }.map_err(loading);
        }
        let _ = real;
        // SAFETY: as above.
        unsafe { component_from_mapping(engine, file) }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        // SAFETY: the caller's (this function's contract): a checked artifact of this cache.
        unsafe { Component::deserialize_file(engine, real) }.map_err(loading)
    }
}

/// Loads the component artifact in `file` from a mapping of it, which wasmtime copies.
///
/// # Safety
///
/// As [`deserialize_component`].
#[cfg(target_os = "linux")]
unsafe fn component_from_mapping(
    engine: &Engine,
    file: &std::fs::File,
) -> Result<Component, String> {
    // SAFETY: a private read-only mapping of a file replaced only by rename; wasmtime copies
    // the bytes before this returns.
    let map = unsafe { memmap2::MmapOptions::new().populate().map(file) }
        .map_err(|e| format!("mapping it: {e}"))?;
    // SAFETY: the caller's (this function's contract): a checked artifact of this cache.
    unsafe { Component::deserialize(engine, &map) }.map_err(|e| format!("loading it: {e:#}"))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The smallest component: the preamble alone.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

    #[test]
    fn a_cached_component_loads_without_a_path_to_its_artifact() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModuleCache::open(dir.path()).unwrap();
        let engine = engine::new_engine().unwrap();
        let (_, first) = cache.load(&engine, EMPTY_COMPONENT, "empty").unwrap();
        assert_eq!(first, Outcome::Compiled);
        // What a guest's PID 1 does, which has no /proc to name the open artifact by.
        let entry = ModuleCache::entry_name(&engine, &hex::encode(Sha256::digest(EMPTY_COMPONENT)));
        let file = std::fs::File::open(dir.path().join(&entry)).unwrap();
        // SAFETY: the artifact the cache just wrote and checked.
        let loaded = unsafe { component_from_mapping(&engine, &file) }.unwrap();
        assert_eq!(loaded.component_type().imports(&engine).count(), 0);
        // And the cache serves it, its file untouched.
        let before = std::fs::metadata(dir.path().join(&entry))
            .unwrap()
            .modified()
            .unwrap();
        let (program, again) = cache.load(&engine, EMPTY_COMPONENT, "empty").unwrap();
        assert_eq!(again, Outcome::Hit);
        assert!(matches!(program, Program::Component(_)));
        let after = std::fs::metadata(dir.path().join(&entry))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(before, after);
    }
}
