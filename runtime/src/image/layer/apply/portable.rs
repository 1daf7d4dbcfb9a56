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
    let mut stats = ApplyStats::default();
    let mut written: HashSet<PathBuf> = HashSet::new();
    let mut copy_buf = Vec::new();
    for entry in archive.entries().map_err(LayerError::Archive)? {
        let mut entry = entry.map_err(LayerError::Archive)?;
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
            continue;
        }
        let text =
            String::from_utf8(raw.clone()).map_err(|_| refuse("its name is not UTF-8".into()))?;
        let path = clean(Path::new(&text)).map_err(&refuse)?;
        let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        stats.entries += 1;
        let parent = path.parent().unwrap_or(Path::new("")).to_path_buf();
        if name == OPAQUE_WHITEOUT {
            // Everything the lower layers put in the folder goes; this layer's own entries stay.
            if let Ok(rd) = target.read_dir(&parent) {
                for e in rd.flatten() {
                    let child = parent.join(e.file_name());
                    if !written.contains(&child) {
                        remove(target, &child).map_err(io_err)?;
                    }
                }
            }
            continue;
        }
        if let Some(victim) = name.strip_prefix(WHITEOUT_PREFIX) {
            remove(target, &parent.join(victim)).map_err(io_err)?;
            continue;
        }
        if !parent.as_os_str().is_empty() {
            target.create_dir_all(&parent).map_err(io_err)?;
        }
        if kind != tar::EntryType::Directory {
            remove(target, &path).map_err(io_err)?;
        }
        match kind {
            tar::EntryType::Directory => target.create_dir_all(&path).map_err(io_err)?,
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let mut f = target.create(&path).map_err(io_err)?;
                let size = entry.size();
                stats.bytes += super::copy_contents(&mut entry, &mut f, &mut copy_buf, size)
                    .map_err(LayerError::Archive)?;
            }
            tar::EntryType::Link => {
                let link = entry
                    .link_name()
                    .map_err(LayerError::Archive)?
                    .ok_or_else(|| refuse("a hardlink without a target".into()))?;
                let source = clean(&link).map_err(&refuse)?;
                target
                    .hard_link(&source, target, &path)
                    .or_else(|_| target.copy(&source, target, &path).map(|_| ()))
                    .map_err(io_err)?;
            }
            tar::EntryType::Symlink => {
                let link = entry
                    .link_name()
                    .map_err(LayerError::Archive)?
                    .ok_or_else(|| refuse("a symlink without a target".into()))?;
                // Symlinks need a privilege on Windows; a layer's symlink that cannot be made is
                // skipped rather than failing the whole image.
                if let Err(e) = symlink(target, &link, &path) {
                    tracing::debug!("skipping symlink {}: {e}", path.display());
                }
            }
            _ => tracing::debug!("skipping {} (a {kind:?} entry)", path.display()),
        }
        written.insert(path);
    }
    Ok(stats)
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
