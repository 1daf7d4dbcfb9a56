//! The Unix applier: every entry through `*at` calls on cap-std handles, owners, modes,
//! xattrs, devices and overlay-style whiteouts.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt};
use rustix::fs::{AtFlags, FileType, Gid, Mode, Timespec, Timestamps, Uid, XattrFlags};

use super::super::{OPAQUE_WHITEOUT, WHITEOUT_PREFIX};
use super::{ApplyOptions, ApplyStats, LayerError, MAX_PATH, MAX_XATTRS, WhiteoutMode, clean};
use crate::store::writeback::Writeback;

/// Applies the (uncompressed) tar layer read from `reader` onto `target`.
///
/// On error the target is left part-written: callers extract into a fresh folder and discard
/// it on failure.
pub fn apply(
    reader: impl Read,
    target: &Dir,
    opts: &ApplyOptions,
) -> Result<ApplyStats, LayerError> {
    let mut archive = tar::Archive::new(reader);
    let mut state = Applier {
        target,
        opts,
        stats: ApplyStats::default(),
        written: HashSet::new(),
        dir_times: Vec::new(),
        copy_buf: Vec::new(),
    };
    for entry in archive.entries().map_err(LayerError::Archive)? {
        let mut entry = entry.map_err(LayerError::Archive)?;
        state.entry(&mut entry)?;
    }
    // Folder times last: writing their children changed them. They are part of the layer's
    // content (a layer made from this folder must hash the same every time), so a failure
    // here is an error, except for a folder a later entry replaced or removed.
    for (path, mtime) in std::mem::take(&mut state.dir_times).into_iter().rev() {
        let entry_err = |cause: io::Error| LayerError::Entry {
            entry: path.display().to_string(),
            cause,
        };
        let fd = match open_path_fd(target, &path) {
            Ok(fd) => fd,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) || e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) =>
            {
                continue;
            }
            Err(e) => return Err(entry_err(e)),
        };
        rustix::fs::futimens(&fd, &timestamps(mtime)).map_err(|e| entry_err(e.into()))?;
    }
    Ok(state.stats)
}

struct Applier<'a> {
    target: &'a Dir,
    opts: &'a ApplyOptions,
    stats: ApplyStats,
    /// Paths this layer wrote, so an opaque whiteout in remove mode spares them.
    written: HashSet<PathBuf>,
    dir_times: Vec<(PathBuf, u64)>,
    /// One buffer for every file's contents: large reads and writes rather than io::copy's
    /// 8 KiB, which cost a syscall per 8 KiB of a large layer.
    copy_buf: Vec<u8>,
}

/// Where an entry goes (a name in its open parent folder), and how its failures are reported.
struct At<'a> {
    parent: &'a Dir,
    name: &'a OsStr,
    /// The entry is refused: what it asks is not allowed.
    refuse: &'a dyn Fn(String) -> LayerError,
    /// Writing it failed.
    io_err: &'a dyn Fn(io::Error) -> LayerError,
}

fn timestamps(mtime: u64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime as i64,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

impl Applier<'_> {
    /// Applies one entry: checks its name, then the root folder's metadata, a whiteout, or
    /// what it writes in place of whatever is at its name.
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), LayerError> {
        let raw_bytes = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_bytes[..raw_bytes.len().min(200)]).into_owned();
        let refuse = |reason: String| LayerError::Refused {
            entry: shown.clone(),
            reason,
        };
        if raw_bytes.len() > MAX_PATH {
            return Err(refuse(format!(
                "its name is {} bytes long (the limit is {MAX_PATH})",
                raw_bytes.len()
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
        let path = clean(Path::new(OsStr::from_bytes(&raw_bytes))).map_err(&refuse)?;
        let io_err = |cause: io::Error| LayerError::Entry {
            entry: shown.clone(),
            cause,
        };
        self.stats.entries += 1;

        let Some(name) = path.file_name().map(|n| n.to_owned()) else {
            // The root folder itself: only its metadata applies.
            if kind == tar::EntryType::Directory {
                let root = open_dir_fd(self.target, OsStr::new(".")).map_err(io_err)?;
                self.set_owner_mode(&root, entry).map_err(io_err)?;
                self.dir_times
                    .push((PathBuf::new(), entry.header().mtime().unwrap_or(0)));
            }
            return Ok(());
        };
        let parent_path = path.parent().unwrap_or(Path::new("")).to_path_buf();
        let name_bytes = name.as_bytes();

        if name_bytes.starts_with(WHITEOUT_PREFIX.as_bytes()) {
            let mtime = entry.header().mtime().unwrap_or(0);
            return self.whiteout(&parent_path, &name, mtime, &refuse, &io_err);
        }

        let parent = self
            .open_parent(&parent_path)
            .map_err(|e| classify(e, &refuse, &io_err))?;

        // Whatever is at the name goes, unless a folder meets a folder (they merge).
        match parent.symlink_metadata(&name) {
            Ok(m) if m.is_dir() && kind == tar::EntryType::Directory => {}
            Ok(m) if m.is_dir() => parent.remove_dir_all(&name).map_err(io_err)?,
            Ok(_) => parent.remove_file(&name).map_err(io_err)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(e)),
        }

        let at = At {
            parent: &parent,
            name: &name,
            refuse: &refuse,
            io_err: &io_err,
        };
        match kind {
            tar::EntryType::Directory => self.directory(entry, &at, &path)?,
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                self.regular(entry, &at)?
            }
            tar::EntryType::Symlink => self.symlink(entry, &at)?,
            tar::EntryType::Link => self.hardlink(entry, &at)?,
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                self.node(entry, &at)?
            }
            other => {
                return Err(refuse(format!("unsupported entry type {other:?}")));
            }
        }
        if self.opts.whiteouts == WhiteoutMode::Remove {
            self.written.insert(path);
        }
        Ok(())
    }

    /// A folder (merged with one already there), its times set at the end.
    fn directory<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        at: &At<'_>,
        path: &Path,
    ) -> Result<(), LayerError> {
        let (parent, name, io_err) = (at.parent, at.name, at.io_err);
        if !parent.exists(name) {
            parent.create_dir(name).map_err(io_err)?;
        }
        let d = open_dir_fd(parent, name).map_err(io_err)?;
        self.set_owner_mode(&d, entry).map_err(io_err)?;
        self.set_xattrs(&d, entry, at.refuse)?;
        let mtime = entry.header().mtime().unwrap_or(0);
        self.dir_times.push((path.to_path_buf(), mtime));
        Ok(())
    }

    /// A regular file and its contents.
    fn regular<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        at: &At<'_>,
    ) -> Result<(), LayerError> {
        let io_err = at.io_err;
        let mtime = entry.header().mtime().unwrap_or(0);
        let mut oo = OpenOptions::new();
        oo.write(true).create_new(true).mode(0o600);
        let mut f = at.parent.open_with(at.name, &oo).map_err(io_err)?;
        let size = entry.size();
        // Snapshots are synced once unpacked: large files start their writeback early.
        let mut out = Writeback::new(&mut f, 0);
        let n = super::copy_contents(entry, &mut out, &mut self.copy_buf, size)
            .map_err(LayerError::Archive)?;
        out.finish();
        self.stats.bytes += n;
        self.set_owner_mode(&f, entry).map_err(io_err)?;
        self.set_xattrs(&f, entry, at.refuse)?;
        rustix::fs::futimens(&f, &timestamps(mtime)).map_err(|e| io_err(e.into()))?;
        Ok(())
    }

    /// A symlink, its target as the layer has it.
    fn symlink<R: Read>(&self, entry: &tar::Entry<'_, R>, at: &At<'_>) -> Result<(), LayerError> {
        let (parent, name, refuse, io_err) = (at.parent, at.name, at.refuse, at.io_err);
        let header = entry.header();
        let link = entry
            .link_name_bytes()
            .ok_or_else(|| refuse("a symlink without a target".into()))?
            .into_owned();
        if link.len() > MAX_PATH {
            return Err(refuse("its link target is too long".into()));
        }
        // Stored verbatim: it is resolved inside the container, never by berth here.
        parent
            .symlink_contents(OsStr::from_bytes(&link), name)
            .map_err(io_err)?;
        self.chown_at(parent, name, header).map_err(io_err)?;
        set_mtime_at(parent, name, header.mtime().unwrap_or(0)).map_err(io_err)?;
        Ok(())
    }

    /// A hardlink to a file this layer (or one below) already put in the target.
    fn hardlink<R: Read>(&self, entry: &tar::Entry<'_, R>, at: &At<'_>) -> Result<(), LayerError> {
        let (refuse, io_err) = (at.refuse, at.io_err);
        let link = entry
            .link_name_bytes()
            .ok_or_else(|| refuse("a hardlink without a target".into()))?
            .into_owned();
        let source = clean(Path::new(OsStr::from_bytes(&link)))
            .map_err(|_| refuse("its hardlink target climbs out of the layer".into()))?;
        match self.target.symlink_metadata(&source) {
            Ok(m) if m.is_dir() => return Err(refuse("it hardlinks a folder".into())),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(refuse(format!(
                    "its hardlink target {:?} is not in this layer",
                    source.display()
                )));
            }
            Err(e) => return Err(classify(e, refuse, io_err)),
        }
        self.target
            .hard_link(&source, at.parent, at.name)
            .map_err(|e| classify(e, refuse, io_err))?;
        Ok(())
    }

    /// A character or block device (where allowed) or a FIFO.
    fn node<R: Read>(&self, entry: &tar::Entry<'_, R>, at: &At<'_>) -> Result<(), LayerError> {
        let (parent, name, io_err) = (at.parent, at.name, at.io_err);
        let header = entry.header();
        let mode = Mode::from_raw_mode(header.mode().unwrap_or(0o644) & 0o7777);
        let file_type = match header.entry_type() {
            tar::EntryType::Char => FileType::CharacterDevice,
            tar::EntryType::Block => FileType::BlockDevice,
            _ => FileType::Fifo,
        };
        if file_type != FileType::Fifo && !self.opts.allow_devices {
            return Err((at.refuse)(
                "device nodes are not allowed in this layer".into(),
            ));
        }
        let dev = rustix::fs::makedev(
            header.device_major().ok().flatten().unwrap_or(0),
            header.device_minor().ok().flatten().unwrap_or(0),
        );
        rustix::fs::mknodat(parent, name, file_type, mode, dev).map_err(|e| io_err(e.into()))?;
        self.chown_at(parent, name, header).map_err(io_err)?;
        rustix::fs::chmodat(parent, name, mode, AtFlags::empty()).map_err(|e| io_err(e.into()))?;
        set_mtime_at(parent, name, header.mtime().unwrap_or(0)).map_err(io_err)?;
        Ok(())
    }

    /// Opens (creating as needed) the folder an entry goes in. cap-std refuses any path that
    /// resolves outside the target, including through symlinks.
    fn open_parent(&self, parent: &Path) -> io::Result<Dir> {
        if parent.as_os_str().is_empty() {
            return self.target.try_clone();
        }
        match self.target.open_dir(parent) {
            Ok(d) => Ok(d),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.target.create_dir_all(parent)?;
                self.target.open_dir(parent)
            }
            Err(e) => Err(e),
        }
    }

    fn whiteout(
        &mut self,
        parent_path: &Path,
        name: &OsStr,
        mtime: u64,
        refuse: &dyn Fn(String) -> LayerError,
        io_err: &dyn Fn(io::Error) -> LayerError,
    ) -> Result<(), LayerError> {
        let parent = self
            .open_parent(parent_path)
            .map_err(|e| classify(e, refuse, io_err))?;
        let bytes = name.as_bytes();
        if bytes == OPAQUE_WHITEOUT.as_bytes() {
            match self.opts.whiteouts {
                WhiteoutMode::Overlay => {
                    let fd = open_dir_fd(&parent, OsStr::new(".")).map_err(io_err)?;
                    rustix::fs::fsetxattr(&fd, "trusted.overlay.opaque", b"y", XattrFlags::empty())
                        .map_err(|e| io_err(e.into()))?;
                    // The same marker where overlay mounted with `userxattr` (in a user
                    // namespace) looks for it.
                    let _ = rustix::fs::fsetxattr(
                        &fd,
                        "user.overlay.opaque",
                        b"y",
                        XattrFlags::empty(),
                    );
                }
                WhiteoutMode::Remove => {
                    for child in parent.entries().map_err(io_err)? {
                        let child = child.map_err(io_err)?;
                        let child_name = child.file_name();
                        if self.written.contains(&parent_path.join(&child_name)) {
                            continue;
                        }
                        remove_any(&parent, &child_name).map_err(io_err)?;
                    }
                }
            }
            return Ok(());
        }
        if bytes.starts_with(b".wh..wh.") {
            // Other AUFS metadata (`.wh..wh.plnk`, …) carries nothing for us.
            return Ok(());
        }
        let victim = OsStr::from_bytes(&bytes[WHITEOUT_PREFIX.len()..]);
        if victim.is_empty() || victim == ".." || victim == "." {
            return Err(refuse("a whiteout with no valid name".into()));
        }
        remove_any(&parent, victim).map_err(io_err)?;
        if self.opts.whiteouts == WhiteoutMode::Overlay {
            rustix::fs::mknodat(
                &parent,
                victim,
                FileType::CharacterDevice,
                Mode::empty(),
                rustix::fs::makedev(0, 0),
            )
            .map_err(|e| {
                io_err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "creating the overlay whiteout for {:?} needs root: {e}",
                        victim
                    ),
                ))
            })?;
            set_mtime_at(&parent, victim, mtime).map_err(io_err)?;
        }
        Ok(())
    }

    fn set_owner_mode<F: std::os::fd::AsFd, R: Read>(
        &self,
        fd: F,
        entry: &tar::Entry<'_, R>,
    ) -> io::Result<()> {
        let h = entry.header();
        if self.opts.preserve_owner {
            let uid = h.uid().unwrap_or(0) as u32;
            let gid = h.gid().unwrap_or(0) as u32;
            rustix::fs::fchown(&fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))?;
        }
        // After chown, which clears setuid bits.
        let mode = Mode::from_raw_mode(h.mode().unwrap_or(0o644) & 0o7777);
        rustix::fs::fchmod(&fd, mode)?;
        Ok(())
    }

    fn chown_at(&self, parent: &Dir, name: &OsStr, h: &tar::Header) -> io::Result<()> {
        if self.opts.preserve_owner {
            let uid = h.uid().unwrap_or(0) as u32;
            let gid = h.gid().unwrap_or(0) as u32;
            rustix::fs::chownat(
                parent,
                name,
                Some(Uid::from_raw(uid)),
                Some(Gid::from_raw(gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )?;
        }
        Ok(())
    }

    fn set_xattrs<F: std::os::fd::AsFd, R: Read>(
        &self,
        fd: F,
        entry: &mut tar::Entry<'_, R>,
        refuse: &dyn Fn(String) -> LayerError,
    ) -> Result<(), LayerError> {
        let Ok(Some(exts)) = entry.pax_extensions() else {
            return Ok(());
        };
        let mut total = 0;
        for ext in exts.flatten() {
            let Some(key) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") else {
                continue;
            };
            total += key.len() + ext.value_bytes().len();
            if total > MAX_XATTRS {
                return Err(refuse("its extended attributes are too large".into()));
            }
            // overlayfs' own attributes are berth's to set; one from an image could forge an
            // opaque folder or a redirect.
            if key.starts_with(b"trusted.overlay.") || key.starts_with(b"user.overlay.") {
                continue;
            }
            if let Err(e) = rustix::fs::fsetxattr(
                &fd,
                OsStr::from_bytes(key),
                ext.value_bytes(),
                XattrFlags::empty(),
            ) {
                // A filesystem without the namespace, or no right to set it: not fatal, as Docker.
                tracing::debug!("xattr {}: {e}", String::from_utf8_lossy(key));
            }
        }
        Ok(())
    }
}

/// Sets the mtime of `name` in `parent` (not following it: it may be a symlink).
fn set_mtime_at(parent: &Dir, name: &OsStr, mtime: u64) -> io::Result<()> {
    Ok(rustix::fs::utimensat(
        parent,
        name,
        &timestamps(mtime),
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

/// A readable descriptor of the folder `name` in `parent`, never following a symlink.
/// cap-std's own folder handles are `O_PATH`, on which fchown, fchmod and xattr calls fail.
pub(crate) fn open_dir_fd(parent: &Dir, name: &OsStr) -> io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::OFlags;
    Ok(rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// A readable descriptor of the folder at `path` (relative to `target`; empty for the
/// target itself), opened one component at a time without following any symlink: a folder
/// a later entry replaced by a symlink fails with ELOOP or ENOTDIR rather than resolving
/// elsewhere (or outside, which cap-std would report as an escape).
fn open_path_fd(target: &Dir, path: &Path) -> io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::OFlags;
    let mut fd = open_dir_fd(target, OsStr::new("."))?;
    // `path` was made by `clean`: only plain names, never `..`.
    for name in path.components() {
        fd = rustix::fs::openat(
            &fd,
            name.as_os_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
    }
    Ok(fd)
}

/// Removes a file, link or whole folder at `name`; a missing name is fine.
fn remove_any(parent: &Dir, name: &OsStr) -> io::Result<()> {
    match parent.symlink_metadata(name) {
        Ok(m) if m.is_dir() => parent.remove_dir_all(name),
        Ok(_) => parent.remove_file(name),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// cap-std reports a path that would escape the sandbox as PermissionDenied with a message
/// about escaping: name that as a refusal.
fn classify(
    e: io::Error,
    refuse: &dyn Fn(String) -> LayerError,
    io_err: &dyn Fn(io::Error) -> LayerError,
) -> LayerError {
    let msg = e.to_string();
    if e.kind() == io::ErrorKind::PermissionDenied
        && (msg.contains("outside") || msg.contains("escape"))
    {
        refuse("it would write outside the layer through a symlink".into())
    } else if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
        refuse("its path goes through a symlink loop".into())
    } else {
        io_err(e)
    }
}
