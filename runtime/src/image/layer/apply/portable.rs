//! The applier for systems without Unix file semantics (Windows): regular files, folders,
//! hardlinks and (where the system allows) symlinks, through cap-std handles, with whiteouts
//! applied by deletion. Owners, modes, xattrs and devices have no meaning there and are
//! skipped; overlay-style snapshots need Linux.

use std::collections::HashSet;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use cap_std::fs::Dir;

use super::super::{OPAQUE_WHITEOUT, WHITEOUT_PREFIX};
use super::{ApplyOptions, ApplyStats, LayerError, MAX_PATH, WhiteoutMode, clean};

/// Applies the (uncompressed) tar layer read from `reader` onto `target`.
pub fn apply(
    reader: impl Read,
    target: &Dir,
    opts: &ApplyOptions,
) -> Result<ApplyStats, LayerError> {
    if opts.whiteouts == WhiteoutMode::Overlay {
        return Err(LayerError::Archive(io::Error::new(
            io::ErrorKind::Unsupported,
            "overlay snapshots need Linux; layers are merged into one folder here",
        )));
    }
    let mut archive = tar::Archive::new(reader);
    let mut state = Applier {
        target,
        stats: ApplyStats::default(),
        written: HashSet::new(),
        copy_buf: Vec::new(),
    };
    for entry in archive.entries().map_err(LayerError::Archive)? {
        let mut entry = entry.map_err(LayerError::Archive)?;
        state.entry(&mut entry)?;
    }
    Ok(state.stats)
}

/// A layer being applied onto one folder.
struct Applier<'a> {
    target: &'a Dir,
    stats: ApplyStats,
    /// Paths this layer wrote, so an opaque whiteout spares them.
    written: HashSet<PathBuf>,
    /// One buffer for every file's contents.
    copy_buf: Vec<u8>,
}

impl Applier<'_> {
    /// Applies one entry: checks its name, then a whiteout or what it writes.
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), LayerError> {
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw[..raw.len().min(200)]).into_owned();
        let refuse = |reason: String| LayerError::Refused {
            entry: shown.clone(),
            reason,
        };
        let io_err = |cause: io::Error| LayerError::Entry {
            entry: shown.clone(),
            cause,
        };
        if raw.len() > MAX_PATH {
            return Err(refuse(format!(
                "its name is {} bytes long (the limit is {MAX_PATH})",
                raw.len()
            )));
        }
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader
                | tar::EntryType::XHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let text =
            String::from_utf8(raw.clone()).map_err(|_| refuse("its name is not UTF-8".into()))?;
        let path = clean(Path::new(&text)).map_err(&refuse)?;
        let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            return Ok(());
        };
        self.stats.entries += 1;
        let parent = path.parent().unwrap_or(Path::new("")).to_path_buf();
        if name == OPAQUE_WHITEOUT {
            return self.opaque(&parent).map_err(io_err);
        }
        if let Some(victim) = name.strip_prefix(WHITEOUT_PREFIX) {
            return remove(self.target, &parent.join(victim)).map_err(io_err);
        }
        if !parent.as_os_str().is_empty() {
            self.target.create_dir_all(&parent).map_err(io_err)?;
        }
        if kind != tar::EntryType::Directory {
            remove(self.target, &path).map_err(io_err)?;
        }
        self.write(entry, &path, &refuse, &io_err)?;
        self.written.insert(path);
        Ok(())
    }

    /// An opaque whiteout in `parent`.
    fn opaque(&self, parent: &Path) -> io::Result<()> {
        // Everything the lower layers put in the folder goes; this layer's own entries stay.
        if let Ok(rd) = self.target.read_dir(parent) {
            for e in rd.flatten() {
                let child = parent.join(e.file_name());
                if !self.written.contains(&child) {
                    remove(self.target, &child)?;
                }
            }
        }
        Ok(())
    }

    /// Writes what an entry holds at `path`, whose parent exists and which is free.
    fn write<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: &Path,
        refuse: &dyn Fn(String) -> LayerError,
        io_err: &dyn Fn(io::Error) -> LayerError,
    ) -> Result<(), LayerError> {
        let target = self.target;
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Directory => target.create_dir_all(path).map_err(io_err)?,
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let mut f = target.create(path).map_err(io_err)?;
                let size = entry.size();
                self.stats.bytes += super::copy_contents(entry, &mut f, &mut self.copy_buf, size)
                    .map_err(LayerError::Archive)?;
            }
            tar::EntryType::Link => {
                let link = entry
                    .link_name()
                    .map_err(LayerError::Archive)?
                    .ok_or_else(|| refuse("a hardlink without a target".into()))?;
                let source = clean(&link).map_err(refuse)?;
                target
                    .hard_link(&source, target, path)
                    .or_else(|_| target.copy(&source, target, path).map(|_| ()))
                    .map_err(io_err)?;
            }
            tar::EntryType::Symlink => {
                let link = entry
                    .link_name()
                    .map_err(LayerError::Archive)?
                    .ok_or_else(|| refuse("a symlink without a target".into()))?;
                // Symlinks need a privilege on Windows; a layer's symlink that cannot be made is
                // skipped rather than failing the whole image.
                if let Err(e) = symlink(target, &link, path) {
                    tracing::debug!("skipping symlink {}: {e}", path.display());
                }
            }
            _ => tracing::debug!("skipping {} (a {kind:?} entry)", path.display()),
        }
        Ok(())
    }
}

fn remove(target: &Dir, path: &Path) -> io::Result<()> {
    match target.symlink_metadata(path) {
        Ok(m) if m.is_dir() => target.remove_dir_all(path),
        Ok(_) => target.remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(windows)]
fn symlink(target: &Dir, link: &Path, path: &Path) -> io::Result<()> {
    target.symlink_file(link, path)
}

#[cfg(not(windows))]
fn symlink(_target: &Dir, _link: &Path, _path: &Path) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "symlinks are not supported here",
    ))
}
