//! Extracting a layer into a folder, safely.
//!
//! Every path is resolved through a cap-std [`Dir`] for the target, so an entry can never
//! write outside it: a name that climbs out with `..`, a parent path through a symlink that
//! points out (absolute or relative), or a hardlink to something outside is refused with an
//! error naming the entry. Absolute entry names are taken relative to the target, as Docker
//! does; symlink targets are stored verbatim (they resolve inside the container at run time).
//! Only the final path component is touched with `*at` calls, always without following it.

use std::io;
use std::path::{Component, Path, PathBuf};

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub use unix::apply;
#[cfg(unix)]
pub(crate) use unix::open_dir_fd;
#[cfg(not(unix))]
mod portable;
#[cfg(not(unix))]
pub use portable::apply;

/// Longest entry name or link target accepted (Linux's PATH_MAX).
pub(crate) const MAX_PATH: usize = 4096;
/// Most bytes of xattrs accepted on one entry (Linux's own limit per value).
#[cfg(unix)]
pub(crate) const MAX_XATTRS: usize = 64 * 1024;

/// The largest read and write when copying a file's contents out of a layer.
const COPY_CHUNK: usize = 1 << 20;

/// Copies an entry's contents (`size` bytes, from its header) into `out` through `buf`,
/// filling the buffer before each write (not io::copy's 8 KiB: a syscall per 8 KiB of a
/// large layer); the buffer grows to the largest file's size, up to [`COPY_CHUNK`].
pub(crate) fn copy_contents(
    entry: &mut impl io::Read,
    out: &mut impl io::Write,
    buf: &mut Vec<u8>,
    size: u64,
) -> io::Result<u64> {
    let want = (size as usize).clamp(8 << 10, COPY_CHUNK);
    if buf.len() < want {
        buf.resize(want, 0);
    }
    let mut total = 0u64;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match entry.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        if filled == 0 {
            return Ok(total);
        }
        out.write_all(&buf[..filled])?;
        total += filled as u64;
    }
}

/// How whiteout entries are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteoutMode {
    /// As overlayfs expects in a lowerdir: a 0/0 character device for a deleted name and the
    /// `trusted.overlay.opaque` xattr on an opaque folder. For per-layer snapshots.
    Overlay,
    /// By deleting what they name from the target, for a layer applied onto the layers below
    /// it in one folder.
    Remove,
}

/// How a layer is applied.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// How whiteouts are written.
    pub whiteouts: WhiteoutMode,
    /// Whether character and block device entries are created (else refused).
    pub allow_devices: bool,
    /// Whether entries keep their uid and gid (needs root).
    pub preserve_owner: bool,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        let root = crate::host::is_root();
        ApplyOptions {
            whiteouts: WhiteoutMode::Overlay,
            allow_devices: root,
            preserve_owner: root,
        }
    }
}

/// Why a layer could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// An entry breaks the rules and was refused.
    #[error("layer entry {entry:?} refused: {reason}")]
    Refused {
        /// The entry's name as given in the archive.
        entry: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// Writing an entry failed.
    #[error("layer entry {entry:?}: {cause}")]
    Entry {
        /// The entry's name as given in the archive.
        entry: String,
        /// The failure.
        cause: io::Error,
    },
    /// The archive itself could not be read (corrupt, truncated, not a tar).
    #[error("reading layer archive: {0}")]
    Archive(io::Error),
}

/// Counts of what a layer held.
#[derive(Debug, Default, Clone, Copy)]
pub struct ApplyStats {
    /// Entries applied.
    pub entries: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

/// Cleans an entry name lexically: leading `/` and `.` go, `..` may not climb above the root.
pub(crate) fn clean(raw: &Path) -> Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                if !out.pop() {
                    return Err("its name climbs out of the layer with `..`".into());
                }
            }
            Component::Normal(s) => out.push(s),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most `step` bytes a call, as a decompressor may.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.step).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn contents_are_copied_whole_whatever_the_sizes() {
        let data: Vec<u8> = (0..(3 * COPY_CHUNK + 5)).map(|i| (i % 251) as u8).collect();
        let mut buf = Vec::new();
        for len in [0, 1, 8191, 8192, 8193, COPY_CHUNK, data.len()] {
            for step in [1 << 10, 100_000, usize::MAX] {
                let mut out = Vec::new();
                let mut r = Trickle {
                    data: &data[..len],
                    step,
                };
                let n = copy_contents(&mut r, &mut out, &mut buf, len as u64).unwrap();
                assert_eq!(n, len as u64);
                assert!(out == data[..len], "len {len}, step {step}");
            }
        }
        assert!(buf.len() <= COPY_CHUNK, "the buffer stays bounded");
    }
}
