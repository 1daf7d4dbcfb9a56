//! Resolving `--user name[:group]` against the container's own /etc/passwd and /etc/group,
//! as Docker does: names or ids, supplementary groups from /etc/group, HOME from passwd.

use std::path::Path;

/// Who the workload runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    /// The uid.
    pub uid: u32,
    /// The primary gid.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// The home folder (from passwd, else `/`).
    pub home: String,
}

/// A user or group that the container does not know.
#[derive(Debug, thiserror::Error)]
#[error(
    "unable to find {what} {name:?} in the container's {file}: use a numeric id or add it to the image"
)]
pub struct UserError {
    what: &'static str,
    name: String,
    file: &'static str,
}

/// Resolves `spec` (`""`, `name`, `uid`, `name:group`, `uid:gid`) with the passwd and group
/// files under `root` (`/` after pivot_root).
pub fn resolve(spec: &str, root: &Path) -> Result<ResolvedUser, UserError> {
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap_or_default();
    let group = std::fs::read_to_string(root.join("etc/group")).unwrap_or_default();
    resolve_with(spec, &passwd, &group)
}

/// [`resolve`] with the passwd and group files of the folder `root` read through its handle
/// (a rootfs berth has not pivoted into: no symlink in it reaches outside).
pub fn resolve_in(spec: &str, root: &cap_std::fs::Dir) -> Result<ResolvedUser, UserError> {
    let passwd = root.read_to_string("etc/passwd").unwrap_or_default();
    let group = root.read_to_string("etc/group").unwrap_or_default();
    resolve_with(spec, &passwd, &group)
}

/// Resolves `spec` against the contents of passwd and group files.
fn resolve_with(spec: &str, passwd: &str, group: &str) -> Result<ResolvedUser, UserError> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user = if user.is_empty() { "0" } else { user };
    let entries: Vec<Vec<&str>> = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 7)
        .collect();
    let by_name = entries.iter().find(|f| f[0] == user);
    let (uid, mut gid, home, name) = match (by_name, user.parse::<u32>()) {
        (Some(f), _) => (
            f[2].parse().unwrap_or(0),
            f[3].parse().unwrap_or(0),
            f[5].to_string(),
            Some(f[0].to_string()),
        ),
        (None, Ok(uid)) => match entries
            .iter()
            .find(|f| f[2].parse::<u32>().ok() == Some(uid))
        {
            Some(f) => (
                uid,
                f[3].parse().unwrap_or(0),
                f[5].to_string(),
                Some(f[0].to_string()),
            ),
            None => (uid, 0, "/".to_string(), None),
        },
        (None, Err(_)) => {
            return Err(UserError {
                what: "user",
                name: user.to_string(),
                file: "/etc/passwd",
            });
        }
    };
    let groups_table: Vec<Vec<&str>> = group
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 3)
        .collect();
    if let Some(g) = grp {
        gid = match groups_table.iter().find(|f| f[0] == g) {
            Some(f) => f[2].parse().unwrap_or(0),
            None => g.parse().map_err(|_| UserError {
                what: "group",
                name: g.to_string(),
                file: "/etc/group",
            })?,
        };
    }
    let mut groups = vec![gid];
    if let Some(name) = &name {
        for f in &groups_table {
            if f.len() >= 4
                && f[3].split(',').any(|m| m == name)
                && let Ok(g) = f[2].parse::<u32>()
                && !groups.contains(&g)
            {
                groups.push(g);
            }
        }
    }
    Ok(ResolvedUser {
        uid,
        gid,
        groups,
        home: if home.is_empty() { "/".into() } else { home },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_as_docker() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nweb:x:33:33:www:/var/www:/bin/false\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nwww:x:33:\nstaff:x:50:web,other\n",
        )
        .unwrap();
        let r = resolve("", dir.path()).unwrap();
        assert_eq!((r.uid, r.gid, r.home.as_str()), (0, 0, "/root"));
        let r = resolve("web", dir.path()).unwrap();
        assert_eq!((r.uid, r.gid, r.groups.clone()), (33, 33, vec![33, 50]));
        let r = resolve("1000:staff", dir.path()).unwrap();
        assert_eq!((r.uid, r.gid, r.home.as_str()), (1000, 50, "/"));
        let r = resolve("33", dir.path()).unwrap();
        assert_eq!(r.home, "/var/www");
        assert!(
            resolve("nobody", dir.path())
                .unwrap_err()
                .to_string()
                .contains("nobody")
        );
        assert!(resolve("web:nogroup", dir.path()).is_err());
    }
}
