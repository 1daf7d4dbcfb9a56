//! A read-only view of a stage's filesystem through its layer snapshots, top layer first, with
//! overlay whiteouts (0/0 character devices) and opaque folders honored: how COPY finds the
//! mode and owner of existing folders, `--chown` names, WORKDIR's existence and
//! `COPY --from` sources, without mounting anything.

use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// A stage's merged filesystem.
#[derive(Debug, Clone, Default)]
pub struct LayeredFs {
    /// Snapshot folders, top layer first.
    tops: Vec<PathBuf>,
}

fn is_whiteout(m: &Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(p: &Path) -> bool {
    let mut buf = [0u8; 4];
    matches!(
        rustix::fs::lgetxattr(p, "trusted.overlay.opaque", &mut buf),
        Ok(n) if n >= 1 && buf[0] == b'y'
    )
}

fn parts(rel: &str) -> Vec<&str> {
    rel.split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect()
}

impl LayeredFs {
    /// A view over snapshot folders given bottom layer first.
    pub fn new(bottom_first: Vec<PathBuf>) -> LayeredFs {
        let mut tops = bottom_first;
        tops.reverse();
        LayeredFs { tops }
    }

    /// The layers in which `rel` is visible, top first: the first one holds what a container
    /// sees; lower ones matter only for a folder (their children merge).
    fn visible(&self, rel: &str) -> Vec<PathBuf> {
        let comps = parts(rel);
        let mut out = Vec::new();
        'layers: for root in &self.tops {
            let mut hidden_below = false;
            let mut p = root.clone();
            for (i, c) in comps.iter().enumerate() {
                p.push(c);
                match std::fs::symlink_metadata(&p) {
                    Err(_) if hidden_below => return out,
                    Err(_) => continue 'layers,
                    Ok(m) if is_whiteout(&m) => return out,
                    Ok(m) if i + 1 < comps.len() && !m.is_dir() => return out,
                    Ok(_) if i + 1 < comps.len() && is_opaque(&p) => hidden_below = true,
                    Ok(_) => {}
                }
            }
            let full_dir = std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir());
            out.push(p.clone());
            if !full_dir || is_opaque(&p) || hidden_below {
                return out;
            }
        }
        out
    }

    /// The host path holding `rel` (relative to the stage's root), if it exists.
    pub fn lookup(&self, rel: &str) -> Option<PathBuf> {
        self.visible(rel).into_iter().next()
    }

    /// The metadata of `rel` (not following a final symlink), if it exists.
    pub fn metadata(&self, rel: &str) -> Option<Metadata> {
        std::fs::symlink_metadata(self.lookup(rel)?).ok()
    }

    /// The merged names in folder `rel`, sorted.
    pub fn children(&self, rel: &str) -> Vec<String> {
        let mut seen = std::collections::BTreeMap::new();
        for dir in self.visible(rel) {
            let Ok(read) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in read.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if seen.contains_key(&name) {
                    continue;
                }
                let whiteout = entry.metadata().is_ok_and(|m| is_whiteout(&m));
                seen.insert(name, !whiteout);
            }
        }
        seen.into_iter()
            .filter(|(_, present)| *present)
            .map(|(n, _)| n)
            .collect()
    }

    /// Reads a whole file, e.g. `etc/passwd`.
    pub fn read(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.lookup(rel)?).ok()
    }
}
