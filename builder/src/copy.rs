//! COPY and ADD: sources from the context or another stage written into a fresh folder laid
//! out like the stage's root, which then becomes the step's layer. Folders this creates on the
//! way to the destination take the mode, owner and mtime the lower layers give them, so e.g.
//! `/tmp` keeps 1777. With `--link` nothing below is read: the folders on the way are made
//! fresh (0755, root or the `--chown` owner), as BuildKit's, so the layer stands on its own.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use berth_runtime::image::layer::{self, ApplyOptions, WhiteoutMode};
use cap_std::ambient_authority;
use cap_std::fs::Dir;

use crate::context::{Context, clean_relative, is_glob, match_element};
use crate::dockerfile::CopySource;
use crate::layered::LayeredFs;

/// Why a COPY or ADD failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// A source matched nothing.
    #[error("{0}: no such file in the {1}; check the path{2}")]
    NoSource(String, String, &'static str),
    /// A value is malformed or unsupported.
    #[error("{0}")]
    Invalid(String),
    /// A signal stopped the build while it copied.
    #[error(transparent)]
    Interrupted(#[from] crate::cancel::Interrupted),
    /// A file operation failed.
    #[error("{context}: {cause}")]
    Io {
        /// What was being done.
        context: String,
        /// Why it failed.
        cause: std::io::Error,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> CopyError {
    let context = context.into();
    move |cause| CopyError::Io { context, cause }
}

/// Where COPY reads from.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// The build context (filtered by `.dockerignore`); files become root-owned.
    Context(&'a Context),
    /// Another stage or an image; files keep their owner.
    Stage(&'a LayeredFs),
}

impl Source<'_> {
    fn host_path(&self, rel: &str) -> Option<PathBuf> {
        match self {
            Source::Context(c) => {
                if c.excluded(rel) {
                    return None;
                }
                // A symlinked folder on the way would lead outside the context: such a path
                // is not in the context (the link itself still copies, as a link).
                let mut p = c.root.clone();
                let parts: Vec<&str> = rel.split('/').filter(|s| !s.is_empty()).collect();
                for (i, part) in parts.iter().enumerate() {
                    p.push(part);
                    let m = std::fs::symlink_metadata(&p).ok()?;
                    if i + 1 < parts.len() && !m.is_dir() {
                        return None;
                    }
                }
                std::fs::symlink_metadata(&p).ok().map(|_| p)
            }
            Source::Stage(fs) => fs.lookup(rel),
        }
    }

    fn children(&self, rel: &str) -> Vec<String> {
        match self {
            Source::Context(c) => {
                let dir = c.root.join(rel);
                let mut names: Vec<String> = std::fs::read_dir(&dir)
                    .map(|r| {
                        r.flatten()
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                names.sort();
                names
                    .into_iter()
                    // A stopped build stops matching here; the caller's next check says why.
                    .take_while(|_| crate::cancel::check().is_ok())
                    .filter(|n| {
                        let child = join(rel, n);
                        !c.excluded(&child) || (c.ignore.has_exceptions() && dir.join(n).is_dir())
                    })
                    .collect()
            }
            Source::Stage(fs) => fs.children(rel),
        }
    }

    fn keeps_owner(&self) -> bool {
        matches!(self, Source::Stage(_))
    }

    fn describe(&self) -> (&'static str, &'static str) {
        match self {
            Source::Context(_) => ("build context", " and .dockerignore"),
            Source::Stage(_) => ("source stage or image", ""),
        }
    }
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}/{b}")
    }
}

/// One COPY or ADD being written into `out`.
pub struct CopyJob<'a> {
    /// Where sources come from.
    pub source: Source<'a>,
    /// The stage being built (for existing folders' metadata).
    pub dest_fs: &'a LayeredFs,
    /// The fresh folder standing for the stage's root.
    pub out: &'a Path,
    /// `--chown`, resolved.
    pub owner: Option<(u32, u32)>,
    /// `--chmod`, parsed.
    pub chmod: Option<u32>,
    /// ADD: unpack local tar archives.
    pub unpack: bool,
    /// ADD `--unpack=true`: unpack downloaded tar archives too (never by default).
    pub unpack_remote: bool,
    /// ADD: the http(s) sources downloaded so far, by URL; a URL not here is left out.
    pub remote: std::collections::BTreeMap<String, crate::remote::Download>,
    /// `--parents`: keep each source's path under the destination.
    pub parents: bool,
    /// `--link`: folders made on the way to the destination belong to the `--chown` owner
    /// (root without it). Give such a job an empty `dest_fs`, so nothing below is read.
    pub link: bool,
    /// `--exclude` patterns (matched as `.dockerignore` lines, against the path in the source).
    pub exclude: crate::context::IgnoreRules,
    /// The source being copied, so `--exclude` patterns also match relative to it.
    base: String,
    /// Folder mtimes to restore once everything is written (writing children changes them).
    dir_times: Vec<(PathBuf, SystemTime)>,
}

impl<'a> CopyJob<'a> {
    /// A job writing into `out`.
    pub fn new(source: Source<'a>, dest_fs: &'a LayeredFs, out: &'a Path) -> CopyJob<'a> {
        CopyJob {
            source,
            dest_fs,
            out,
            owner: None,
            chmod: None,
            unpack: false,
            unpack_remote: false,
            remote: std::collections::BTreeMap::new(),
            parents: false,
            link: false,
            exclude: crate::context::IgnoreRules::default(),
            base: String::new(),
            dir_times: Vec::new(),
        }
    }

    /// Copies `sources` to the absolute path `dest` (already joined with WORKDIR).
    pub fn run(mut self, sources: &[CopySource], dest: &str) -> Result<(), CopyError> {
        let dest_rel = clean_relative(dest);
        // Resolve every source first so a missing one fails before anything is written.
        let resolved = self.resolve(sources)?;
        let dest_is_dir = dest.ends_with('/')
            || dest.ends_with("/.")
            || dest_rel.is_empty()
            || resolved.len() > 1
            || self.dest_fs.metadata(&dest_rel).is_some_and(|m| m.is_dir());
        for r in resolved {
            match r {
                Resolved::Inline(name, content) => {
                    self.write_inline(&dest_rel, &name, &content, dest_is_dir)?
                }
                Resolved::Remote(url) => self.write_remote(&dest_rel, &url, dest_is_dir)?,
                Resolved::Path(rel) => self.write_path(&dest_rel, &rel, dest_is_dir)?,
            }
        }
        self.restore_dir_times();
        Ok(())
    }

    /// What `sources` name: heredocs, URLs, and the context or stage paths each matches
    /// (less `--exclude`d ones); a path matching nothing is an error.
    fn resolve(&self, sources: &[CopySource]) -> Result<Vec<Resolved>, CopyError> {
        let mut resolved: Vec<Resolved> = Vec::new();
        for s in sources {
            match s {
                CopySource::Heredoc(h) => {
                    resolved.push(Resolved::Inline(h.name.clone(), h.content.clone()))
                }
                CopySource::Path(p) if crate::remote::is_url(p) => {
                    resolved.push(Resolved::Remote(p.clone()))
                }
                CopySource::Path(p) => {
                    if p.starts_with("git@") {
                        return Err(CopyError::Invalid(format!(
                            "{p}: git sources are not supported yet; clone the repository into the build context and COPY it"
                        )));
                    }
                    let rel = clean_relative(p);
                    let matches = if is_glob(&rel) {
                        self.glob(&rel)
                    } else if self.source.host_path(&rel).is_some() {
                        vec![rel.clone()]
                    } else {
                        Vec::new()
                    };
                    if matches.is_empty() {
                        let (what, hint) = self.source.describe();
                        return Err(CopyError::NoSource(p.clone(), what.into(), hint));
                    }
                    resolved.extend(
                        matches
                            .into_iter()
                            .filter(|m| !self.exclude.excluded(m))
                            .map(Resolved::Path),
                    );
                }
            }
        }
        Ok(resolved)
    }

    /// A heredoc source: the file `name` with `content`.
    fn write_inline(
        &mut self,
        dest_rel: &str,
        name: &str,
        content: &str,
        dest_is_dir: bool,
    ) -> Result<(), CopyError> {
        let target = self.file_target(dest_rel, name, dest_is_dir)?;
        let path = self.out.join(&target);
        // Never write through a link an earlier source put there.
        if std::fs::symlink_metadata(&path).is_ok_and(|m| !m.is_dir()) {
            let _ = std::fs::remove_file(&path);
        }
        std::fs::write(&path, content).map_err(io_err(format!("writing {target}")))?;
        self.finish_entry(&path, 0o644, (0, 0), false)
    }

    /// A URL source, from its download (unpacked with `--unpack=true`).
    fn write_remote(
        &mut self,
        dest_rel: &str,
        url: &str,
        dest_is_dir: bool,
    ) -> Result<(), CopyError> {
        // Not downloaded yet (its --checksum alone keys the cache): left out.
        let Some(d) = self.remote.get(url).cloned() else {
            return Ok(());
        };
        if self.unpack_remote && is_archive(&d.path) {
            self.ensure_dir(dest_rel)?;
            return self.unpack_archive(&d.path, dest_rel);
        }
        let target = self.file_target(dest_rel, &d.name, dest_is_dir)?;
        let path = self.out.join(&target);
        if let Ok(existing) = std::fs::symlink_metadata(&path) {
            if existing.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            }
            .map_err(io_err(format!("replacing {target}")))?;
        }
        std::fs::copy(&d.path, &path).map_err(io_err(format!("writing {target}")))?;
        // Docker gives a downloaded file mode 0600 and root as its owner.
        self.finish_entry(&path, 0o600, (0, 0), false)?;
        let f = std::fs::File::options()
            .write(true)
            .open(&path)
            .map_err(io_err(format!("opening {target}")))?;
        let _ = f.set_modified(d.mtime);
        Ok(())
    }

    /// A path of the context or stage: a folder's contents, an archive unpacked (ADD), or
    /// the file; with `--parents` under its own path.
    fn write_path(
        &mut self,
        dest_rel: &str,
        rel: &str,
        dest_is_dir: bool,
    ) -> Result<(), CopyError> {
        self.base = rel.to_string();
        let host = self.source.host_path(rel).expect("resolved above");
        let meta = std::fs::symlink_metadata(&host).map_err(io_err(format!("reading {rel}")))?;
        if self.parents {
            // --parents: the source's own path is kept under the destination.
            let target = join(dest_rel, rel);
            self.ensure_parent(&target)?;
            self.copy_entry(rel, &target)?;
        } else if meta.is_dir() {
            // A folder's contents are copied, never the folder itself.
            self.ensure_dir(dest_rel)?;
            for child in self.source.children(rel) {
                self.copy_entry(&join(rel, &child), &join(dest_rel, &child))?;
            }
        } else if self.unpack && meta.is_file() && is_archive(&host) {
            self.ensure_dir(dest_rel)?;
            self.unpack_archive(&host, dest_rel)?;
        } else {
            let name = rel.rsplit('/').next().unwrap_or(rel).to_string();
            let target = self.file_target(dest_rel, &name, dest_is_dir)?;
            self.copy_entry(rel, &target)?;
        }
        Ok(())
    }

    /// Whether `--exclude` leaves out `rel`, matched from the context root or from the
    /// source folder being copied.
    fn is_excluded(&self, rel: &str) -> bool {
        let inner = rel
            .strip_prefix(self.base.as_str())
            .map(|r| r.trim_start_matches('/'))
            .filter(|r| !r.is_empty() && !self.base.is_empty());
        self.exclude.excluded(rel) || inner.is_some_and(|r| self.exclude.excluded(r))
    }

    /// Creates the folder `dest` (absolute) and its parents, as WORKDIR does.
    pub fn make_dir(mut self, dest: &str) -> Result<(), CopyError> {
        self.ensure_dir(&clean_relative(dest))?;
        self.restore_dir_times();
        Ok(())
    }

    fn restore_dir_times(&self) {
        for (path, time) in self.dir_times.iter().rev() {
            if let Ok(f) = std::fs::File::open(path) {
                let _ = f.set_modified(*time);
            }
        }
    }

    /// Source paths matching a glob, one path element per pattern element (so `*` never
    /// crosses a `/`), sorted.
    fn glob(&self, pattern: &str) -> Vec<String> {
        let mut candidates = vec![String::new()];
        for element in pattern.split('/') {
            let mut next = Vec::new();
            for c in &candidates {
                if crate::cancel::check().is_err() {
                    return Vec::new();
                }
                if is_glob(element) {
                    for child in self.source.children(c) {
                        if match_element(element, &child).unwrap_or(false) {
                            next.push(join(c, &child));
                        }
                    }
                } else {
                    let p = join(c, element);
                    if self.source.host_path(&p).is_some() {
                        next.push(p);
                    }
                }
            }
            candidates = next;
        }
        candidates.retain(|c| self.source.host_path(c).is_some());
        candidates.sort();
        candidates
    }

    /// Where a file named `name` lands: inside `dest` when it is a folder (made if missing),
    /// else at `dest` itself (its parent made if missing).
    fn file_target(
        &mut self,
        dest: &str,
        name: &str,
        dest_is_dir: bool,
    ) -> Result<String, CopyError> {
        if dest_is_dir {
            self.ensure_dir(dest)?;
            Ok(join(dest, name))
        } else {
            self.ensure_parent(dest)?;
            Ok(dest.to_string())
        }
    }

    fn ensure_parent(&mut self, rel: &str) -> Result<(), CopyError> {
        match rel.rsplit_once('/') {
            Some((parent, _)) => self.ensure_dir(parent),
            None => Ok(()),
        }
    }

    /// Creates the folder `rel` and its parents in `out`, each with the metadata the stage
    /// already gives it (or 0755 root for a new one).
    fn ensure_dir(&mut self, rel: &str) -> Result<(), CopyError> {
        let mut prefix = String::new();
        for part in rel.split('/').filter(|p| !p.is_empty()) {
            prefix = join(&prefix, part);
            let path = self.out.join(&prefix);
            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                continue;
            }
            let _ = std::fs::remove_file(&path);
            std::fs::create_dir(&path).map_err(io_err(format!("creating {prefix}")))?;
            match self.dest_fs.metadata(&prefix).filter(|m| m.is_dir()) {
                Some(m) => {
                    set_mode(&path, m.mode() & 0o7777)?;
                    chown(&path, m.uid(), m.gid())?;
                    if let Ok(t) = m.modified() {
                        self.dir_times.push((path, t));
                    }
                }
                None => {
                    set_mode(&path, 0o755)?;
                    if self.link
                        && let Some((uid, gid)) = self.owner
                    {
                        chown(&path, uid, gid)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn copy_entry(&mut self, src_rel: &str, dst_rel: &str) -> Result<(), CopyError> {
        crate::cancel::check()?;
        if self.is_excluded(src_rel) {
            return Ok(());
        }
        let Some(src) = self.source.host_path(src_rel) else {
            return Ok(());
        };
        let dst = self.out.join(dst_rel);
        let m = std::fs::symlink_metadata(&src).map_err(io_err(format!("reading {src_rel}")))?;
        let owner = if self.source.keeps_owner() {
            (m.uid(), m.gid())
        } else {
            (0, 0)
        };
        if let Ok(existing) = std::fs::symlink_metadata(&dst)
            && !(existing.is_dir() && m.is_dir())
        {
            if existing.is_dir() {
                std::fs::remove_dir_all(&dst)
            } else {
                std::fs::remove_file(&dst)
            }
            .map_err(io_err(format!("replacing {dst_rel}")))?;
        }
        let ft = m.file_type();
        if ft.is_dir() {
            if !dst.is_dir() {
                std::fs::create_dir(&dst).map_err(io_err(format!("creating {dst_rel}")))?;
            }
            self.finish_entry(&dst, m.mode() & 0o7777, owner, false)?;
            for child in self.source.children(src_rel) {
                self.copy_entry(&join(src_rel, &child), &join(dst_rel, &child))?;
            }
            if let Ok(t) = m.modified() {
                self.dir_times.push((dst, t));
            }
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&src).map_err(io_err(format!("reading {src_rel}")))?;
            std::os::unix::fs::symlink(&target, &dst)
                .map_err(io_err(format!("creating {dst_rel}")))?;
            let (uid, gid) = self.owner.unwrap_or(owner);
            std::os::unix::fs::lchown(&dst, Some(uid), Some(gid))
                .map_err(io_err(format!("changing the owner of {dst_rel}")))?;
        } else if ft.is_file() {
            std::fs::copy(&src, &dst).map_err(io_err(format!("copying {src_rel}")))?;
            self.finish_entry(&dst, m.mode() & 0o7777, owner, false)?;
            if let Ok(t) = m.modified() {
                let f = std::fs::File::options()
                    .write(true)
                    .open(&dst)
                    .map_err(io_err(format!("opening {dst_rel}")))?;
                let _ = f.set_modified(t);
            }
        }
        // Sockets, fifos and devices in a context are skipped, as Docker's.
        Ok(())
    }

    /// Applies `--chmod`/`--chown` (or the given defaults) to a written entry.
    fn finish_entry(
        &self,
        path: &Path,
        mode: u32,
        owner: (u32, u32),
        _symlink: bool,
    ) -> Result<(), CopyError> {
        set_mode(path, self.chmod.unwrap_or(mode))?;
        let (uid, gid) = self.owner.unwrap_or(owner);
        chown(path, uid, gid)
    }

    fn unpack_archive(&mut self, host: &Path, dest_rel: &str) -> Result<(), CopyError> {
        let file =
            std::fs::File::open(host).map_err(io_err(format!("opening {}", host.display())))?;
        let reader =
            layer::decompress(file).map_err(io_err(format!("reading {}", host.display())))?;
        let dir = Dir::open_ambient_dir(self.out.join(dest_rel), ambient_authority())
            .map_err(io_err(format!("opening {dest_rel}")))?;
        let opts = ApplyOptions {
            whiteouts: WhiteoutMode::Remove,
            ..ApplyOptions::default()
        };
        layer::apply(reader, &dir, &opts)
            .map_err(|e| CopyError::Invalid(format!("unpacking {}: {e}", host.display())))?;
        Ok(())
    }
}

enum Resolved {
    Path(String),
    /// An http(s) URL, written from [`CopyJob::remote`].
    Remote(String),
    Inline(String, String),
}

fn set_mode(path: &Path, mode: u32) -> Result<(), CopyError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io_err(format!("setting the mode of {}", path.display())))
}

fn chown(path: &Path, uid: u32, gid: u32) -> Result<(), CopyError> {
    match std::os::unix::fs::lchown(path, Some(uid), Some(gid)) {
        Ok(()) => Ok(()),
        // Without root, files stay ours; the layer records what the folder holds.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied && uid == 0 && gid == 0 => {
            Ok(())
        }
        Err(e) => Err(io_err(format!("changing the owner of {}", path.display()))(
            e,
        )),
    }
}

/// Whether a file is a tar archive (plain, gzip or zstd), which ADD unpacks.
fn is_archive(path: &Path) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let Ok(mut reader) = layer::decompress(file) else {
        return false;
    };
    let mut head = vec![0u8; 512];
    let mut filled = 0;
    while filled < head.len() {
        match reader.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(_) => return false,
        }
    }
    filled == 512 && &head[257..262] == b"ustar"
}

/// Resolves `--chown` (`user[:group]`, ids or names) in the stage's /etc/passwd and
/// /etc/group. A user without a group uses the same id for the group, as Docker's.
pub fn resolve_owner(spec: &str, fs: &LayeredFs) -> Result<(u32, u32), CopyError> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let lookup = |file: &str, name: &str| -> Result<u32, CopyError> {
        if let Ok(id) = name.parse::<u32>() {
            return Ok(id);
        }
        let text = fs.read(file).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 3 && f[0] == name).then(|| f[2].parse::<u32>().ok())?
            })
            .next()
            .ok_or_else(|| {
                CopyError::Invalid(format!(
                    "--chown={spec}: no {} named {name:?} in /{file} of the stage",
                    if file.ends_with("passwd") {
                        "user"
                    } else {
                        "group"
                    }
                ))
            })
    };
    let uid = lookup("etc/passwd", user)?;
    let gid = match group {
        Some(g) => lookup("etc/group", g)?,
        None => uid,
    };
    Ok((uid, gid))
}

/// Parses `--chmod` (octal).
pub fn parse_chmod(s: &str) -> Result<u32, CopyError> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| CopyError::Invalid(format!("--chmod={s}: give an octal mode such as 755")))
}
