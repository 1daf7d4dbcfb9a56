//! Turning a folder into a layer: a tar with entries sorted by name, so the same content
//! always gives the same digest.
//!
//! With [`CreateOptions::overlay_whiteouts`], the folder is an overlay upper dir: its 0/0
//! character devices become `.wh.NAME` entries and its opaque folders get a `.wh..wh..opq`.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use cap_fs_ext::DirExt;
use cap_std::fs::Dir;
use rustix::fs::{AtFlags, FileType};

use super::{OPAQUE_WHITEOUT, WHITEOUT_PREFIX};

/// How a folder becomes a layer.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Read overlayfs whiteouts (an upper dir) and write them as OCI whiteouts.
    pub overlay_whiteouts: bool,
    /// No entry's mtime is later than this (`SOURCE_DATE_EPOCH`), for reproducible layers.
    pub clamp_mtime: Option<u64>,
}

/// Writes `dir` as an uncompressed tar layer to `out`.
pub fn create(dir: &Dir, out: impl Write, opts: &CreateOptions) -> io::Result<()> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    let mut walker = Walker {
        opts,
        builder,
        links: HashMap::new(),
    };
    walker.walk(dir, Path::new(""))?;
    walker.builder.finish()
}

/// Extended attributes as (name, value), sorted by name.
type Xattrs = Vec<(String, Vec<u8>)>;

struct Walker<'a, W: Write> {
    opts: &'a CreateOptions,
    builder: tar::Builder<W>,
    /// (dev, ino) of files with several links, to the first path written for them.
    links: HashMap<(u64, u64), PathBuf>,
}

impl<W: Write> Walker<'_, W> {
    fn walk(&mut self, dir: &Dir, rel: &Path) -> io::Result<()> {
        let mut names: Vec<OsString> = dir
            .entries()?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            self.entry(dir, rel, &name).map_err(|e| {
                io::Error::new(e.kind(), format!("{}: {e}", rel.join(&name).display()))
            })?;
        }
        Ok(())
    }

    fn header(&self, st: &rustix::fs::Stat, kind: tar::EntryType) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(st.st_mode & 0o7777);
        h.set_uid(st.st_uid as u64);
        h.set_gid(st.st_gid as u64);
        let mtime = st.st_mtime.max(0) as u64;
        h.set_mtime(match self.opts.clamp_mtime {
            Some(c) => mtime.min(c),
            None => mtime,
        });
        h.set_size(0);
        h
    }

    fn entry(&mut self, dir: &Dir, rel: &Path, name: &OsStr) -> io::Result<()> {
        let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
        let path = rel.join(name);
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                let sub = dir.open_dir_nofollow(name)?;
                let (xattrs, opaque) = self.xattrs(super::apply::open_dir_fd(dir, name)?)?;
                self.pax(&xattrs)?;
                let mut h = self.header(&st, tar::EntryType::Directory);
                let mut p = path.clone().into_os_string();
                p.push("/");
                self.builder
                    .append_data(&mut h, Path::new(&p), io::empty())?;
                if opaque {
                    let mut h = self.header(&st, tar::EntryType::Regular);
                    h.set_mode(0o644);
                    self.builder
                        .append_data(&mut h, path.join(OPAQUE_WHITEOUT), io::empty())?;
                }
                self.walk(&sub, &path)?;
            }
            FileType::RegularFile => {
                if st.st_nlink > 1 {
                    let key = (st.st_dev, st.st_ino);
                    if let Some(first) = self.links.get(&key) {
                        let mut h = self.header(&st, tar::EntryType::Link);
                        let first = first.clone();
                        return self.builder.append_link(&mut h, &path, first);
                    }
                    self.links.insert(key, path.clone());
                }
                let file = dir.open(name)?;
                let (xattrs, _) = self.xattrs(&file)?;
                self.pax(&xattrs)?;
                let mut h = self.header(&st, tar::EntryType::Regular);
                h.set_size(st.st_size as u64);
                // Exactly st_size bytes: a file that changed size under us must not make a
                // malformed entry.
                let reader = io::Read::take(file.into_std(), st.st_size as u64);
                self.builder.append_data(&mut h, &path, reader)?;
            }
            FileType::Symlink => {
                let target = dir.read_link_contents(name)?;
                let mut h = self.header(&st, tar::EntryType::Symlink);
                self.builder.append_link(&mut h, &path, target)?;
            }
            FileType::CharacterDevice if self.opts.overlay_whiteouts && st.st_rdev == 0 => {
                let mut wh = OsString::from(WHITEOUT_PREFIX);
                wh.push(name);
                let mut h = self.header(&st, tar::EntryType::Regular);
                h.set_mode(0o644);
                self.builder
                    .append_data(&mut h, rel.join(wh), io::empty())?;
            }
            t @ (FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo) => {
                let kind = match t {
                    FileType::CharacterDevice => tar::EntryType::Char,
                    FileType::BlockDevice => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                };
                let mut h = self.header(&st, kind);
                h.set_device_major(rustix::fs::major(st.st_rdev))?;
                h.set_device_minor(rustix::fs::minor(st.st_rdev))?;
                self.builder.append_data(&mut h, &path, io::empty())?;
            }
            // Sockets, like Docker, are not carried in layers.
            _ => {}
        }
        Ok(())
    }

    /// The xattrs to carry, and whether the folder is overlay-opaque.
    fn xattrs<F: std::os::fd::AsFd>(&self, fd: F) -> io::Result<(Xattrs, bool)> {
        let mut out = Vec::new();
        let mut opaque = false;
        let size = match rustix::fs::flistxattr_query(&fd) {
            Ok(0) => return Ok((out, false)),
            Ok(n) => n,
            // Filesystems without xattrs.
            Err(rustix::io::Errno::NOTSUP) => return Ok((out, false)),
            Err(e) => return Err(e.into()),
        };
        let mut list = vec![0u8; size];
        let n = rustix::fs::flistxattr(&fd, &mut list[..])?;
        for key in list[..n].split(|b| *b == 0).filter(|k| !k.is_empty()) {
            let key_os = OsStr::from_bytes(key);
            let len = rustix::fs::fgetxattr_query(&fd, key_os)?;
            let mut value = vec![0u8; len];
            let len = rustix::fs::fgetxattr(&fd, key_os, &mut value[..])?;
            value.truncate(len);
            if key.starts_with(b"trusted.overlay.") || key.starts_with(b"user.overlay.") {
                if self.opts.overlay_whiteouts && key.ends_with(b".overlay.opaque") && value == b"y"
                {
                    opaque = true;
                }
                continue;
            }
            out.push((String::from_utf8_lossy(key).into_owned(), value));
        }
        out.sort();
        Ok((out, opaque))
    }

    fn pax(&mut self, xattrs: &[(String, Vec<u8>)]) -> io::Result<()> {
        if xattrs.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = xattrs
            .iter()
            .map(|(k, _)| format!("SCHILY.xattr.{k}"))
            .collect();
        self.builder.append_pax_extensions(
            keys.iter()
                .zip(xattrs)
                .map(|(k, (_, v))| (k.as_str(), v.as_slice())),
        )
    }
}
